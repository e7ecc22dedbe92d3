"""Paced writers: `rate` writes a second, each recorded once it is acknowledged.

A writer follows a fixed schedule (the n-th write is due at start + n / rate); a write
that comes late is sent at once, so the rate holds on average, but a writer that falls
more than a second behind drops the missed slots instead of bursting to catch up. Every
acknowledgement is kept as (name, monotonic seconds), so a loss window can be computed
against the moment of a kill.
"""

import threading
import time


class Acks:
    """Acknowledged writes, from any number of threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.items = []

    def add(self, name, at):
        with self._lock:
            self.items.append((name, at))

    def snapshot(self):
        with self._lock:
            return list(self.items)


def run_paced(rate, until, stop, write, acks, prefix):
    """Calls `write(name)` `rate` times a second until monotonic time `until` or `stop`
    is set. `write` returns True once the write is acknowledged, None when it was refused
    (not acknowledged; the writer goes on) and False when the other side is gone (the
    writer ends)."""
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        due = start + n / rate
        now = time.monotonic()
        if due >= until:
            return
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0:
            n += int((now - due) * rate)  # too far behind: skip, do not burst
            continue
        name = f"{prefix}n{n}"
        result = write(name)
        if result is False:
            return
        if result:
            acks.add(name, time.monotonic())
        n += 1


def paced_threads(threads, rate, until, stop, make_writer, acks):
    """`threads` writers sharing `rate`, each from `make_writer(i)`; returns them started."""
    out = []
    for i in range(threads):
        t = threading.Thread(
            target=run_paced,
            args=(rate / threads, until, stop, make_writer(i), acks, f"w{i}"),
            daemon=True,
        )
        t.start()
        out.append(t)
    return out
