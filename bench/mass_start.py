#!/usr/bin/env python3
"""The floor under "100 workspaces Ready": N instances of `coditect workspace-runtime`
(release build) started straight, C at a time, with no control plane, gateway or load
generator beside them. Measures the wall time until all N have printed their ready line and
the machine's CPU over that time (from /proc/stat, every process and the kernel's own
threads), so the result reads as CPU-seconds per start and how busy the cores were.

    cargo build --release && python3 bench/mass_start.py [N] [C]    # defaults 100, 4

Each instance gets a fresh folder and a local bucket folder, as the local driver gives it.
The instances are stopped (SIGTERM) after the measurement, outside it."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "coditect")
SPEC = """apiVersion: coditect.io/v1
kind: Workspace
metadata: {{name: w{i}, organization: o, team: t}}
spec: {{owner: u, agents: [{{name: a, provider: offline}}]}}
"""


def cpu_ticks():
    """(busy, total) jiffies of all CPUs."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def start(work, i):
    spec = os.path.join(work, f"w{i}.yaml")
    with open(spec, "w") as f:
        f.write(SPEC.format(i=i))
    args = [BINARY, "workspace-runtime", "--spec", spec, "--root", os.path.join(work, "root"),
            "--listen", "127.0.0.1:0", "--bucket", f"file://{work}/bucket"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if not p.stdout.readline():
        sys.exit(f"instance {i} did not start")
    return p


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as work:
        procs, lock, next_i = [], threading.Lock(), [0]

        def worker():
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= n:
                    return
                p = start(work, i)
                with lock:
                    procs.append(p)

        busy0, total0 = cpu_ticks()
        t = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(c)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        busy1, total1 = cpu_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        cpu_s = (busy1 - busy0) / hz
        cores = os.cpu_count()
        print(f"{n} starts, {c} at a time: all ready in {wall:.2f} s; machine CPU {cpu_s:.2f} s "
              f"({cpu_s / n * 1e3:.1f} ms per start), cores busy {100 * (busy1 - busy0) / max(total1 - total0, 1):.0f}% "
              f"of {cores}")
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
