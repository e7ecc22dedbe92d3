#!/usr/bin/env python3
"""Sync side by side: Coditect's workspace sync against Litestream 0.5, the same job for
both, measured by the same replica meter (meter.py).

The job: SQLite replicated to a local-folder replica with a 1 s interval; `--rate`
acknowledged small writes a second for `--busy` seconds, then `--idle` seconds with none.
Measured for each: bytes and objects written to the replica in the busy and the idle
window (by kind of object), the replica's size at the end, the time of a full restore
(five times, after a clean stop, each into an empty folder; the restored writes are
checked against the acknowledged ones), and the loss window on SIGKILL (`--loss-runs`
runs: the replicator is SIGKILLed mid-stream, the replica restored, and the window is how
long before the kill the oldest acknowledged write missing from it was acknowledged).

Usage (bench/litestream/side-by-side.sh installs Litestream and builds Coditect first):
    side_by_side.py --coditect target/release/coditect --litestream PATH [--json OUT]
"""

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from coditect_job import Coditect  # noqa: E402
from litestream_job import Litestream  # noqa: E402
from meter import ReplicaMeter, folder_bytes, window  # noqa: E402
from pace import Acks, paced_threads  # noqa: E402

SETTLE_S = 3.0
RESTORES = 5
# What tests/sync_disaster.rs allows over the 1 s interval for scheduling noise.
LOSS_SLACK_MS = 250


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def by_kind(tool, records):
    out = {}
    for _, path, size in records:
        k = tool.kind(path)
        n, b, big = out.get(k, (0, 0, 0))
        out[k] = (n + 1, b + size, max(big, size))
    return {
        k: {"objects": n, "bytes": b, "largest": big} for k, (n, b, big) in sorted(out.items())
    }


def measure(tool, rate, busy, idle, scratch):
    """The busy-then-idle job, a clean stop, then the restores."""
    meter = ReplicaMeter(tool.replica).start()
    tool.start()
    time.sleep(SETTLE_S)
    acks, stop = Acks(), threading.Event()
    counters = getattr(tool, "counters", lambda: None)
    counted_before = counters()
    t0 = time.monotonic()
    load_before = loadavg()
    log(f"{tool.name}: busy for {busy:.0f} s at {rate}/s")
    for t in paced_threads(tool.writer_threads, rate, t0 + busy, stop, tool.make_writer, acks):
        t.join()
    busy_end = t0 + busy
    time.sleep(max(0.0, busy_end - time.monotonic()))
    counted_busy = counters()
    load_busy = loadavg()
    log(f"{tool.name}: {len(acks.items)} writes acknowledged; idle for {idle:.0f} s")
    time.sleep(max(0.0, busy_end + idle - time.monotonic()))
    size = folder_bytes(tool.replica)
    tool.stop()
    meter.stop()
    result = summarize(tool, meter, t0, busy_end, busy_end + idle)
    acked = {name for name, _ in acks.items}
    restores, missing = [], None
    for i in range(RESTORES):
        dest = os.path.join(scratch, f"restore-{i}")
        took, names = tool.restore(dest)
        restores.append(took)
        missing = len(acked - names)
        shutil.rmtree(dest, ignore_errors=True)
    result.update(
        acknowledged=len(acks.items),
        rate=len(acks.items) / busy,
        replica_bytes=size,
        restore_s=restores,
        restored_missing=missing,
        self_reported={"before": counted_before, "busy_end": counted_busy},
        load_before=load_before,
        load_busy=load_busy,
    )
    return result


def summarize(tool, meter, t0, busy_end, idle_end):
    """What the meter saw in the busy and the idle window, per minute and by kind."""
    busy_w = window(meter.writes, t0, busy_end)
    idle_w = window(meter.writes, busy_end, idle_end)
    busy_min, idle_min = (busy_end - t0) / 60.0, (idle_end - busy_end) / 60.0
    startup = window(meter.writes, 0, t0)
    return {
        "busy_bytes_per_min": sum(r[2] for r in busy_w) / busy_min,
        "busy_objects_per_min": len(busy_w) / busy_min,
        "idle_bytes_per_min": sum(r[2] for r in idle_w) / idle_min,
        "idle_objects_per_min": len(idle_w) / idle_min,
        "busy_by_kind": by_kind(tool, busy_w),
        "idle_by_kind": by_kind(tool, idle_w),
        "large_objects": [
            {"at_s": round(at - t0, 3), "path": path, "bytes": size}
            for at, path, size in meter.writes
            if size >= 1 << 20 and at >= t0
        ],
        "idle_objects": [
            {"at_s": round(at - busy_end, 3), "path": path, "bytes": size}
            for at, path, size in idle_w
        ],
        "deletes_busy": len(window(meter.deletes, t0, busy_end)),
        "deletes_idle": len(window(meter.deletes, busy_end, idle_end)),
        "startup_objects": len(startup),
        "startup_bytes": sum(r[2] for r in startup),
        "meter_overflowed": meter.overflowed,
    }


