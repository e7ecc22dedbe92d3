//! What can go wrong in a migration, and where: a problem names the v1 object (and the
//! line, for JSON Lines) and says why, so a platform team can fix the export and run again.

use std::fmt;

/// A problem found in the v1 export, at its place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The object, relative to the export (`users/u1/sandboxes/s1/meta.json`).
    pub object: String,
    /// The line (from 1), for `users.jsonl` and transcripts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    /// A problem with a whole object.
    pub fn at(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem {
            object: object.into(),
            line: None,
            reason: reason.into(),
        }
    }

    /// A problem on one line of an object.
    pub fn on_line(object: impl Into<String>, line: usize, reason: impl Into<String>) -> Self {
        Problem {
            object: object.into(),
            line: Some(line),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.object, self.reason),
            None => write!(f, "{}: {}", self.object, self.reason),
        }
    }
}

/// Why a migration step could not run at all (as opposed to one user's [`Problem`]).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The export could not be opened or read.
    #[error("v1 export {url}: {source}")]
    Export {
        /// Its URL.
        url: String,
        /// Why.
        source: coditect_runtime::sync::StoreError,
    },
    /// `users.jsonl` is missing: nothing says who the users are.
    #[error("v1 export {url}: no users.jsonl (the export's list of users)")]
    NoUsers {
        /// The export's URL.
        url: String,
    },
    /// The migration's spec cannot be used.
    #[error("{0}")]
    Spec(String),
    /// The v2 side (a workspace, or a folder) refused or did not answer.
    #[error("v2 workspace: {0}")]
    Destination(String),
}

impl MigrateError {
    /// The control plane's store refused or failed.
    pub(crate) fn store(e: impl std::fmt::Display) -> Self {
        MigrateError::Destination(format!("the control plane's store: {e}"))
    }
}
