//! The workspace's folder, laid out like its place in the bucket:
//! `organizations/{org}/teams/{team}/users/{user}/workspaces/{ws}/{projects,databases,sessions,vector-store}/`.
//!
//! One runtime instance owns a folder at a time: it holds an exclusive OS lock on
//! `runtime.lock` for its whole life. The OS drops the lock when the process dies, even by
//! SIGKILL, so a crashed instance never blocks its successor.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// Paths of one workspace's folder.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of a workspace under a storage root.
    pub fn new(root: &Path, org: &str, team: &str, user: &str, workspace: &str) -> Self {
        Layout {
            root: root.join(Self::relative(org, team, user, workspace)),
        }
    }

    /// The workspace's folder relative to a root or bucket.
    pub fn relative(org: &str, team: &str, user: &str, workspace: &str) -> PathBuf {
        PathBuf::from(format!(
            "organizations/{org}/teams/{team}/users/{user}/workspaces/{workspace}"
        ))
    }

    /// The workspace folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Project files the agents edit.
    pub fn projects(&self) -> PathBuf {
        self.root.join("projects")
    }
    /// The six SQLite databases.
    pub fn databases(&self) -> PathBuf {
        self.root.join("databases")
    }
    /// The JSONL event log, one file per session.
    pub fn sessions(&self) -> PathBuf {
        self.root.join("sessions")
    }
    /// Embeddings for code search.
    pub fn vector_store(&self) -> PathBuf {
        self.root.join("vector-store")
    }
    /// The API bearer token, mode 0600.
    pub fn token_file(&self) -> PathBuf {
        self.root.join("api-token")
    }
    /// Written once the API listens: `{"pid":…,"addr":"127.0.0.1:PORT"}`.
    pub fn endpoint_file(&self) -> PathBuf {
        self.root.join("runtime.json")
    }

    /// Written by a clean stop whose final sync round shipped everything: which manifest
    /// holds all of it, so the control plane may verify the bucket copy and free the disk.
    pub fn seal_file(&self) -> PathBuf {
        self.root.join("sealed.json")
    }

    /// Creates the folders and takes the exclusive ownership lock.
    ///
    /// # Errors
    /// [`StorageError::FolderInUse`] when another live instance owns the folder.
    pub fn claim(&self) -> Result<FolderLock, StorageError> {
        for dir in [
            self.projects(),
            self.databases(),
            self.sessions(),
            self.vector_store(),
        ] {
            std::fs::create_dir_all(&dir).map_err(StorageError::io("create folder", &dir))?;
        }
        let lock_path = self.root.join("runtime.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(StorageError::io("open lock file", &lock_path))?;
        match file.try_lock() {
            Ok(()) => Ok(FolderLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::FolderInUse {
                path: self.root.clone(),
                lock: lock_path,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(StorageError::io("lock", &lock_path)(e)),
        }
    }
}

/// Proof that this process owns the workspace folder; the lock goes with it.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_claim_fails_until_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), "acme", "platform", "alice", "main");
        let first = layout.claim().unwrap();
        assert!(layout.sessions().is_dir() && layout.vector_store().is_dir());
        let err = layout.claim().unwrap_err();
        assert!(
            err.to_string()
                .contains("in use by another runtime instance"),
            "{err}"
        );
        drop(first);
        layout.claim().unwrap();
    }
}
