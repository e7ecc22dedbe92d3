//! The six SQLite databases of a workspace, in WAL mode, each with one writer connection
//! and versioned schema migrations applied at open.
//!
//! Durability choice: `synchronous=NORMAL`. In WAL mode a commit then reaches the OS
//! before it returns, so it survives the *process* being killed (SIGKILL, OOM), which is
//! the failure the runtime must shrug off; only a power or kernel loss can take the last
//! commits, and that window is what object-store sync bounds (the ≤ 1 s loss goal on node
//! loss). `FULL` would add an fsync to every commit (p99 ≈ 2.7 ms on the CI disk) and
//! break the lock and task-start latency goals for no gain against that failure.
//!
//! One writer per database: the writer connection sits behind a mutex and every write is
//! one short transaction. Readers (the query API) open their own read-only connections, so
//! WAL lets them read while the writer writes.
//!
//! Change feed: every writer connection has SQLite's update hook note the tables a
//! transaction touches; once the commit has returned, the database sends one [`Change`]
//! naming them on a feed shared by the six ([`Databases::changes`]), so live queries
//! re-run only when a table they read was written, and only after the rows are visible.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction};
use tokio::sync::broadcast;

use crate::error::StorageError;

/// The six databases, by name.
pub const NAMES: [&str; 6] = [
    "sessions",
    "messages",
    "artifacts",
    "parsed_sessions",
    "agent_metrics",
    "workspace_idx",
];

/// Schema migrations per database; entry `i` takes the schema from version `i` to `i + 1`.
fn migrations(db: &str) -> &'static [&'static str] {
    match db {
        "sessions" => &[
            "CREATE TABLE sessions (
                id INTEGER PRIMARY KEY,
                started_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                renewals INTEGER NOT NULL DEFAULT 0,
                ended_at INTEGER,
                end_reason TEXT
            );
            CREATE TABLE tasks (
                id INTEGER PRIMARY KEY,
                agent TEXT NOT NULL,
                title TEXT NOT NULL,
                prompt TEXT NOT NULL,
                priority INTEGER NOT NULL,
                state TEXT NOT NULL,
                submitted_by TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                started_at INTEGER,
                finished_at INTEGER,
                result TEXT
            );
            CREATE INDEX tasks_by_queue ON tasks (agent, state, priority DESC, id);",
            // Each task's conversation with its model, turn by turn, so a task resumed
            // after a restart carries on where it was (with the provider's state).
            "CREATE TABLE conversation_turns (
                task INTEGER NOT NULL,
                step INTEGER NOT NULL,
                agent TEXT NOT NULL,
                turn TEXT NOT NULL,
                PRIMARY KEY (task, step)
            );",
        ],
        "messages" => &["CREATE TABLE messages (
                id INTEGER PRIMARY KEY,
                ts INTEGER NOT NULL,
                sender TEXT NOT NULL,
                recipient TEXT,
                topic TEXT,
                body TEXT NOT NULL
            );
            CREATE INDEX messages_by_recipient ON messages (recipient, id);
            CREATE INDEX messages_by_topic ON messages (topic, id);"],
        "artifacts" => &[
            "CREATE TABLE artifacts (
                id INTEGER PRIMARY KEY,
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                size INTEGER NOT NULL,
                agent TEXT NOT NULL,
                fencing_token INTEGER NOT NULL,
                created_at INTEGER NOT NULL
            );
            CREATE INDEX artifacts_by_path ON artifacts (path, id);",
            // The agent step (task, turn, call) that made a write, so a step re-run after a
            // restart finds its write done instead of doing it twice.
            "ALTER TABLE artifacts ADD COLUMN step TEXT;
            CREATE INDEX artifacts_by_step ON artifacts (step) WHERE step IS NOT NULL;",
        ],
        "parsed_sessions" => &["CREATE TABLE event_digest (
                seq INTEGER PRIMARY KEY,
                session INTEGER NOT NULL,
                agent TEXT NOT NULL,
                type TEXT NOT NULL,
                ts TEXT NOT NULL,
                summary TEXT NOT NULL
            );"],
        "agent_metrics" => &["CREATE TABLE samples (
                id INTEGER PRIMARY KEY,
                agent TEXT NOT NULL,
                metric TEXT NOT NULL,
                value REAL NOT NULL,
                ts INTEGER NOT NULL
            );
            CREATE INDEX samples_by_agent ON samples (agent, metric, ts);"],
        "workspace_idx" => &[
            "CREATE TABLE locks (
                token INTEGER PRIMARY KEY,
                path TEXT NOT NULL,
                mode TEXT NOT NULL,
                holder TEXT NOT NULL,
                granted_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE files (
                path TEXT PRIMARY KEY,
                sha256 TEXT NOT NULL,
                size INTEGER NOT NULL,
                fencing_token INTEGER NOT NULL,
                agent TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            );",
            // The leases each task's run took through the agent tools: they end with the
            // run (any ending), and a re-run of the task takes its own lease back.
            "CREATE TABLE run_locks (
                task INTEGER NOT NULL,
                token INTEGER NOT NULL,
                PRIMARY KEY (task, token)
            );",
        ],
        _ => &[],
    }
}

