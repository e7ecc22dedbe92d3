//! Errors of the workspace runtime, one enum per area, named for what went wrong.

use std::path::PathBuf;

/// Opening or using the workspace's storage (folder, databases, event log).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another runtime instance owns the folder.
    #[error("workspace folder {path} is in use by another runtime instance (lock file {lock})")]
    FolderInUse {
        /// The workspace folder.
        path: PathBuf,
        /// The lock file held by the other instance.
        lock: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("create folder", "open event log").
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("database {db}: {source}")]
    Sqlite {
        /// Which of the six databases.
        db: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A database was written by a newer binary; refusing to touch it.
    #[error(
        "database {db} has schema version {found}, newer than this binary's {known}; upgrade coditect"
    )]
    SchemaTooNew {
        /// Which database.
        db: &'static str,
        /// Its version on disk.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// The event log is damaged somewhere other than a torn final line.
    #[error("event log {path} is corrupt at line {line}: {reason}")]
    CorruptLog {
        /// The segment file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The event log writer has stopped (the runtime is shutting down or failed).
    #[error("event log is closed")]
    LogClosed,
    /// A stored record cannot be read back (written by another binary, or damaged).
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Wraps an I/O error with what was being done and where.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { what, path, source }
    }

    /// Whether the disk (or the user's quota) is full: the same write can succeed once
    /// space is freed, without a restart.
    pub fn is_disk_full(&self) -> bool {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        match self {
            StorageError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(ENOSPC | EDQUOT))
                    || source.kind() == std::io::ErrorKind::StorageFull
            }
            StorageError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DiskFull)
            ),
            _ => false,
        }
    }

    /// The same failure again, for each waiter of a batch that failed as one (the error
    /// is not `Clone`): what failed, where, and the OS's error code, so a full disk is
    /// still a full disk to each of them.
    pub fn again(&self) -> StorageError {
        match self {
            StorageError::Io { what, path, source } => StorageError::Io {
                what,
                path: path.clone(),
                source: source.raw_os_error().map_or_else(
                    || std::io::Error::new(source.kind(), source.to_string()),
                    std::io::Error::from_raw_os_error,
                ),
            },
            other => StorageError::Io {
                what: "storage",
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }

    /// What a client is told: what failed and why, never a host path (the log has those).
    pub fn client_reason(&self) -> String {
        match self {
            StorageError::FolderInUse { .. } => {
                "the workspace folder is in use by another runtime instance".into()
            }
            StorageError::Io { what, source, .. } => format!("{what}: {source}"),
            StorageError::CorruptLog { line, reason, .. } => {
                format!("event log is corrupt at line {line}: {reason}")
            }
            other => other.to_string(),
        }
    }

    /// Wraps a SQLite error with the database's name.
    pub fn sqlite(db: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| StorageError::Sqlite { db, source }
    }
}

/// Refused or failed lock operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// The bounded wait ran out; names who holds the conflicting lock.
    #[error(
        "timed out after {waited_ms} ms waiting for {path}: held by {holder} (token {token}, {mode} lock on {held_path})"
    )]
    Timeout {
        /// The requested path.
        path: String,
        /// Milliseconds waited.
        waited_ms: u64,
        /// The agent holding the conflicting lock.
        holder: String,
        /// Its fencing token.
        token: u64,
        /// The path it holds (may be an ancestor or descendant of `path`).
        held_path: String,
        /// Its mode.
        mode: String,
    },
    /// No live lease has this token (released, expired, or never granted).
    #[error("no live lease with fencing token {token}")]
    UnknownToken {
        /// The token presented.
        token: u64,
    },
    /// A write presented a token that no longer (or never did) cover the path exclusively.
    #[error("stale fencing token {token} for {path}: {reason}")]
    StaleFencingToken {
        /// The token presented.
        token: u64,
        /// The path written.
        path: String,
        /// Why it is stale.
        reason: String,
    },
    /// The path is not a valid workspace-relative path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Persisting the lock table failed.
    #[error("persist lock table: {0}")]
    Storage(String),
    /// Persisting the lock table failed because the disk is full.
    #[error("persist lock table: {0}")]
    DiskFull(String),
}

impl From<StorageError> for LockError {
    fn from(e: StorageError) -> Self {
        if e.is_disk_full() {
            LockError::DiskFull(e.client_reason())
        } else {
            LockError::Storage(e.client_reason())
        }
    }
}

/// Refused or failed task operations.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No such task.
    #[error("no task {0}")]
    NotFound(i64),
    /// No such agent in this workspace.
    #[error("no agent {0:?} in this workspace")]
    UnknownAgent(String),
    /// No agent of the workspace holds the role a task was routed by.
    #[error("no agent in this workspace holds role {0:?}")]
    NoAgentForRole(String),
    /// The transition is not allowed from the task's current state.
    #[error("task {id} is {state}; cannot {action}")]
    InvalidTransition {
        /// The task.
        id: i64,
        /// Its state.
        state: String,
        /// What was asked.
        action: &'static str,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Failed message-bus operations.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A message needs exactly one of `to` and `topic`.
    #[error("a message needs exactly one of \"to\" (an agent) or \"topic\"")]
    NoRecipient,
    /// No such agent in this workspace.
    #[error("no agent {0:?} in this workspace")]
    UnknownAgent(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
