//! The hot mirror: a second bucket (`storage.mirror`, an S3-compatible one such as
//! Cloudflare R2) that receives every object the primary does, so a workspace can be
//! restored from it when the primary is out of reach or far away.
//!
//! * The primary stays the source of truth. The mirror follows the manifests the
//!   replicator publishes (the newest one only: a mirror that fell behind skips straight
//!   to it), copies the objects it names that the mirror lacks — from the bytes the
//!   replicator staged when it uploaded them, else read back from the primary — checks
//!   each against the SHA-256 the manifest gives, and writes the same manifest last.
//! * The mirror's manifest is fenced like the primary's: written with the ETag this
//!   instance last saw (create-only the first time). When that fails, the primary decides:
//!   if its manifest still names this instance as owner, the mirror was written by an
//!   older owner's lagging mirror and this one re-reads and writes again; otherwise another
//!   instance took the workspace over and this mirror stops, fenced.
//! * After a manifest is written, objects this mirror put or found that it no longer names
//!   are deleted (only those: a newer owner's objects are never touched).
//! * A mirror that is down costs only mirror lag (its own figure, beside the primary's):
//!   every round that fails is retried, and what it missed is copied when it returns.
//!   The mirror's operations are tallied on its own bucket's meter, which the replicator
//!   folds into the manifest's `mirrorUsage` for the cost report.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::S3Access;
use super::manifest::{MANIFEST, Manifest, ObjectRef};
use super::replicator::{SyncError, SyncStatus, SyncTarget};
use super::store::{Bucket, Precondition, StoreError};

/// Staged bytes kept for the mirror at most (older ones are read back from the primary).
const STAGE_BYTES: usize = 64 << 20;
/// Objects larger than this are copied through a file, not memory.
const IN_MEMORY_BYTES: u64 = 8 << 20;
/// How long a failed mirror round waits before the next try.
const RETRY: Duration = Duration::from_secs(1);
/// How long the mirror keeps trying after the replicator stopped: well inside the 15 s a
/// control plane gives an instance to stop before SIGKILL, so the seal is still written.
const FINAL_ATTEMPT: Duration = Duration::from_secs(5);

/// A manifest as the replicator published it: parsed, and the exact bytes written.
#[derive(Debug, Clone)]
pub struct Published {
    /// The manifest.
    pub manifest: Manifest,
    /// Its bytes.
    pub bytes: Bytes,
}

/// The bytes of recent uploads, kept (bounded, oldest dropped first) so the mirror need
/// not read them back from the primary.
#[derive(Debug, Default)]
pub struct Staged(Mutex<StagedInner>);

#[derive(Debug, Default)]
struct StagedInner {
    order: VecDeque<String>,
    bytes: HashMap<String, Bytes>,
    total: usize,
}

impl Staged {
    /// Keeps `data` as the bytes of `object`.
    pub fn put(&self, object: &str, data: &Bytes) {
        let Ok(mut s) = self.0.lock() else { return };
        if data.len() > STAGE_BYTES || s.bytes.contains_key(object) {
            return;
        }
        s.total += data.len();
        s.order.push_back(object.to_string());
        s.bytes.insert(object.to_string(), data.clone());
        while s.total > STAGE_BYTES {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            if let Some(b) = s.bytes.remove(&old) {
                s.total -= b.len();
            }
        }
    }

    /// The staged bytes of `object`, taken out.
    fn take(&self, object: &str) -> Option<Bytes> {
        let mut s = self.0.lock().ok()?;
        let b = s.bytes.remove(object)?;
        s.total -= b.len();
        s.order.retain(|o| o != object);
        Some(b)
    }
}

/// How the mirror stands, for status and metrics.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorState {
    /// The mirror bucket.
    pub bucket: String,
    /// When the mirror last held the primary's newest manifest (ms since the epoch).
    pub last_mirrored_ms: Option<u64>,
    /// Since when the primary holds a manifest the mirror does not (ms since the epoch).
    pub pending_since_ms: Option<u64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Another instance took the workspace over: this one no longer writes the mirror.
    pub fenced: bool,
    /// Objects copied to the mirror.
    pub uploads: u64,
    /// Bytes copied to the mirror.
    pub uploaded_bytes: u64,
    /// The last event seq the mirror's manifest names.
    pub mirrored_seq: u64,
}