def loss_run(tool, rate, kill_after):
    """SIGKILL mid-stream, restore, the oldest acknowledged write missing."""
    tool.start()
    time.sleep(SETTLE_S)
    acks, stop = Acks(), threading.Event()
    t0 = time.monotonic()
    threads = paced_threads(
        tool.writer_threads, rate, t0 + kill_after + 30, stop, tool.make_writer, acks
    )
    time.sleep(kill_after)
    killed_at = time.monotonic()
    tool.kill()
    stop.set()
    for t in threads:
        t.join()
    acked = [(n, at) for n, at in acks.snapshot() if at <= killed_at]
    _, names = tool.restore(os.path.join(tool.workdir, "restored"))
    lost = [at for n, at in acked if n not in names]
    window_ms = (killed_at - min(lost)) * 1000 if lost else 0.0
    return {"acknowledged": len(acked), "lost": len(lost), "window_ms": window_ms}


def restore_at_size(make, mib, scratch):
    """A database of `mib` MiB replicated, then restored five times."""
    tool = make(os.path.join(scratch, f"fill-{mib}"))
    tool.fill(mib)
    tool.replicate_fill(mib)
    times = []
    for i in range(RESTORES):
        dest = os.path.join(scratch, f"fill-restore-{i}")
        times.append(tool.restore(dest)[0])
        shutil.rmtree(dest, ignore_errors=True)
    return {"mib": mib, "restore_s": times, "replica_bytes": folder_bytes(tool.replica)}


def run_tool(make, rate, busy, idle, loss_runs, restore_mib, scratch):
    work = os.path.join(scratch, "job")
    tool = make(work)
    version = tool.version()
    result = measure(tool, rate, busy, idle, scratch)
    result["version"] = version
    if restore_mib:
        log(f"{tool.name}: restore of {restore_mib} MiB")
        result["restore_at_size"] = restore_at_size(make, restore_mib, scratch)
    result["loss"] = []
    for i in range(loss_runs):
        kill_after = random.uniform(8.0, 14.0)
        tool = make(os.path.join(scratch, f"loss-{i}"))
        r = loss_run(tool, rate, kill_after)
        r["kill_after_s"] = kill_after
        log(f"{tool.name}: loss run {i + 1}: {r}")
        result["loss"].append(r)
    return result


def mb(b):
    return f"{b / 1e6:.2f} MB"


def kinds(d):
    return (
        ", ".join(
            f"{k} {v['objects']} ({mb(v['bytes'])}, largest {mb(v['largest'])})"
            for k, v in d.items()
        )
        or "none"
    )


def restore_cell(r):
    t = sorted(r["restore_s"])
    return f"{statistics.median(t) * 1000:.0f} ms ({t[0] * 1000:.0f}–{t[-1] * 1000:.0f})"


def restore_goal(ls, cd):
    ratio = statistics.median(ls["restore_s"]) / statistics.median(cd["restore_s"])
    return f"Coditect ≥ 4× faster (measured {ratio:.2f}×)", "✔" if ratio >= 4 else "✘"


def loss_cell(r):
    if not r["loss"]:
        return "not run"
    return " / ".join(f"{x['window_ms']:.0f}" for x in r["loss"]) + " ms"


