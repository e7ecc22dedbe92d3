//! Project files written and read through the runtime. Every write carries the fencing
//! token of an exclusive lease covering the path; a stale token is refused, and so is a
//! token older than the one that last wrote the file (the classic fencing rule: storage
//! never goes back to an older lock holder). Writes are atomic (temp file + rename) and
//! recorded in the file index, the artifacts database and the event log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::clock;
use crate::db::Databases;
use crate::error::{LockError, StorageError};
use crate::events::{EventDraft, EventLog, EventType};
use crate::locks::{LockTable, normalize};

/// A completed write.
#[derive(Debug, Clone, Serialize)]
pub struct FileWrite {
    /// The normalized path.
    pub path: String,
    /// SHA-256 of the new content.
    pub sha256: String,
    /// Bytes written.
    pub size: u64,
    /// The token that fenced the write.
    pub token: u64,
    /// The `file_edit` event's seq.
    pub seq: u64,
    /// Lines added and removed.
    pub diff: serde_json::Value,
}

/// Why a write or read failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The fencing check refused it.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No such file.
    #[error("no file {0}")]
    NotFound(String),
    /// The path resolves outside `projects/`, through a symbolic link on the way.
    #[error(
        "{0} resolves outside the workspace's projects folder (through a symbolic link); refused"
    )]
    OutsideProjects(String),
    /// The path names a folder, or goes through a file as if it were one.
    #[error("{path}: {reason}")]
    NotAFile {
        /// The path.
        path: String,
        /// Which.
        reason: &'static str,
    },
    /// The content is larger than a write may be.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
}

/// Whether `target` (a path under `root`, existing or not) resolves inside `root`: its
/// deepest existing part, with every link followed, is under `root`'s real path. A
/// dangling link is refused (where it would point cannot be checked).
pub(crate) fn resolves_inside(root: &Path, target: &Path) -> std::io::Result<bool> {
    let real_root = std::fs::canonicalize(root)?;
    let mut part = target;
    loop {
        match std::fs::canonicalize(part) {
            Ok(real) => return Ok(real.starts_with(&real_root)),
            Err(_) if part.symlink_metadata().is_ok() => return Ok(false),
            Err(_) => match part.parent() {
                Some(parent) if parent.starts_with(root) => part = parent,
                _ => return Ok(true),
            },
        }
    }
}

/// Files larger than this get no line diff in their `file_edit` event: counting lines of
/// a large file on every write is not worth it.
const DIFF_LIMIT: u64 = 1 << 20;

/// A write staged in its temp file: its checksums, and its content when it is small
/// enough for a line diff (kept as it streams by, so the diff reads nothing again).
struct Staged {
    digest: crate::sync::store::FileDigest,
    small: Option<Vec<u8>>,
}

/// Writes `pieces` to `tmp`, checksummed on the way; refuses past `limit` bytes.
async fn stage<E: std::fmt::Display>(
    tmp: &Path,
    pieces: impl futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    limit: u64,
) -> Result<Staged, FileError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(tmp)
        .await
        .map_err(StorageError::io("write file", tmp))?;
    let mut digest = crate::sync::store::Digester::default();
    let mut size = 0u64;
    let mut small = Some(Vec::new());
    futures_util::pin_mut!(pieces);
    while let Some(piece) = pieces.next().await {
        let piece = piece.map_err(|e| {
            StorageError::io("receive file", tmp)(std::io::Error::other(e.to_string()))
        })?;
        size += piece.len() as u64;
        if size > limit {
            return Err(FileError::TooLarge { limit });
        }
        digest.update(&piece);
        if size > DIFF_LIMIT {
            small = None;
        } else if let Some(s) = small.as_mut() {
            s.extend_from_slice(&piece);
        }
        file.write_all(&piece)
            .await
            .map_err(StorageError::io("write file", tmp))?;
    }
    file.flush()
        .await
        .map_err(StorageError::io("write file", tmp))?;
    Ok(Staged {
        digest: digest.finish(),
        small,
    })
}

/// The lines a write adds and removes, or a note when either side is large.
async fn line_diff(target: &Path, staged: &Staged) -> serde_json::Value {
    let size = staged.digest.size;
    let before_size = tokio::fs::metadata(target).await.map_or(0, |m| m.len());
    match &staged.small {
        Some(after) if before_size <= DIFF_LIMIT => {
            let before = tokio::fs::read(target).await.unwrap_or_default();
            diff_summary(&before, after)
        }
        _ => json!({"summary": format!("{size} bytes (no line diff above {DIFF_LIMIT} bytes)")}),
    }
}