impl MirrorState {
    /// Seconds the mirror is behind the primary: since the oldest manifest it has not
    /// caught up with, 0 when it has.
    pub fn lag_seconds(&self) -> f64 {
        self.pending_since_ms.map_or(0.0, |since| {
            crate::clock::now_ms().saturating_sub(since) as f64 / 1000.0
        })
    }
}

/// Copies one workspace's shipped objects to its mirror.
pub struct Mirror {
    primary: SyncTarget,
    target: SyncTarget,
    status: Arc<SyncStatus>,
    feed: tokio::sync::watch::Receiver<Option<Arc<Published>>>,
    staged: Arc<Staged>,
    scratch: std::path::PathBuf,
    /// Names (under the prefix) of objects in the mirror, with their sizes: listed at the
    /// first round, then what this mirror put.
    present: Option<HashMap<String, u64>>,
    /// The mirror manifest's generation as last read or written; `None`: not read yet.
    manifest_generation: Option<Option<i64>>,
    /// The `updated_ms` of the manifest the mirror holds.
    mirrored: Option<u64>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mirror({})", self.target.bucket.url())
    }
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Mirror {
    /// A mirror of `primary` to `target`, following `feed`.
    pub(super) fn new(
        primary: SyncTarget,
        target: SyncTarget,
        status: Arc<SyncStatus>,
        feed: tokio::sync::watch::Receiver<Option<Arc<Published>>>,
        staged: Arc<Staged>,
        scratch: std::path::PathBuf,
    ) -> Mirror {
        let url = target.bucket.url();
        // The manifest published before the mirror was attached is pending already.
        let pending = feed.borrow().as_ref().map(|p| p.manifest.updated_ms);
        status.update_mirror(|m| {
            m.bucket = url;
            if let Some(at) = pending {
                m.pending_since_ms.get_or_insert(at);
            }
        });
        Mirror {
            primary,
            target,
            status,
            feed,
            staged,
            scratch,
            present: None,
            manifest_generation: None,
            mirrored: None,
            metrics: None,
        }
    }

    /// Counts the mirror's uploads and lag in `metrics` too.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether the primary holds a manifest the mirror does not.
    pub fn behind(&self) -> bool {
        let newest = self.feed.borrow().as_ref().map(|p| p.manifest.updated_ms);
        newest.is_some() && newest != self.mirrored
    }

    /// Brings the mirror up to the newest published manifest (nothing when it is).
    ///
    /// # Errors
    /// The first failure ([`SyncError::Fenced`] when another instance owns the
    /// workspace); the next round starts over from what the mirror holds.
    pub async fn round(&mut self) -> Result<(), SyncError> {
        if self.status.get().mirror.is_some_and(|m| m.fenced) {
            return Err(SyncError::Fenced("see the mirror's last error".into()));
        }
        let Some(published) = self.feed.borrow_and_update().clone() else {
            return Ok(());
        };
        if self.mirrored == Some(published.manifest.updated_ms) {
            return Ok(());
        }
        let result = self.catch_up(&published).await;
        match &result {
            Ok(()) => {
                let (now, seq) = (crate::clock::now_ms(), published.manifest.last_seq());
                let done = !self.behind();
                self.status.update_mirror(|m| {
                    m.last_mirrored_ms = Some(now);
                    m.last_error = None;
                    m.mirrored_seq = seq;
                    if done {
                        m.pending_since_ms = None;
                    }
                });
            }
            Err(e) => {
                tracing::warn!(mirror = %self.target.bucket.url(), error = %e, "mirror round failed; retrying");
                let (text, fenced) = (e.to_string(), matches!(e, SyncError::Fenced(_)));
                self.status.update_mirror(|m| {
                    m.last_error = Some(text);
                    m.fenced |= fenced;
                });
            }
        }
        self.observe();
        result
    }

    fn observe(&self) {
        if let (Some(metrics), Some(m)) = (&self.metrics, self.status.get().mirror) {
            metrics.sync_mirror_lag.set(m.lag_seconds());
        }
    }

    async fn catch_up(&mut self, published: &Published) -> Result<(), SyncError> {
        let present = match self.present.take() {
            Some(p) => p,
            None => self.list().await?,
        };
        let present = self.present.insert(present);
        let kept = published.manifest.kept_objects();
        let missing: Vec<&ObjectRef> = kept
            .iter()
            .filter(|o| present.get(&o.object) != Some(&o.size))
            .collect();
        for o in missing {
            let size = copy(&self.primary, &self.target, &self.staged, &self.scratch, o).await?;
            present.insert(o.object.clone(), size);
            self.status.update_mirror(|m| {
                m.uploads += 1;
                m.uploaded_bytes += size;
            });
            if let Some(metrics) = &self.metrics {
                metrics.sync_mirror_uploads.inc();
                metrics.sync_mirror_bytes.inc_by(size);
            }
        }
        self.write_manifest(published).await?;
        self.mirrored = Some(published.manifest.updated_ms);
        // Only now may what the mirror's manifest no longer names go.
        let named: HashSet<&str> = kept.iter().map(|o| o.object.as_str()).collect();
        let gone: Vec<String> = self
            .present
            .iter()
            .flat_map(|p| p.keys())
            .filter(|o| !named.contains(o.as_str()))
            .cloned()
            .collect();
        for object in gone {
            match self.target.bucket.delete(&self.target.name(&object)).await {
                Ok(()) => {
                    if let Some(p) = &mut self.present {
                        p.remove(&object);
                    }
                }
                Err(e) => tracing::warn!(object = %object, error = %e, "mirror prune failed"),
            }
        }
        Ok(())
    }

    /// The objects under the workspace's prefix in the mirror (the manifest aside).
    async fn list(&self) -> Result<HashMap<String, u64>, SyncError> {
        let root = self.target.name("");
        Ok(self
            .target
            .bucket
            .list(&root)
            .await?
            .into_iter()
            .filter_map(|o| {
                let rel = o.name.strip_prefix(&root)?.to_string();
                (rel != MANIFEST).then_some((rel, o.size))
            })
            .collect())
    }

    /// Writes the published manifest to the mirror, fenced.
    async fn write_manifest(&mut self, published: &Published) -> Result<(), SyncError> {
        let name = self.target.name(MANIFEST);
        let mut retried = false;
        loop {
            let seen = match self.manifest_generation {
                Some(g) => g,
                None => {
                    let g = self
                        .target
                        .bucket
                        .get(&name)
                        .await?
                        .map(|(_, m)| m.generation);
                    *self.manifest_generation.insert(g)
                }
            };
            let pre = seen.map_or(Precondition::DoesNotExist, Precondition::GenerationMatches);
            match self
                .target
                .bucket
                .put(&name, published.bytes.clone(), pre)
                .await
            {
                Ok(meta) => {
                    self.manifest_generation = Some(Some(meta.generation));
                    return Ok(());
                }
                Err(StoreError::PreconditionFailed { .. }) if !retried => {
                    // Who owns the workspace is the primary's to say.
                    let ours = &published.manifest.owner.instance;
                    let owner = match self
                        .primary
                        .bucket
                        .get(&self.primary.name(MANIFEST))
                        .await?
                    {
                        Some((b, _)) => serde_json::from_slice::<Manifest>(&b)
                            .map(|m| m.owner)
                            .map_err(|e| {
                                SyncError::Local(format!(
                                    "the primary manifest does not parse: {e}"
                                ))
                            })?,
                        None => return Err(SyncError::Local("the primary has no manifest".into())),
                    };
                    if &owner.instance != ours {
                        return Err(SyncError::Fenced(format!(
                            "{} on {}, pid {} (the primary's owner)",
                            owner.instance, owner.host, owner.pid
                        )));
                    }
                    // An older owner's lagging mirror wrote it: read again, write again.
                    self.manifest_generation = None;
                    retried = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Follows the replicator until it stops (its feed closes), then makes a last attempt
    /// to hold its final manifest.
    pub async fn run(mut self) {
        loop {
            if self.behind() {
                if self.round().await.is_err() && !self.fenced() {
                    tokio::select! {
                        changed = self.feed.changed() => if changed.is_err() { break },
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
                if self.fenced() {
                    return;
                }
                continue;
            }
            if self.feed.changed().await.is_err() {
                break;
            }
        }
        let deadline = tokio::time::Instant::now() + FINAL_ATTEMPT;
        while self.behind() && !self.fenced() && tokio::time::Instant::now() < deadline {
            if self.round().await.is_err() {
                tokio::time::sleep(RETRY).await;
            }
        }
        if self.behind() {
            tracing::warn!(mirror = %self.target.bucket.url(), "stopped with the mirror behind the primary");
        }
    }

    fn fenced(&self) -> bool {
        self.status.get().mirror.is_some_and(|m| m.fenced)
    }
}

/// Opens the mirror at `url`: an `s3://` one through `access` (credentials resolved from
/// the `secrets` folder or the environment) or, without it, through the AWS SDKs'
/// variables; any other bucket URL as [`Bucket::open`] does.
///
/// # Errors
/// A bad URL, or credentials that cannot be read (named, never shown).
pub async fn open(
    url: &str,
    access: Option<&coditect_specs::MirrorAccess>,
    secrets: &std::path::Path,
) -> Result<Bucket, String> {
    if !url.starts_with("s3://") {
        return Bucket::open(url).await.map_err(|e| e.to_string());
    }
    let access = match access {
        None => S3Access::from_env(),
        Some(a) => {
            let id = crate::secrets::resolve(a.access_key_id.as_ref(), secrets)?;
            let secret = crate::secrets::resolve(a.secret_access_key.as_ref(), secrets)?;
            S3Access {
                endpoint: a.endpoint.clone(),
                region: a.region.clone(),
                key: id.zip(secret),
            }
        }
    };
    Bucket::open_s3(url, &access).map_err(|e| e.to_string())
}

/// Copies `o` from the primary (or the staged bytes) to the mirror, checking its SHA-256;
/// the bytes copied.
async fn copy(
    primary: &SyncTarget,
    mirror: &SyncTarget,
    staged: &Staged,
    scratch: &std::path::Path,
    o: &ObjectRef,
) -> Result<u64, SyncError> {
    let corrupt = |reason: String| {
        SyncError::Store(StoreError::Corrupt {
            name: o.object.clone(),
            reason,
        })
    };
    // A blob is named by its content: one already there is the same.
    let pre = if o.object.starts_with("projects/blobs/") {
        Precondition::DoesNotExist
    } else {
        Precondition::None
    };
    let done = |r: Result<_, StoreError>| match r {
        Ok(_) | Err(StoreError::PreconditionFailed { .. }) => Ok(o.size),
        Err(e) => Err(SyncError::Store(e)),
    };
    let staged = staged.take(&o.object);
    if staged.is_none() && o.size > IN_MEMORY_BYTES {
        std::fs::create_dir_all(scratch)
            .map_err(|e| SyncError::Local(format!("create {}: {e}", scratch.display())))?;
        let file = scratch.join(format!("mirror-{}", hex::encode(rand::random::<[u8; 8]>())));
        let got = primary
            .bucket
            .get_to_file(&primary.name(&o.object), &file)
            .await;
        let result = match got {
            Ok(Some(d)) if d.sha256 == o.sha256 => done(
                mirror
                    .bucket
                    .put_file(&mirror.name(&o.object), &file, pre)
                    .await,
            ),
            Ok(Some(d)) => Err(corrupt(format!(
                "sha256 {} in the primary, {} in the manifest",
                d.sha256, o.sha256
            ))),
            Ok(None) => Err(corrupt("missing from the primary".into())),
            Err(e) => Err(e.into()),
        };
        let _ = std::fs::remove_file(&file);
        return result;
    }
    let data = match staged {
        Some(b) => b,
        None => match primary.bucket.get(&primary.name(&o.object)).await? {
            Some((b, _)) => b,
            None => return Err(corrupt("missing from the primary".into())),
        },
    };
    let digest = sha(&data);
    if digest != o.sha256 {
        return Err(corrupt(format!(
            "sha256 {digest}, the manifest says {}",
            o.sha256
        )));
    }
    done(mirror.bucket.put(&mirror.name(&o.object), data, pre).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_bytes_are_bounded_and_taken_once() {
        let s = Staged::default();
        let big = Bytes::from(vec![0u8; STAGE_BYTES / 2 + 1]);
        s.put("a", &big);
        s.put("b", &big);
        assert!(s.take("a").is_none(), "the oldest went to make room");
        assert_eq!(s.take("b").map(|b| b.len()), Some(big.len()));
        assert!(s.take("b").is_none(), "taken once");
        s.put("c", &Bytes::from_static(b"x"));
        assert_eq!(s.0.lock().unwrap().total, 1);
    }
}