/// One committed write: the database and the tables it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The database written.
    pub db: &'static str,
    /// The tables whose rows changed, sorted.
    pub tables: Arc<[String]>,
}

/// How many changes the feed holds for a slow follower before it lags (and re-reads all).
const FEED_DEPTH: usize = 1024;

/// The tables written since the last commit, noted by the update hook.
type Touched = Arc<Mutex<BTreeSet<String>>>;

/// One database: its file and its single writer connection.
#[derive(Debug)]
pub struct Database {
    name: &'static str,
    path: PathBuf,
    writer: Mutex<Connection>,
    touched: Touched,
    feed: broadcast::Sender<Change>,
}

impl Database {
    /// Opens (creating if needed) and migrates the database `name` in `dir`.
    ///
    /// # Errors
    /// [`StorageError::SchemaTooNew`] when the file was written by a newer binary (nothing
    /// is changed then); [`StorageError::Sqlite`] for anything SQLite refuses.
    pub fn open(dir: &Path, name: &'static str) -> Result<Self, StorageError> {
        if create_fresh(dir, name)? {
            sync_folder(dir)?;
        }
        Self::open_feeding(dir, name, broadcast::channel(FEED_DEPTH).0)
    }

    /// [`Database::open`] of a database that exists ([`create_fresh`] made it if it did
    /// not), sending its changes on `feed`.
    fn open_feeding(
        dir: &Path,
        name: &'static str,
        feed: broadcast::Sender<Change>,
    ) -> Result<Self, StorageError> {
        let path = dir.join(format!("{name}.db"));
        let err = StorageError::sqlite;
        let mut conn = Connection::open(&path).map_err(err(name))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(err(name))?;
        // Refuse a newer schema before changing anything about the file.
        check_version(&conn, name)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err(name))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err(name))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err(name))?;
        migrate(&conn, name)?;
        let touched = Touched::default();
        let noted = touched.clone();
        conn.update_hook(Some(move |_, _: &str, table: &str, _| {
            let mut t = noted.lock().unwrap_or_else(|p| p.into_inner());
            if !t.contains(table) {
                t.insert(table.to_string());
            }
        }))
        .map_err(err(name))?;
        let dropped = touched.clone();
        conn.rollback_hook(Some(move || {
            dropped.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }))
        .map_err(err(name))?;
        Ok(Database {
            name,
            path,
            writer: Mutex::new(conn),
            touched,
            feed,
        })
    }

    /// Sends the tables written since the last call, if any, on the change feed. Called
    /// with the writer released only after its transaction has committed (or rolled back,
    /// which the rollback hook has already cleared).
    fn announce(&self) {
        let tables: Vec<String> = {
            let mut t = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if t.is_empty() {
                return;
            }
            std::mem::take(&mut *t).into_iter().collect()
        };
        // No follower is not an error: nobody is watching.
        let _ = self.feed.send(Change {
            db: self.name,
            tables: tables.into(),
        });
    }

    /// The database's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its write-ahead log.
    pub fn wal_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push("-wal");
        PathBuf::from(p)
    }

    /// Runs `f` with the writer connection held, so no write transaction runs meanwhile
    /// (sync reads the WAL and checkpoints this way).
    pub fn with_writer<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let value = {
            let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        };
        self.announce();
        value
    }

    /// Runs `f` in one write transaction and commits it.
    ///
    /// # Errors
    /// Whatever `f` or the commit returns, as [`StorageError::Sqlite`].
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StorageError> {
        let value = {
            let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn
                .transaction()
                .map_err(StorageError::sqlite(self.name))?;
            let value = f(&tx).map_err(StorageError::sqlite(self.name));
            // A failed body rolls back as `tx` drops; the hook clears what it noted.
            let value = value?;
            tx.commit().map_err(StorageError::sqlite(self.name))?;
            value
        };
        self.announce();
        Ok(value)
    }

    /// Runs `f` on the writer connection outside a transaction (reads that must see the
    /// writer's latest state).
    ///
    /// # Errors
    /// Whatever `f` returns, as [`StorageError::Sqlite`].
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StorageError> {
        let value = {
            let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn).map_err(StorageError::sqlite(self.name))
        };
        // A write made in autocommit mode here is committed by now.
        self.announce();
        value
    }

    /// A new read-only connection, for queries that must not be able to write.
    ///
    /// # Errors
    /// When SQLite cannot open the file.
    pub fn read_only(&self) -> Result<Connection, StorageError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)
            .map_err(StorageError::sqlite(self.name))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(StorageError::sqlite(self.name))?;
        Ok(conn)
    }

    /// `PRAGMA integrity_check`: `"ok"` or SQLite's list of problems.
    ///
    /// # Errors
    /// When the check cannot run.
    pub fn integrity_check(&self) -> Result<String, StorageError> {
        self.read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    }

    /// The schema version on disk.
    ///
    /// # Errors
    /// When the pragma cannot be read.
    pub fn schema_version(&self) -> Result<i64, StorageError> {
        self.read(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
    }
}

