"""The Coditect side: the real `coditect workspace-runtime` (release build) syncing to a
local-folder bucket every second, driven through its HTTP API by writers that post a mix
like the disaster test's (tests/sync_disaster.rs): four events (`POST /v1/events`) to one
task (`POST /v1/tasks`); a write counts once the API answered 200. `coditect backup
restore WORKSPACE --bucket URL --to DIR` brings it back without a control plane."""

import glob
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import time

SPEC = """apiVersion: coditect.io/v1
kind: Workspace
metadata: {name: bench, organization: acme, team: qa}
spec:
  owner: tester
  agents: [{name: alpha, provider: offline}]
  sync: {databasesInterval: 1s, eventsInterval: 1s}
"""


class Coditect:
    """One workspace instance under `workdir`."""

    name = "Coditect"
    writer_threads = 4

    def __init__(self, binary, workdir, mix="disaster"):
        self.mix = mix
        self.binary = binary
        self.workdir = workdir
        self.root = os.path.join(workdir, "machine")
        self.bucket = os.path.join(workdir, "bucket")
        self.replica = self.bucket
        self.spec = os.path.join(workdir, "workspace.yaml")
        self.log = os.path.join(workdir, "runtime.log")
        self.proc = None
        self.addr = None
        self.token = None
        os.makedirs(workdir, exist_ok=True)
        with open(self.spec, "w") as f:
            f.write(SPEC)

    def version(self):
        out = subprocess.run([self.binary, "version"], capture_output=True, text=True)
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "?"

    def start(self):
        """Starts the instance; returns once it printed its ready line (it has taken the
        workspace in the bucket and shipped its first generation by then)."""
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                self.binary, "workspace-runtime", "--spec", self.spec, "--root", self.root,
                "--bucket", "file://" + self.bucket,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        line = self.proc.stdout.readline()
        try:
            ready = json.loads(line)
        except json.JSONDecodeError:
            raise RuntimeError(f"no ready line from the runtime ({line!r}); see {self.log}")
        host, port = ready["addr"].rsplit(":", 1)
        self.addr = (host, int(port))
        with open(os.path.join(ready["root"], "api-token")) as f:
            self.token = f.read().strip()

    def _connection(self):
        return http.client.HTTPConnection(*self.addr, timeout=10)

    def request(self, method, path, body=None, conn=None):
        own = conn is None
        conn = conn or self._connection()
        headers = {"authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            payload = r.read()
            return r.status, payload
        finally:
            if own:
                conn.close()

    def status(self):
        _, body = self.request("GET", "/v1/status")
        return json.loads(body)

    def counters(self):
        """What the instance says it uploaded (its own count, for a cross-check)."""
        sync = self.status().get("sync") or {}
        return {"uploads": sync.get("uploads"), "uploaded_bytes": sync.get("uploadedBytes")}

    def synced(self):
        """Whether the bucket holds everything (the first generation included)."""
        sync = self.status().get("sync") or {}
        return bool(sync.get("lastSyncedMs")) and not sync.get("pendingSinceMs")

    def wait_synced(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.synced():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the bucket did not catch up in {timeout} s; see {self.log}")

    def fill(self, mib):
        """Creates the workspace, then adds `mib` MiB of incompressible 64 KiB rows to its
        artifacts database while the instance is stopped (as the sync bench does)."""
        self.start()
        self.wait_synced()
        self.stop()
        [db] = glob.glob(os.path.join(self.root, "**", "databases", "artifacts.db"), recursive=True)
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("CREATE TABLE bench_fill (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        c.execute("BEGIN")
        for _ in range(mib * 16):
            c.execute("INSERT INTO bench_fill (data) VALUES (?)", (os.urandom(64 * 1024),))
        c.execute("COMMIT")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()

    def replicate_fill(self, _mib):
        """Starts the instance (a new generation: the filled database is snapshotted) and
        stops it once the bucket holds everything."""
        self.start()
        self.wait_synced()
        self.stop()

    def make_writer(self, _index):
        """A kept-alive connection; with the `disaster` mix every fifth write a task, the
        others events; with the `events` mix only events."""
        state = {"conn": self._connection(), "n": 0}

        def write(name):
            n = state["n"]
            state["n"] += 1
            if self.mix == "disaster" and n % 5 == 0:
                path, body = "/v1/tasks", {"agent": "alpha", "title": name}
            else:
                path = "/v1/events"
                body = {"agent": "alpha", "type": "agent_message", "data": {"name": name}}
            try:
                status, _ = self.request("POST", path, body, state["conn"])
            except (OSError, http.client.HTTPException):
                # One reconnect (a kept-alive connection the server closed); a second
                # failure means the instance is gone.
                try:
                    state["conn"].close()
                    state["conn"] = self._connection()
                    status, _ = self.request("POST", path, body, state["conn"])
                except (OSError, http.client.HTTPException):
                    return False
            return True if status == 200 else None

        return write

    def stop(self):
        """A clean stop (SIGTERM: a final sync round ships everything)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def restore(self, dest_dir):
        """Restores the bucket into `dest_dir`; returns (seconds, restored names)."""
        started = time.monotonic()
        r = subprocess.run(
            [
                self.binary, "backup", "restore", "bench", "--bucket", "file://" + self.bucket,
                "--to", dest_dir,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "CI": "1"},  # no progress bar
        )
        took = time.monotonic() - started
        if r.returncode != 0:
            raise RuntimeError(f"coditect backup restore failed: {r.stdout}{r.stderr}")
        return took, restored_names(dest_dir)

    @staticmethod
    def kind(path):
        """What an object is, from its path in the bucket."""
        if path.endswith("/manifest.json") or path == "manifest.json":
            return "manifest"
        if "/databases/" in path and "/wal/" in path:
            return "WAL batch"
        if "/databases/" in path and "/snapshot/" in path:
            return "database snapshot"
        if "/sessions/" in path:
            return "event segment"
        if "/projects/" in path:
            return "project file"
        return "other"


def restored_names(dest_dir):
    """The write names a restored workspace folder holds: task titles from the sessions
    database, `data.name` of the events in the event log."""
    names = set()
    dbs = glob.glob(os.path.join(dest_dir, "**", "databases", "sessions.db"), recursive=True)
    for db in dbs:
        c = sqlite3.connect(db)
        names.update(row[0] for row in c.execute("SELECT title FROM tasks"))
        c.close()
    for log in glob.glob(os.path.join(dest_dir, "**", "sessions", "*.jsonl"), recursive=True):
        with open(log) as f:
            for line in f:
                try:
                    name = json.loads(line).get("data", {}).get("name")
                except (json.JSONDecodeError, AttributeError):
                    continue
                if isinstance(name, str):
                    names.add(name)
    if not dbs:
        raise RuntimeError(f"no sessions database under {dest_dir}")
    return names
