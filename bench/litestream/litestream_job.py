"""The Litestream side: a Python sqlite3 writer (WAL mode, one small committed insert per
write) on a database that `litestream replicate` ships to a local-folder replica with a
1 s sync interval; `litestream restore` brings it back."""

import os
import sqlite3
import subprocess
import time

from meter import folder_bytes

CONFIG = """dbs:
  - path: {db}
    replica:
      type: file
      path: {replica}
      sync-interval: 1s
"""

SCHEMA = """CREATE TABLE IF NOT EXISTS writes (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, agent TEXT NOT NULL, type TEXT NOT NULL,
  data TEXT NOT NULL, ts_ms INTEGER NOT NULL)"""


class Litestream:
    """One replicated database under `workdir`."""

    name = "Litestream"

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.db = os.path.join(workdir, "app.db")
        self.replica = os.path.join(workdir, "replica")
        self.config = os.path.join(workdir, "litestream.yml")
        self.log = os.path.join(workdir, "litestream.log")
        self.proc = None
        os.makedirs(workdir, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(CONFIG.format(db=self.db, replica=self.replica))
        c = self._connect()
        c.execute(SCHEMA)
        c.close()

    def version(self):
        out = subprocess.run([self.binary, "version"], capture_output=True, text=True)
        return out.stdout.strip()

    def _connect(self):
        c = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA busy_timeout=5000")
        return c

    def start(self):
        """Starts replicating; returns once the first snapshot is in the replica."""
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "replicate", "-config", self.config],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.isdir(os.path.join(self.replica, "ltx")) and any(
                files for _, _, files in os.walk(os.path.join(self.replica, "ltx"))
            ):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"litestream exited {self.proc.returncode}; see {self.log}")
            time.sleep(0.05)
        raise RuntimeError(f"litestream wrote no snapshot in 30 s; see {self.log}")

    def fill(self, mib):
        """Adds `mib` MiB of incompressible 64 KiB rows, before replication starts."""
        c = self._connect()
        c.execute("CREATE TABLE bench_fill (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        c.execute("BEGIN")
        for _ in range(mib * 16):
            c.execute("INSERT INTO bench_fill (data) VALUES (?)", (os.urandom(64 * 1024),))
        c.execute("COMMIT")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()

    def replicate_fill(self, mib):
        """Replicates the filled database and stops once the replica holds it."""
        self.start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if folder_bytes(self.replica) >= mib * 0.95 * (1 << 20):
                break
            time.sleep(0.2)
        time.sleep(2)
        self.stop()

    def make_writer(self, _index):
        """One connection, one committed insert per write (SQLite has one writer)."""
        c = self._connect()

        def write(name):
            c.execute(
                "INSERT INTO writes (name, agent, type, data, ts_ms) VALUES (?, ?, ?, ?, ?)",
                (name, "alpha", "agent_message", '{"name":"%s"}' % name, int(time.time() * 1000)),
            )
            return True

        return write

    writer_threads = 1

    def stop(self):
        """A clean stop (SIGTERM: Litestream syncs what is pending before it exits)."""
        self.proc.terminate()
        self.proc.wait(timeout=60)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def restore(self, dest_dir):
        """Restores the replica into `dest_dir`; returns (seconds, restored names)."""
        os.makedirs(dest_dir, exist_ok=True)
        out = os.path.join(dest_dir, "app.db")
        started = time.monotonic()
        r = subprocess.run(
            [self.binary, "restore", "-o", out, "file://" + self.replica],
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - started
        if r.returncode != 0:
            raise RuntimeError(f"litestream restore failed: {r.stdout}{r.stderr}")
        c = sqlite3.connect(out)
        names = {row[0] for row in c.execute("SELECT name FROM writes")}
        c.close()
        return took, names

    @staticmethod
    def kind(path):
        """What an object is, from its path in the replica."""
        parts = path.split("/")
        if len(parts) >= 2 and parts[0] == "ltx":
            return f"LTX level {parts[1]}"
        return "other"
