//! Errors of the control plane, by area.

/// The resource store failed or refused a write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(String),
    /// A stored object could not be read back.
    #[error("store holds an unreadable object: {0}")]
    Corrupt(String),
    /// The data directory could not be prepared.
    #[error("store: {0}")]
    Io(String),
    /// Optimistic concurrency or lifecycle conflict; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The API server behind a store (the Kubernetes one) refused or did not answer.
    #[error("api server: {0}")]
    Api(String),
}

/// A runtime driver could not do what a reconcile asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// The instance did not start (the message carries its stderr tail or exit status).
    #[error("start {workspace}: {reason}")]
    StartFailed {
        /// The workspace.
        workspace: String,
        /// Why.
        reason: String,
    },
    /// Stopping failed.
    #[error("stop {workspace}: {reason}")]
    StopFailed {
        /// The workspace.
        workspace: String,
        /// Why.
        reason: String,
    },
    /// Files of the data directory could not be written.
    #[error("{0}")]
    Io(String),
    /// The instance is asked for and on its way (a pod being scheduled, pulled, probed);
    /// not a failure: look again soon.
    #[error("{workspace} is not ready yet: {reason}")]
    NotReady {
        /// The workspace.
        workspace: String,
        /// What it waits for.
        reason: String,
    },
    /// The API server (Kubernetes) refused or did not answer.
    #[error("{workspace}: {reason}")]
    Api {
        /// The workspace.
        workspace: String,
        /// What the API server said.
        reason: String,
    },
}

/// A reconcile step failed; the error policy decides when to try again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The driver failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A delegated reconciler (see [`crate::delegated`]) failed.
    #[error("{0}")]
    Delegated(String),
}