def rows(ls, cd):
    """The table's rows: what, Litestream, Coditect, goal, met."""
    ok = cd["busy_bytes_per_min"] <= ls["busy_bytes_per_min"]
    out = [
        ("writes acknowledged /s (busy)", f"{ls['rate']:.0f}", f"{cd['rate']:.0f}", "", ""),
        (
            "bytes to the replica / busy min", mb(ls["busy_bytes_per_min"]),
            mb(cd["busy_bytes_per_min"]), "Coditect ≤ Litestream", "✔" if ok else "✘",
        ),
        (
            "bytes to the replica / idle min", mb(ls["idle_bytes_per_min"]),
            mb(cd["idle_bytes_per_min"]), "", "",
        ),
        (
            "objects written / busy min", f"{ls['busy_objects_per_min']:.0f}",
            f"{cd['busy_objects_per_min']:.0f}", "Coditect ≤ 120 (2 per 1 s interval)",
            "✔" if cd["busy_objects_per_min"] <= 120 else "✘",
        ),
        (
            "objects written / idle min", f"{ls['idle_objects_per_min']:.0f}",
            f"{cd['idle_objects_per_min']:.0f}", "", "",
        ),
        (
            "objects deleted busy / idle min", f"{ls['deletes_busy']} / {ls['deletes_idle']}",
            f"{cd['deletes_busy']} / {cd['deletes_idle']}", "", "",
        ),
        ("replica size at the end", mb(ls["replica_bytes"]), mb(cd["replica_bytes"]), "", ""),
        (
            f"full restore of that replica (median of {RESTORES})", restore_cell(ls),
            restore_cell(cd), *restore_goal(ls, cd),
        ),
    ]
    if ls.get("restore_at_size") and cd.get("restore_at_size"):
        a, b = ls["restore_at_size"], cd["restore_at_size"]
        out.append((
            f"restore of a {a['mib']} MiB database (median of {RESTORES})", restore_cell(a),
            restore_cell(b), *restore_goal(a, b),
        ))
        out.append((
            f"replica size, {a['mib']} MiB database", mb(a["replica_bytes"]),
            mb(b["replica_bytes"]), "", "",
        ))
    out.append((
        "acknowledged writes missing after the restore", str(ls["restored_missing"]),
        str(cd["restored_missing"]), "0", "✔" if cd["restored_missing"] == 0 else "✘",
    ))
    worst = max((x["window_ms"] for x in cd["loss"]), default=None)
    out.append((
        "loss window on SIGKILL (per run)", loss_cell(ls), loss_cell(cd),
        f"unchanged: within the 1 s interval + {LOSS_SLACK_MS} ms (was 275–688 ms)",
        "" if worst is None else ("✔" if worst <= 1000 + LOSS_SLACK_MS else "✘"),
    ))
    return out


def breakdown(ls, cd, busy_s):
    """Lines under the table: objects by kind, and Coditect's rounds."""
    lines = [
        f"Litestream busy-minute objects by kind: {kinds(ls['busy_by_kind'])}",
        f"Coditect busy-minute objects by kind: {kinds(cd['busy_by_kind'])}",
        f"Litestream idle-minute objects by kind: {kinds(ls['idle_by_kind'])}",
        f"Coditect idle-minute objects by kind: {kinds(cd['idle_by_kind'])}",
    ]
    manifests = cd["busy_by_kind"].get("manifest", {}).get("objects", 0)
    if manifests:
        per_round = cd["busy_objects_per_min"] * busy_s / 60 / manifests
        lines.append(
            f"Coditect rounds while busy (one manifest each): {manifests} in {busy_s:.0f} s "
            f"= {manifests / busy_s:.2f} rounds/s, {per_round:.2f} objects per round"
        )
    return lines


def table(ls, cd, args):
    head = ("", f"Litestream {ls['version']}", f"Coditect ({args.mix} mix)", "goal", "met")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows(ls, cd)]
    return "\n".join(lines + [""] + breakdown(ls, cd, args.busy))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coditect", required=True, help="the coditect binary (release build)")
    p.add_argument("--litestream", required=True, help="the litestream binary")
    p.add_argument("--rate", type=float, default=800.0, help="acknowledged writes a second (busy)")
    p.add_argument("--busy", type=float, default=60.0, help="seconds of writes")
    p.add_argument("--idle", type=float, default=60.0, help="seconds without writes")
    p.add_argument("--loss-runs", type=int, default=3, help="SIGKILL runs per tool")
    p.add_argument(
        "--restore-mib", type=int, default=100,
        help="also restore a database of this many MiB (0: skip)",
    )
    p.add_argument(
        "--mix", choices=["disaster", "events"], default="disaster",
        help="Coditect's writes: the disaster test's 4 events to 1 task, or events only",
    )
    p.add_argument("--only", choices=["both", "litestream", "coditect"], default="both")
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = p.parse_args()
    scratch = tempfile.mkdtemp(prefix="sync-side-by-side-")
    log(f"scratch folder {scratch}; {platform.platform()}, {os.cpu_count()} cores")
    results = {}
    try:
        if args.only in ("both", "litestream"):
            results["litestream"] = run_tool(
                lambda w: Litestream(args.litestream, w), args.rate, args.busy, args.idle,
                args.loss_runs, args.restore_mib, os.path.join(scratch, "litestream"),
            )
        if args.only in ("both", "coditect"):
            results["coditect"] = run_tool(
                lambda w: Coditect(args.coditect, w, args.mix), args.rate, args.busy, args.idle,
                args.loss_runs, args.restore_mib, os.path.join(scratch, "coditect"),
            )
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if len(results) == 2:
        print(table(results["litestream"], results["coditect"], args))
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