/// The workspace's project files.
#[derive(Debug)]
pub struct ProjectFiles {
    root: PathBuf,
    db: Arc<Databases>,
    locks: Arc<LockTable>,
    events: EventLog,
    /// Serializes check-and-write so a lease cannot change hands between the check and
    /// the rename.
    write_lock: tokio::sync::Mutex<()>,
    /// Numbers staged writes, so two writes of one path never share a temp file.
    staged: std::sync::atomic::AtomicU64,
}

impl ProjectFiles {
    /// Files under `root` (the workspace's `projects/`).
    pub fn new(root: PathBuf, db: Arc<Databases>, locks: Arc<LockTable>, events: EventLog) -> Self {
        ProjectFiles {
            root,
            db,
            locks,
            events,
            write_lock: tokio::sync::Mutex::new(()),
            staged: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Writes `content` to `path` if `token` may; `step` names the agent step that writes
    /// (task, turn and call), recorded with the artifact so a re-run of the step finds it.
    ///
    /// # Errors
    /// [`FileError::Lock`] with [`LockError::StaleFencingToken`] when refused.
    pub async fn write(
        &self,
        agent: &str,
        token: u64,
        path: &str,
        content: &[u8],
        step: Option<&str>,
    ) -> Result<FileWrite, FileError> {
        let piece = Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(content));
        self.write_stream(
            agent,
            token,
            path,
            futures_util::stream::iter([piece]),
            u64::MAX,
            step,
        )
        .await
    }

    /// [`ProjectFiles::write`] from a stream of pieces (a request body), never held whole
    /// in memory: the pieces go to a temp file beside the target, checksummed on the way,
    /// which is renamed into place only if `token` may write when it is complete.
    ///
    /// # Errors
    /// As [`ProjectFiles::write`]; [`FileError::TooLarge`] past `limit` bytes; a broken
    /// stream as [`StorageError`]. Nothing of a refused or broken write stays behind.
    pub async fn write_stream<E: std::fmt::Display>(
        &self,
        agent: &str,
        token: u64,
        path: &str,
        pieces: impl futures_util::Stream<Item = Result<bytes::Bytes, E>>,
        limit: u64,
        step: Option<&str>,
    ) -> Result<FileWrite, FileError> {
        // Refuse a write the token may not make before taking its bytes.
        let path = self.locks.check_write(token, path)?;
        let target = self.contained(&path)?;
        let not_a_file = |reason| FileError::NotAFile {
            path: path.clone(),
            reason,
        };
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
            return Err(not_a_file("is a folder; only files can be written"));
        }
        if let Some(parent) = target.parent() {
            match tokio::fs::create_dir_all(parent).await {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists
                    ) =>
                {
                    return Err(not_a_file("a part of the path is a file, not a folder"));
                }
                Err(e) => return Err(StorageError::io("create folder", parent)(e).into()),
            }
        }
        let n = self
            .staged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = target.with_extension(format!("coditect-tmp-{token}-{n}"));
        let result = match stage(&tmp, pieces, limit).await {
            Ok(staged) => self.commit(agent, token, &path, &tmp, staged, step).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Renames a staged write into place, if `token` may still write, and records it.
    async fn commit(
        &self,
        agent: &str,
        token: u64,
        path: &str,
        tmp: &Path,
        staged: Staged,
        step: Option<&str>,
    ) -> Result<FileWrite, FileError> {
        let _serial = self.write_lock.lock().await;
        let path = self.locks.check_write(token, path)?;
        let last: Option<i64> = self.db.workspace_idx.read(|c| {
            c.query_row(
                "SELECT fencing_token FROM files WHERE path = ?1",
                [&path],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| {
                if e == rusqlite::Error::QueryReturnedNoRows {
                    Ok(None)
                } else {
                    Err(e)
                }
            })
        })?;
        if let Some(last) = last
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > token)
        {
            return Err(LockError::StaleFencingToken {
                token,
                path,
                reason: format!("the file was last written with the newer token {last}"),
            }
            .into());
        }
        let target = self.root.join(&path);
        let diff = line_diff(&target, &staged).await;
        tokio::fs::rename(tmp, &target)
            .await
            .map_err(StorageError::io("rename file", &target))?;
        let (sha, size) = (staged.digest.sha256, staged.digest.size);
        let now = clock::now_ms() as i64;
        self.db.workspace_idx.write(|tx| {
            tx.execute(
                "INSERT INTO files (path, sha256, size, fencing_token, agent, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(path) DO UPDATE SET sha256 = ?2, size = ?3, fencing_token = ?4, agent = ?5, updated_at = ?6",
                rusqlite::params![path, sha, size as i64, token as i64, agent, now],
            )
        })?;
        self.db.artifacts.write(|tx| {
            tx.execute(
                "INSERT INTO artifacts (path, sha256, size, agent, fencing_token, created_at, step) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![path, sha, size as i64, agent, token as i64, now, step],
            )
        })?;
        let event = self
            .events
            .append(EventDraft::new(
                agent,
                EventType::FileEdit,
                json!({"path": path, "sha256": sha, "size": size, "token": token, "diff": diff.clone()}),
            ))
            .await?;
        Ok(FileWrite {
            path,
            sha256: sha,
            size,
            token,
            seq: event.seq,
            diff,
        })
    }