/// The schema version on disk, refused when newer than this binary knows.
fn check_version(conn: &Connection, name: &'static str) -> Result<i64, StorageError> {
    let known = i64::try_from(migrations(name).len()).unwrap_or(i64::MAX);
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(StorageError::sqlite(name))?;
    if found > known {
        return Err(StorageError::SchemaTooNew {
            db: name,
            found,
            known,
        });
    }
    Ok(found)
}

/// Makes `<name>.db` when it does not exist yet: built whole, migrated and in WAL mode,
/// under a scratch name, then fsynced once and renamed into place; true when it did (the
/// folder's entry still needs an fsync, [`sync_folder`]).
///
/// Why: SQLite makes a new file in rollback-journal mode, so its switch to WAL is a
/// journaled transaction: a journal file made and deleted, and four fsyncs (journal,
/// folder, journal, database) per database, 24 per workspace start. Built under a
/// scratch name, nothing in the file needs protecting until it is complete, so the build
/// runs with no journal and no fsync; the one fsync and the rename make it durable
/// before the real open, and a start cut off midway leaves only a scratch file, which
/// the next start removes. Nothing is acknowledged before the databases are open, so the
/// durability of everything after stays as it was.
fn create_fresh(dir: &Path, name: &'static str) -> Result<bool, StorageError> {
    let path = dir.join(format!("{name}.db"));
    if path.exists() {
        return Ok(false);
    }
    let scratch = dir.join(format!("{name}.db.new"));
    for leftover in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{leftover}", scratch.display()));
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StorageError::io("remove scratch database", file)(e));
            }
            _ => {}
        }
    }
    let err = StorageError::sqlite;
    {
        let conn = Connection::open(&scratch).map_err(err(name))?;
        conn.pragma_update(None, "journal_mode", "OFF")
            .map_err(err(name))?;
        conn.pragma_update(None, "synchronous", "OFF")
            .map_err(err(name))?;
        migrate(&conn, name)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err(name))?;
        conn.close().map_err(|(_, e)| err(name)(e))?;
    }
    std::fs::File::open(&scratch)
        .and_then(|f| f.sync_all())
        .map_err(StorageError::io("fsync new database", &scratch))?;
    std::fs::rename(&scratch, &path).map_err(StorageError::io("place new database", &path))?;
    Ok(true)
}

/// fsyncs a folder, so the entries made or renamed in it survive a power loss.
fn sync_folder(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("fsync folder", dir))
}

fn migrate(conn: &Connection, name: &'static str) -> Result<(), StorageError> {
    let steps = migrations(name);
    let found = check_version(conn, name)?;
    for (version, sql) in steps
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let next = i64::try_from(version + 1).unwrap_or(i64::MAX);
        let tx = conn
            .unchecked_transaction()
            .map_err(StorageError::sqlite(name))?;
        tx.execute_batch(sql).map_err(StorageError::sqlite(name))?;
        tx.pragma_update(None, "user_version", next)
            .map_err(StorageError::sqlite(name))?;
        tx.commit().map_err(StorageError::sqlite(name))?;
        tracing::info!(db = name, version = next, "schema migrated");
    }
    Ok(())
}

/// All six databases of a workspace.
#[derive(Debug)]
pub struct Databases {
    /// Sessions and task queues.
    pub sessions: Database,
    /// The message bus.
    pub messages: Database,
    /// Files written by agents, with the token that fenced each write.
    pub artifacts: Database,
    /// A queryable digest of the event log.
    pub parsed_sessions: Database,
    /// Per-agent metrics (tokens, latency, errors).
    pub agent_metrics: Database,
    /// Lock table, counters, file index.
    pub workspace_idx: Database,
    feed: broadcast::Sender<Change>,
}

