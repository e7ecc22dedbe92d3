//! The reverse path: what a user changed in v2 since their cutover, written back into the
//! v1 layout, so a rollback to v1 loses nothing. A file at a merged path goes back to the
//! sandbox (and path) it came from; a kept copy (`main.v1-claude.rs`) to its own sandbox's
//! original path; a file new in v2 to the most recently active sandbox; a file deleted in
//! v2 is deleted where it came from. Then the export, planned again, gives the v2 tree.
//!
//! [`check`] proves the path works before a cutover is allowed (the export is writable,
//! a probe written and read back and removed): rollback that was never tried is not a
//! rollback.

use bytes::Bytes;
use coditect_runtime::sync::{Bucket, Precondition};
use serde::Serialize;

use crate::destination::Destination;
use crate::error::{MigrateError, Problem};
use crate::merge::Merged;

/// What a write-back did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WrittenBack {
    /// Files written into v1 (changed or new in v2).
    pub written: Vec<String>,
    /// Files deleted from v1 (deleted in v2).
    pub deleted: Vec<String>,
    /// What could not be written back, at its place.
    pub problems: Vec<Problem>,
}

fn failed(url: &str, source: coditect_runtime::sync::StoreError) -> MigrateError {
    MigrateError::Export {
        url: url.into(),
        source,
    }
}

/// Proves the reverse path works on the export at `url`: a probe object written, read
/// back byte for byte, and removed.
///
/// # Errors
/// The export cannot be written, read back or cleaned: no cutover should be allowed.
pub async fn check(url: &str) -> Result<(), MigrateError> {
    let bucket = Bucket::open(url).await.map_err(|e| failed(url, e))?;
    let name = format!(".coditect/rollback-probe-{:016x}", rand::random::<u64>());
    let body = Bytes::from(format!("probe {name}"));
    bucket
        .put(&name, body.clone(), Precondition::DoesNotExist)
        .await
        .map_err(|e| failed(url, e))?;
    let read = bucket.get(&name).await.map_err(|e| failed(url, e))?;
    bucket.delete(&name).await.map_err(|e| failed(url, e))?;
    match read {
        Some((b, _)) if b == body => Ok(()),
        _ => Err(MigrateError::Spec(format!(
            "{url}: a probe written for the rollback path did not read back"
        ))),
    }
}

/// Writes what `v2` (the user's workspace) changed since `at_cutover` (the merged tree
/// the user was cut over with) back into the export at `url`, under v1 user `user_id`.
///
/// # Errors
/// The export or the workspace cannot be read or written.
pub async fn write_back(
    url: &str,
    user_id: &str,
    at_cutover: &Merged,
    newest_sandbox: &str,
    v2: &impl Destination,
) -> Result<WrittenBack, MigrateError> {
    let bucket = Bucket::open(url).await.map_err(|e| failed(url, e))?;
    let object =
        |sandbox: &str, path: &str| format!("users/{user_id}/sandboxes/{sandbox}/files/{path}");
    let mut out = WrittenBack::default();
    let now = v2.hashes().await?;
    for (path, sha) in &now {
        let target = match at_cutover.files.get(path) {
            Some(placed) if *sha == placed.sha256 => continue,
            Some(placed) => object(&placed.sandbox, &placed.v1_path),
            None => object(newest_sandbox, path),
        };
        match v2.read(path).await? {
            Some(bytes) => {
                bucket
                    .put(&target, bytes, Precondition::None)
                    .await
                    .map_err(|e| failed(url, e))?;
                out.written.push(target);
            }
            None => out.problems.push(Problem::at(
                path.clone(),
                "listed in v2, gone before it was read",
            )),
        }
    }
    for (path, placed) in &at_cutover.files {
        if !now.contains_key(path) {
            let target = object(&placed.sandbox, &placed.v1_path);
            bucket.delete(&target).await.map_err(|e| failed(url, e))?;
            out.deleted.push(target);
        }
    }
    Ok(out)
}
