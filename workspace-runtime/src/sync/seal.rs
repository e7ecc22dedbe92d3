//! The seal a clean stop leaves behind, and the check of the bucket against it. A sleeping
//! workspace's local disk may be freed (the next wake restores from the bucket) only when
//! the bucket provably holds everything: the stop's final round shipped all of it (else
//! there is no seal), nobody wrote the manifest since (its generation is the seal's), and
//! every object the restore will need is there at the size the manifest names.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::manifest::{MANIFEST, Manifest};
use super::replicator::SyncTarget;

/// What a clean stop leaves in the folder (`sealed.json`) when its final round shipped
/// everything: the manifest that holds it all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seal {
    /// The manifest object's generation after the last write.
    pub manifest_generation: i64,
    /// The last event seq it names.
    pub last_seq: u64,
    /// Bytes of the objects it names.
    pub stored_bytes: u64,
}

/// Why the bucket copy cannot stand in for the local folder.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No seal: the last stop was not clean, or left work unshipped.
    #[error("no seal in {0}: the last stop was not clean or did not ship everything")]
    NoSeal(String),
    /// The bucket could not be read.
    #[error("the bucket cannot be read: {0}")]
    Unreadable(String),
    /// The bucket holds something else than what the seal names.
    #[error("the bucket's copy differs from the stop's: {0}")]
    Differs(String),
}

/// Reads the seal in `file`.
///
/// # Errors
/// [`SealError::NoSeal`] when there is none (or it does not parse).
pub fn read(file: &Path) -> Result<Seal, SealError> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| SealError::NoSeal(file.display().to_string()))
}

/// Checks that `target` holds exactly what `seal` says, every object a restore needs
/// present at its size; the objects checked.
///
/// # Errors
/// [`SealError`].
pub async fn verify(target: &SyncTarget, seal: &Seal) -> Result<usize, SealError> {
    let unreadable = |e: super::StoreError| SealError::Unreadable(e.to_string());
    let (bytes, meta) = target
        .bucket
        .get(&target.name(MANIFEST))
        .await
        .map_err(unreadable)?
        .ok_or_else(|| SealError::Differs("no manifest".into()))?;
    if meta.generation != seal.manifest_generation {
        return Err(SealError::Differs(format!(
            "the manifest was written since (generation {} against the seal's {})",
            meta.generation, seal.manifest_generation
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| SealError::Differs(format!("the manifest does not parse: {e}")))?;
    if manifest.last_seq() != seal.last_seq {
        return Err(SealError::Differs(format!(
            "the manifest ends at event {} against the seal's {}",
            manifest.last_seq(),
            seal.last_seq
        )));
    }
    let listed: HashMap<String, u64> = target
        .bucket
        .list(&format!("{}/", target.prefix))
        .await
        .map_err(unreadable)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    let mut checked = 0;
    for r in manifest.restore_objects() {
        match listed.get(&target.name(&r.object)) {
            Some(size) if *size == r.size => checked += 1,
            Some(size) => {
                return Err(SealError::Differs(format!(
                    "{} is {size} bytes, the manifest says {}",
                    r.object, r.size
                )));
            }
            None => return Err(SealError::Differs(format!("{} is missing", r.object))),
        }
    }
    Ok(checked)
}