    /// The folder the files live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads a project file.
    ///
    /// # Errors
    /// [`FileError::NotFound`]; [`LockError::InvalidPath`].
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, FileError> {
        let (path, _) = normalize(path)?;
        let target = self.contained(&path)?;
        tokio::fs::read(target)
            .await
            .map_err(|_| FileError::NotFound(path))
    }

    /// Where the normalized `path` is under `projects/`, refused when it, or a folder on
    /// the way, is a symbolic link that resolves outside (a cloned repository may hold
    /// such links): the deepest part that exists is resolved, every link followed, and
    /// must still be inside.
    ///
    /// # Errors
    /// [`FileError::OutsideProjects`]; [`StorageError`] when `projects/` itself cannot be
    /// resolved.
    pub fn contained(&self, path: &str) -> Result<PathBuf, FileError> {
        let target = self.root.join(path);
        if !resolves_inside(&self.root, &target)
            .map_err(StorageError::io("resolve folder", &self.root))?
        {
            return Err(FileError::OutsideProjects(path.to_string()));
        }
        Ok(target)
    }
}

/// The SHA-256 (hex) of the file at `path`, read in pieces; `None` when it cannot be read.
pub fn sha256_of(path: &std::path::Path) -> Option<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(hex::encode(hasher.finalize()))
}

/// Project files and their sizes, sorted, at most `limit`.
pub fn list_tree(root: &std::path::Path, limit: usize) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            // A link that leads outside the projects folder is not part of the tree, and a
            // linked folder is not walked (a link to an ancestor would never end).
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if is_link && (p.is_dir() || !resolves_inside(root, &p).unwrap_or(false)) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if let (Ok(rel), Ok(meta)) = (p.strip_prefix(root), std::fs::metadata(&p)) {
                files.push((rel.display().to_string(), meta.len()));
            }
        }
    }
    files.sort();
    files.truncate(limit);
    files
}

/// The most bytes of unified diff a `file_edit` event carries; a longer one is cut at a
/// line and marked, so one large rewrite cannot bloat the log.
pub const MAX_PATCH: usize = 32 * 1024;

/// Lines added and removed by a write, for the `file_edit` event: what other agents read
/// in their shared context instead of the whole file, and the unified diff (`patch`, at
/// most [`MAX_PATCH`] bytes) the studio shows as the file's history.
fn diff_summary(before: &[u8], after: &[u8]) -> serde_json::Value {
    let (before, after) = (
        String::from_utf8_lossy(before),
        String::from_utf8_lossy(after),
    );
    let diff = similar::TextDiff::from_lines(before.as_ref(), after.as_ref());
    let mut patch = diff
        .unified_diff()
        .context_radius(3)
        .header("before", "after")
        .to_string();
    let cut = patch.len() > MAX_PATCH;
    if cut {
        let end = patch.as_bytes()[..MAX_PATCH]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap_or(0);
        patch.truncate(end + 1);
        patch.push_str("… (diff cut at 32 KiB)\n");
    }
    let (mut added, mut removed) = (0u64, 0u64);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    json!({"added": added, "removed": removed, "summary": format!("+{added} -{removed} lines"), "patch": patch, "patchCut": cut})
}