impl Databases {
    /// Opens and migrates all six in `dir`.
    ///
    /// # Errors
    /// The first database that fails to open.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let feed = broadcast::channel(FEED_DEPTH).0;
        // New ones are made first, so one folder fsync serves all six.
        let mut made = false;
        for name in NAMES {
            made |= create_fresh(dir, name)?;
        }
        if made {
            sync_folder(dir)?;
        }
        let open = |name| Database::open_feeding(dir, name, feed.clone());
        Ok(Databases {
            sessions: open("sessions")?,
            messages: open("messages")?,
            artifacts: open("artifacts")?,
            parsed_sessions: open("parsed_sessions")?,
            agent_metrics: open("agent_metrics")?,
            workspace_idx: open("workspace_idx")?,
            feed,
        })
    }

    /// Follows the commits of all six: one [`Change`] per committed write, in commit order
    /// per database. A follower that falls [`FEED_DEPTH`] behind gets `Lagged` and must
    /// treat every table as changed.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// The database called `name`.
    pub fn by_name(&self, name: &str) -> Option<&Database> {
        self.all().into_iter().find(|d| d.name() == name)
    }

    /// All six, in [`NAMES`] order.
    pub fn all(&self) -> [&Database; 6] {
        [
            &self.sessions,
            &self.messages,
            &self.artifacts,
            &self.parsed_sessions,
            &self.agent_metrics,
            &self.workspace_idx,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_all_six_in_wal_mode_and_migrates_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dbs = Databases::open(tmp.path()).unwrap();
        for db in dbs.all() {
            let mode: String = db
                .read(|c| c.pragma_query_value(None, "journal_mode", |r| r.get(0)))
                .unwrap();
            assert_eq!(mode, "wal", "{}", db.name());
            let newest = migrations(db.name()).len() as i64;
            assert_eq!(db.schema_version().unwrap(), newest, "{}", db.name());
            assert_eq!(db.integrity_check().unwrap(), "ok");
        }
        drop(dbs);
        let again = Databases::open(tmp.path()).unwrap();
        assert_eq!(
            again.sessions.schema_version().unwrap(),
            2,
            "sessions has two migrations"
        );
    }

    #[test]
    fn a_new_database_is_built_aside_and_a_start_cut_off_midway_leaves_nothing_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        // What a start killed while building left: a half-made scratch file and its WAL.
        std::fs::write(tmp.path().join("sessions.db.new"), b"half a database").unwrap();
        std::fs::write(tmp.path().join("sessions.db.new-wal"), b"junk").unwrap();
        let dbs = Databases::open(tmp.path()).unwrap();
        assert_eq!(dbs.sessions.integrity_check().unwrap(), "ok");
        assert_eq!(
            dbs.sessions.schema_version().unwrap(),
            migrations("sessions").len() as i64
        );
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.contains(".new") && !n.ends_with("-journal")),
            "no scratch file or rollback journal stays: {names:?}"
        );
        // Built aside, it is still a WAL database that takes writes and keeps them.
        dbs.workspace_idx
            .write(|tx| {
                tx.execute_batch("CREATE TABLE probe (v INTEGER); INSERT INTO probe VALUES (7)")
            })
            .unwrap();
        drop(dbs);
        let again = Databases::open(tmp.path()).unwrap();
        let v: i64 = again
            .workspace_idx
            .read(|c| c.query_row("SELECT v FROM probe", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(v, 7);
    }

    #[test]
    fn a_commit_announces_the_tables_it_changed_and_a_rollback_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dbs = Databases::open(tmp.path()).unwrap();
        let mut feed = dbs.changes();
        dbs.workspace_idx
            .write(|tx| {
                tx.execute("INSERT INTO counters (name, value) VALUES ('a', 1)", [])?;
                tx.execute(
                    "INSERT INTO locks (token, path, mode, holder, granted_at, expires_at)
                     VALUES (1, 'p', 'exclusive', 'x', 0, 1)",
                    [],
                )
            })
            .unwrap();
        let change = feed.try_recv().unwrap();
        assert_eq!(change.db, "workspace_idx");
        assert_eq!(
            &*change.tables,
            &["counters".to_string(), "locks".to_string()]
        );
        let failed = dbs.messages.write(|tx| {
            tx.execute(
                "INSERT INTO messages (ts, sender, body) VALUES (1, 'a', 'b')",
                [],
            )?;
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])
        });
        assert!(failed.is_err());
        dbs.sessions
            .read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .unwrap();
        assert!(
            feed.try_recv().is_err(),
            "a rolled-back write and a read announce nothing"
        );
        dbs.messages
            .read(|c| {
                c.execute(
                    "INSERT INTO messages (ts, sender, body) VALUES (1, 'a', 'b')",
                    [],
                )
            })
            .unwrap();
        assert_eq!(&*feed.try_recv().unwrap().tables, &["messages".to_string()]);
    }

    #[test]
    fn refuses_a_newer_schema_without_touching_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("messages.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Database::open(tmp.path(), "messages").unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::SchemaTooNew {
                    found: 99,
                    known: 1,
                    ..
                }
            ),
            "{err}"
        );
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 99);
    }
}
