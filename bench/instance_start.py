#!/usr/bin/env python3
"""One workspace instance's start, measured from outside: spawn `coditect workspace-runtime`
(release build) on a fresh folder, wait for its ready line, read the CPU time it has used by
then from /proc, stop it. 20 starts without a bucket and 20 with a local bucket folder.

    cargo build --release && python3 bench/instance_start.py
    perf record -g -- python3 bench/instance_start.py    # where the CPU goes

Prints the wall time to ready (p50, max) and the CPU at ready (p50; /proc counts in clock
ticks, 10 ms here, so it is coarse)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "coditect")
SPEC = """apiVersion: coditect.io/v1
kind: Workspace
metadata: {name: w1, organization: o, team: t}
spec: {owner: u, agents: [{name: a, provider: offline}]}
"""


def start(work, i, bucket):
    root = os.path.join(work, f"root{i}")
    shutil.rmtree(root, ignore_errors=True)
    args = [BINARY, "workspace-runtime", "--spec", os.path.join(work, "ws.yaml"),
            "--root", root, "--listen", "127.0.0.1:0"]
    if bucket:
        args += ["--bucket", f"file://{work}/bucket{i}"]
    t = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if not p.stdout.readline():
        sys.exit("the instance did not start")
    wall = time.perf_counter() - t
    stat = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    p.send_signal(signal.SIGTERM)
    p.wait()
    return wall, cpu


def main():
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "ws.yaml"), "w") as f:
            f.write(SPEC)
        for bucket in (False, True):
            runs = [start(work, i, bucket) for i in range(20)]
            walls = sorted(r[0] for r in runs)
            cpus = sorted(r[1] for r in runs)
            print(f"bucket={bucket}: ready wall p50 {walls[10] * 1e3:.1f} ms, max {walls[-1] * 1e3:.1f} ms; "
                  f"CPU at ready p50 {cpus[10] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
