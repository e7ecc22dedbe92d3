"""What a replica folder is sent: every object that lands in it, counted as it lands.

Both tools write an object to a local-folder replica the same way a bucket receives it:
a temporary file renamed into place (or a file written in place and closed). The meter
watches the folder with inotify (Linux, through ctypes: no package needed) and records,
for each object that appears under its final name, when it appeared, its path relative to
the folder and its size. A name that is rewritten (a manifest) counts each time; a write
seen twice (two close events for the same content) counts once, keyed by inode, mtime
and size. Temporary names (a leading dot, a `.tmp` suffix) and folders are not objects.

The meter knows nothing about either tool: the same code measures both sides.
"""

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE
EVENT = struct.Struct("iIII")


def is_temporary(name):
    return name.startswith(".") or name.endswith(".tmp")


class ReplicaMeter:
    """Watches `root` (created if missing) from `start()` to `stop()`.

    `writes` is a list of (monotonic seconds, relative path, bytes); `deletes` a list of
    (monotonic seconds, relative path). `overflowed` is True if the kernel dropped events
    (then the counts are a lower bound, and the report says so).
    """

    def __init__(self, root):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._fd = libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._dirs = {}
        self._seen = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.writes = []
        self.deletes = []
        self.overflowed = False
        self._watch_tree(self.root)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        # Let the kernel deliver what is queued, then drain it.
        time.sleep(0.2)
        self._stop.set()
        self._thread.join()
        os.close(self._fd)

    def _watch_tree(self, path):
        """Watches `path` and everything under it; files already there are counted (they
        landed before the watch could see them)."""
        wd = self._add(self._fd, path.encode(), MASK)
        if wd < 0:
            return  # gone again
        self._dirs[wd] = path
        try:
            entries = list(os.scandir(path))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                self._watch_tree(entry.path)
            elif not is_temporary(entry.name):
                self._landed(entry.path)

    def _landed(self, path):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return  # replaced or deleted before it could be looked at: counted by its successor
        key = (path, st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            self.writes.append((time.monotonic(), os.path.relpath(path, self.root), st.st_size))

    def _run(self):
        while True:
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                if self._stop.is_set():
                    return
                continue
            try:
                data = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                continue
            at = 0
            while at < len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, at)
                raw = data[at + EVENT.size : at + EVENT.size + length]
                at += EVENT.size + length
                name = raw.split(b"\0", 1)[0].decode(errors="replace")
                if mask & IN_Q_OVERFLOW:
                    self.overflowed = True
                    continue
                parent = self._dirs.get(wd)
                if parent is None or not name:
                    continue
                path = os.path.join(parent, name)
                if mask & IN_ISDIR:
                    if mask & (IN_CREATE | IN_MOVED_TO):
                        self._watch_tree(path)
                    continue
                if is_temporary(name):
                    continue
                if mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
                    self._landed(path)
                elif mask & IN_DELETE:
                    with self._lock:
                        self.deletes.append((time.monotonic(), os.path.relpath(path, self.root)))


def window(records, start, end):
    """The records in [start, end)."""
    return [r for r in records if start <= r[0] < end]


def folder_bytes(root):
    """Bytes of the objects under `root` (temporary files and lock files left out)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if not is_temporary(f):
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except FileNotFoundError:
                    pass
    return total
