//! The replicator: ships a running workspace to its bucket, round by round.
//!
//! * At start it takes ownership of the workspace in the bucket (the manifest, written
//!   with a generation precondition) and opens a new database *generation*: a consistent
//!   snapshot of each database through SQLite's online backup API, with SQLite's own
//!   checkpoints turned off from then on.
//! * Every `databasesInterval` it reads the frames committed to the six WALs since the last
//!   round (holding each database's writer while it reads, so no transaction is half
//!   seen), each changed page once; a WAL past 4 MiB is checkpointed right after its
//!   frames were read. Every `eventsInterval` it reads the event log's new durable lines.
//!   Both go into one round object ([`super::round`], compressed); nothing when nothing
//!   changed. The project files that changed are shipped by content.
//! * Then it writes the manifest, naming only objects already uploaded and checked; a
//!   failed precondition means another instance took the workspace over: this one stops
//!   shipping and says so (`fenced`). A busy round so writes two objects.
//! * Rounds start on a fixed cadence, one per interval at most, however long a round
//!   takes; a round that overran its slot is followed at once by the next.
//! * After 256 batches (or 256 MiB of them) it rolls to a new generation, keeping the
//!   previous one for `--to-time` restores and deleting older ones.
//!
//! Anything that fails is kept and retried next round; the lag reports how far the
//! bucket is behind meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{EventsRef, MANIFEST, Manifest, ObjectRef, Owner, ProjectFile, WalRef};
use super::store::{Bucket, Precondition, StoreError};
use super::wal::{Frames, WalCursor};
use crate::workspace::WorkspaceRuntime;

/// Checkpoint a WAL once it is this large (after its frames were read).
const CHECKPOINT_BYTES: u64 = 4 << 20;
/// Roll to a new generation after this many batches…
const ROLL_BATCHES: usize = 256;
/// …or this many bytes of them.
const ROLL_BYTES: u64 = 256 << 20;

/// Where a workspace syncs to.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// The bucket.
    pub bucket: Bucket,
    /// The workspace's path in it (`organizations/…/workspaces/NAME`).
    pub prefix: String,
}

impl SyncTarget {
    /// The full name of `object` under the workspace's prefix.
    pub fn name(&self, object: &str) -> String {
        format!("{}/{object}", self.prefix)
    }
}

/// Why syncing failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The bucket.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another instance owns the workspace.
    #[error("fenced: another instance ({0}) owns this workspace in the bucket")]
    Fenced(String),
    /// Local files.
    #[error("{0}")]
    Local(String),
    /// The bucket holds events this instance's log does not: it started from an older
    /// copy, and taking over would fork the workspace's history.
    #[error(
        "the bucket holds events up to {bucket} but this instance's log ends at {local}: it started from an older copy (a lagging mirror, or a restore to a time). Not taking the workspace over, which would fork its history; move the workspace folder aside to restore it from the bucket"
    )]
    Diverged {
        /// The bucket's last event.
        bucket: u64,
        /// This instance's last durable event.
        local: u64,
    },
}

/// How sync stands, for the API, status and metrics.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// The bucket.
    pub bucket: String,
    /// The workspace's path in it.
    pub prefix: String,
    /// The database generation.
    pub generation: u64,
    /// The last round that left nothing behind (ms since the epoch).
    pub last_synced_ms: Option<u64>,
    /// Since when something is waiting to be shipped (ms since the epoch).
    pub pending_since_ms: Option<u64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Another instance took the workspace over.
    pub fenced: bool,
    /// Objects uploaded.
    pub uploads: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// The last event seq in the bucket.
    pub shipped_seq: u64,
    /// The hot mirror, when the organization has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<super::mirror::MirrorState>,
}

/// The shared view of [`SyncState`].
#[derive(Debug, Default)]
pub struct SyncStatus(Mutex<SyncState>);

impl SyncStatus {
    /// A copy of the state.
    pub fn get(&self) -> SyncState {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Records that sync could not start (the bucket is out of reach): everything since
    /// `since_ms` is pending.
    pub fn fail_to_start(&self, since_ms: u64, error: String) {
        self.update(|s| {
            s.pending_since_ms.get_or_insert(since_ms);
            s.last_error = Some(error);
        });
    }

    fn update(&self, f: impl FnOnce(&mut SyncState)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    /// Changes the mirror's state with `f`.
    pub(super) fn update_mirror(&self, f: impl FnOnce(&mut super::mirror::MirrorState)) {
        self.update(|s| f(s.mirror.get_or_insert_with(Default::default)));
    }

    /// Seconds the mirror is behind the primary (`None`: no mirror).
    pub fn mirror_lag_seconds(&self) -> Option<f64> {
        self.get().mirror.map(|m| m.lag_seconds())
    }

    /// Seconds the bucket is behind: since the oldest change not yet shipped, 0 when
    /// everything is.
    pub fn lag_seconds(&self) -> f64 {
        let s = self.get();
        s.pending_since_ms.map_or(0.0, |since| {
            (now_ms().saturating_sub(since)) as f64 / 1000.0
        })
    }
}

fn now_ms() -> u64 {
    crate::clock::now_ms()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A round object cut and waiting for its upload.
#[derive(Debug, Clone)]
struct Shipment {
    object: ObjectRef,
    data: Bytes,
    /// When it holds WAL pages: its place in the generation and when they were cut.
    wal: Option<(u64, u64)>,
    /// When it holds events: their first and last seq.
    events: Option<(u64, u64)>,
}

/// Ships one workspace.
pub struct Replicator {
    ws: Arc<WorkspaceRuntime>,
    target: SyncTarget,
    manifest: Manifest,
    manifest_generation: i64,
    cursors: Vec<WalCursor>,
    queue: VecDeque<Shipment>,
    next_index: u64,
    files: HashMap<String, (i64, u64, String)>,
    status: Arc<SyncStatus>,
    scratch: PathBuf,
    roll_batches: usize,
    tail: super::tail::EventTail,
    /// Writes already counted in the manifest's usage ahead of the meter (its own publish).
    publish_counted: u64,
    /// Every manifest published, for the mirror to follow.
    feed: tokio::sync::watch::Sender<Option<Arc<super::mirror::Published>>>,
    /// The mirror's bucket (its meter is folded into the manifest) and the bytes of recent
    /// uploads staged for it; none without a mirror.
    mirror: Option<(Bucket, Arc<super::mirror::Staged>)>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Replicator({})", self.target.bucket.url())
    }
}

impl Replicator {
    /// Takes ownership of the workspace in the bucket and opens a new generation.
    ///
    /// # Errors
    /// [`SyncError::Fenced`] when another instance wrote the manifest meanwhile;
    /// [`SyncError::Store`] when the bucket cannot be reached.
    pub async fn start(
        ws: Arc<WorkspaceRuntime>,
        target: SyncTarget,
        status: Arc<SyncStatus>,
    ) -> Result<Self, SyncError> {
        let (old, old_generation) = match target.bucket.get(&target.name(MANIFEST)).await? {
            // A manifest that does not parse is not "no manifest": taking over would drop
            // every event segment it names. Refuse, and say so.
            Some((bytes, meta)) => (
                Some(serde_json::from_slice::<Manifest>(&bytes).map_err(|e| {
                    SyncError::Local(format!(
                        "{} does not parse ({e}); not taking the workspace over",
                        target.name(MANIFEST)
                    ))
                })?),
                Some(meta.generation),
            ),
            None => (None, None),
        };
        if let Some(m) = &old
            && m.last_seq() > ws.events.durable_seq()
        {
            return Err(SyncError::Diverged {
                bucket: m.last_seq(),
                local: ws.events.durable_seq(),
            });
        }
        let scratch = ws.root().join(".sync");
        std::fs::create_dir_all(&scratch)
            .map_err(|e| SyncError::Local(format!("create {}: {e}", scratch.display())))?;
        let owner = Owner {
            instance: hex::encode(rand::random::<[u8; 8]>()),
            host: std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            pid: std::process::id(),
            since_ms: now_ms(),
        };
        let generation = old.as_ref().map_or(0, |m| m.generation) + 1;
        let mut r = Replicator {
            manifest: Manifest {
                format: 1,
                workspace: target.prefix.clone(),
                owner,
                generation,
                snapshot_ms: 0,
                snapshots: BTreeMap::new(),
                wal: Vec::new(),
                previous: None,
                events: old.as_ref().map(|m| m.events.clone()).unwrap_or_default(),
                projects: old.as_ref().map(|m| m.projects.clone()).unwrap_or_default(),
                updated_ms: 0,
                usage: old.as_ref().map(|m| m.usage.clone()).unwrap_or_default(),
                mirror_usage: old
                    .as_ref()
                    .map(|m| m.mirror_usage.clone())
                    .unwrap_or_default(),
            },
            manifest_generation: old_generation.unwrap_or(0),
            cursors: vec![WalCursor::new(); 6],
            queue: VecDeque::new(),
            next_index: 1,
            files: HashMap::new(),
            ws,
            target,
            status,
            scratch,
            roll_batches: ROLL_BATCHES,
            tail: super::tail::EventTail::new(),
            publish_counted: 0,
            feed: tokio::sync::watch::channel(None).0,
            mirror: None,
        };

        if let Some(old) = old {
            r.manifest.previous = Some(old.current_generation());
        }
        r.snapshot().await?;
        r.publish(old_generation.is_none()).await?;
        // Reported only once the workspace is ours in the bucket and a restore would work.
        r.status.update(|s| {
            s.bucket = r.target.bucket.url();
            s.prefix = r.target.prefix.clone();
            s.shipped_seq = r.manifest.last_seq();
        });
        r.prune().await;
        Ok(r)
    }

    /// Mirrors everything this replicator ships to `bucket` (the organization's
    /// `storage.mirror`): the [`super::mirror::Mirror`] to run beside it, which follows
    /// every manifest published from now on (starting with the newest) and stops after
    /// the replicator does.
    pub fn mirror(&mut self, bucket: Bucket) -> super::mirror::Mirror {
        let staged = Arc::new(super::mirror::Staged::default());
        self.mirror = Some((bucket.clone(), staged.clone()));
        super::mirror::Mirror::new(
            self.target.clone(),
            SyncTarget {
                bucket,
                prefix: self.target.prefix.clone(),
            },
            self.status.clone(),
            self.feed.subscribe(),
            staged,
            self.scratch.clone(),
        )
        .with_metrics(self.ws.metrics.clone())
    }

    /// Rolls to a new generation after `batches` WAL batches (256 by default).
    pub fn roll_after(mut self, batches: usize) -> Self {
        self.roll_batches = batches.max(1);
        self
    }

    /// A new generation: each database checkpointed and copied through the backup API
    /// while its writer is held; the WAL cursors start after what the copies hold.
    async fn snapshot(&mut self) -> Result<(), SyncError> {
        let generation = self.manifest.generation;
        let mut snapshots = BTreeMap::new();
        for (i, db) in self.ws.db.all().into_iter().enumerate() {
            let file = self.scratch.join(format!("{}.snapshot", db.name()));
            let _ = std::fs::remove_file(&file);
            let cursor = &mut self.cursors[i];
            db.with_writer(|c| -> Result<(), String> {
                c.pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(|e| e.to_string())?;
                let _ = c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
                let mut dst = rusqlite::Connection::open(&file).map_err(|e| e.to_string())?;
                // A scratch copy, uploaded then deleted: the bucket's write makes it
                // durable, so its journal and fsyncs (four per database, with the
                // writer held) would buy nothing. A copy cut off midway is never
                // uploaded, and the next round starts a new one.
                dst.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
                    .map_err(|e| e.to_string())?;
                rusqlite::backup::Backup::new(c, &mut dst)
                    .and_then(|b| b.run_to_completion(1024, Duration::ZERO, None))
                    .map_err(|e| e.to_string())?;
                cursor.reset();
                // Whatever a partial checkpoint left in the WAL is in the copy already.
                cursor.read(&db.wal_path()).map_err(|e| e.to_string())?;
                Ok(())
            })
            .map_err(|e| SyncError::Local(format!("snapshot {}: {e}", db.name())))?;
            let object = format!("databases/{generation:06}/snapshot/{}.sqlite", db.name());
            let r = self.upload_file(&object, &file).await;
            let _ = std::fs::remove_file(&file);
            snapshots.insert(db.name().to_string(), r?);
        }
        self.manifest.snapshots = snapshots;
        self.manifest.snapshot_ms = now_ms();
        self.manifest.wal.clear();
        self.next_index = 1;
        self.status.update(|s| s.generation = generation);
        Ok(())
    }

    /// Uploads a file, streaming it (snapshots need not fit in memory).
    async fn upload_file(
        &self,
        object: &str,
        file: &std::path::Path,
    ) -> Result<ObjectRef, SyncError> {
        let path = file.to_path_buf();
        let digest = tokio::task::spawn_blocking(move || super::store::digest_file(&path))
            .await
            .map_err(|e| SyncError::Local(e.to_string()))?
            .map_err(|e| SyncError::Local(format!("read {}: {e}", file.display())))?;
        self.target
            .bucket
            .put_file(&self.target.name(object), file, Precondition::None)
            .await?;
        self.counted(digest.size);
        Ok(ObjectRef {
            object: object.to_string(),
            sha256: digest.sha256,
            size: digest.size,
        })
    }

    fn counted(&self, size: u64) {
        self.ws.metrics.sync_uploads.inc();
        self.ws.metrics.sync_bytes.inc_by(size);
        self.status.update(|s| {
            s.uploads += 1;
            s.uploaded_bytes += size;
        });
    }

    async fn upload(
        &self,
        object: &str,
        data: Bytes,
        pre: Precondition,
    ) -> Result<ObjectRef, StoreError> {
        let (sha256, size) = (sha(&data), data.len() as u64);
        if let Some((_, staged)) = &self.mirror {
            staged.put(object, &data);
        }
        self.target
            .bucket
            .put(&self.target.name(object), data, pre)
            .await?;
        self.counted(size);
        Ok(ObjectRef {
            object: object.to_string(),
            sha256,
            size,
        })
    }

    /// Writes the manifest, if it is still ours.
    async fn publish(&mut self, first: bool) -> Result<(), SyncError> {
        self.manifest.updated_ms = now_ms();
        self.fold_usage();
        let bytes = Bytes::from(
            serde_json::to_vec(&self.manifest).map_err(|e| SyncError::Local(e.to_string()))?,
        );
        let pre = if first {
            Precondition::DoesNotExist
        } else {
            Precondition::GenerationMatches(self.manifest_generation)
        };
        match self
            .target
            .bucket
            .put(&self.target.name(MANIFEST), bytes.clone(), pre)
            .await
        {
            Ok(meta) => {
                self.manifest_generation = meta.generation;
                if self.mirror.is_some() {
                    let at = self.manifest.updated_ms;
                    self.status
                        .update_mirror(|m| _ = m.pending_since_ms.get_or_insert(at));
                }
                self.feed
                    .send_replace(Some(Arc::new(super::mirror::Published {
                        manifest: self.manifest.clone(),
                        bytes,
                    })));
                Ok(())
            }
            Err(StoreError::PreconditionFailed { .. }) => {
                let who = match self.target.bucket.get(&self.target.name(MANIFEST)).await {
                    Ok(Some((b, _))) => serde_json::from_slice::<Manifest>(&b)
                        .map(|m| {
                            format!(
                                "{} on {}, pid {}",
                                m.owner.instance, m.owner.host, m.owner.pid
                            )
                        })
                        .unwrap_or_else(|_| "unknown".into()),
                    _ => "unknown".into(),
                };
                self.status.update(|s| s.fenced = true);
                Err(SyncError::Fenced(who))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Moves what the bucket was asked since the last publish into today's usage, this
    /// publish's own write included (counted ahead, and taken off the next tally).
    fn fold_usage(&mut self) {
        let mut delta = self.target.bucket.meter().take();
        delta.class_a = delta.class_a.saturating_sub(self.publish_counted) + 1;
        self.publish_counted = 1;
        let stored = self.manifest.stored_bytes();
        let day = super::meter::day_of(self.manifest.updated_ms);
        super::meter::fold(&mut self.manifest.usage, day.clone(), &delta, stored);
        // The mirror keeps the same objects (as soon as it caught up).
        if let Some((bucket, _)) = &self.mirror {
            let delta = bucket.meter().take();
            super::meter::fold(&mut self.manifest.mirror_usage, day, &delta, stored);
        }
    }

    /// Whether the bucket was asked anything the manifest does not count yet.
    fn usage_unrecorded(&self) -> bool {
        let m = self.target.bucket.meter();
        m.pending() > self.publish_counted
    }

    /// Deletes database generations older than the two the manifest keeps, and event
    /// segments it no longer names (folded ones whose delete failed).
    async fn prune(&self) {
        let keep: HashSet<u64> = std::iter::once(self.manifest.generation)
            .chain(self.manifest.previous.as_ref().map(|p| p.generation))
            .collect();
        let named: HashSet<String> = self
            .manifest
            .events
            .iter()
            .map(|e| self.target.name(&e.object.object))
            .collect();
        // Round objects of an old generation whose events are not folded yet stay.
        for dir in ["databases/", "rounds/"] {
            let dir = self.target.name(dir);
            if let Ok(objects) = self.target.bucket.list(&dir).await {
                for o in objects.into_iter().filter(|o| !named.contains(&o.name)) {
                    let rel = o.name.strip_prefix(&dir).unwrap_or_default();
                    let generation: Option<u64> =
                        rel.split('/').next().and_then(|g| g.parse().ok());
                    if generation.is_some_and(|g| !keep.contains(&g)) {
                        self.delete(&o.name).await;
                    }
                }
            }
        }
        if let Ok(objects) = self
            .target
            .bucket
            .list(&self.target.name("sessions/"))
            .await
        {
            for o in objects.into_iter().filter(|o| !named.contains(&o.name)) {
                self.delete(&o.name).await;
            }
        }
    }

    async fn delete(&self, name: &str) {
        if let Err(e) = self.target.bucket.delete(name).await {
            tracing::warn!(object = %name, error = %e, "pruning failed");
        }
    }

    /// Whether anything is waiting to be shipped (cheap: sizes and counters only).
    fn behind(&self) -> bool {
        !self.queue.is_empty()
            || self.ws.events.durable_seq() > self.manifest.last_seq()
            || self
                .ws
                .db
                .all()
                .iter()
                .zip(&self.cursors)
                .any(|(db, c)| c.behind(&db.wal_path()))
    }

    /// Every database's newly committed frames, each page once (none when idle).
    fn read_wal(&mut self) -> Result<Vec<(String, Frames)>, SyncError> {
        let mut parts: Vec<(String, Frames)> = Vec::new();
        for (i, db) in self.ws.db.all().into_iter().enumerate() {
            let cursor = &mut self.cursors[i];
            let frames = db
                .with_writer(|c| -> std::io::Result<Frames> {
                    let frames = cursor.read(&db.wal_path())?;
                    let size = std::fs::metadata(db.wal_path())
                        .map(|m| m.len())
                        .unwrap_or(0);
                    if size > CHECKPOINT_BYTES
                        && c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").is_ok()
                        && std::fs::metadata(db.wal_path())
                            .map(|m| m.len())
                            .unwrap_or(0)
                            == 0
                    {
                        cursor.reset();
                    }
                    Ok(frames)
                })
                .map_err(|e| SyncError::Local(format!("read {} WAL: {e}", db.name())))?;
            if !frames.pages.is_empty() {
                parts.push((db.name().to_string(), frames));
            }
        }
        Ok(parts)
    }

    /// The last event seq cut into a round object: queued, else shipped.
    fn cut_seq(&self) -> u64 {
        self.queue
            .iter()
            .rev()
            .find_map(|s| s.events.map(|(_, last)| last))
            .unwrap_or_else(|| self.manifest.last_seq())
    }

    /// The durable event lines past the last cut, with their range (none when none).
    async fn read_events(&mut self) -> Result<Option<(u64, u64, Vec<u8>)>, SyncError> {
        let (from, until) = (self.cut_seq() + 1, self.ws.events.durable_seq());
        if until < from {
            return Ok(None);
        }
        let (mut tail, dir) = (std::mem::take(&mut self.tail), self.ws.layout.sessions());
        let (tail, lines) = tokio::task::spawn_blocking(move || {
            let lines = tail.read(&dir, from, until);
            (tail, lines)
        })
        .await
        .map_err(|e| SyncError::Local(e.to_string()))?;
        self.tail = tail;
        let lines = lines.map_err(|e| SyncError::Local(format!("read the event log: {e}")))?;
        Ok(Some((from, until, lines)))
    }

    /// Cuts one round object of what is due: the databases' new pages and the log's new
    /// lines (nothing when neither moved). The events are read first: a failure there
    /// leaves the WAL cursors where they were.
    async fn cut_round(&mut self, databases: bool, events: bool) -> Result<(), SyncError> {
        let lines = if events {
            self.read_events().await?
        } else {
            None
        };
        let wal = if databases {
            self.read_wal()?
        } else {
            Vec::new()
        };
        if wal.is_empty() && lines.is_none() {
            return Ok(());
        }
        let range = lines.as_ref().map(|(first, last, _)| (*first, *last));
        let has_wal = !wal.is_empty();
        let data = tokio::task::spawn_blocking(move || {
            super::round::encode(&wal, lines.as_ref().map(|(f, l, b)| (*f, *l, b.as_slice())))
        })
        .await
        .map_err(|e| SyncError::Local(e.to_string()))?
        .map_err(|e| SyncError::Local(format!("encode a round: {e}")))?;
        let data = Bytes::from(data);
        let (index, ts_ms) = (self.next_index, now_ms());
        self.next_index += 1;
        let object = format!("rounds/{:06}/{index:012}.round", self.manifest.generation);
        self.queue.push_back(Shipment {
            object: ObjectRef {
                object,
                sha256: sha(&data),
                size: data.len() as u64,
            },
            data,
            wal: has_wal.then_some((index, ts_ms)),
            events: range,
        });
        Ok(())
    }

    /// Uploads the cut round objects, in order; the manifest (in memory) names each as it
    /// lands.
    async fn ship_rounds(&mut self) -> Result<bool, SyncError> {
        let mut shipped = false;
        while let Some(s) = self.queue.front().cloned() {
            self.upload(&s.object.object, s.data, Precondition::None)
                .await?;
            self.queue.pop_front();
            if let Some((index, ts_ms)) = s.wal {
                self.manifest.wal.push(WalRef {
                    object: s.object.clone(),
                    index,
                    ts_ms,
                });
            }
            if let Some((first, last)) = s.events {
                self.manifest.events.push(EventsRef {
                    object: s.object,
                    first,
                    last,
                });
                self.status.update(|st| st.shipped_seq = last);
            }
            shipped = true;
        }
        Ok(shipped)
    }

    /// Ships changed project files by content; returns whether the file list changed.
    /// Skipped when `projects/` is a gcsfuse mount of the bucket
    /// (`CODITECT_PROJECTS_ON_GCSFUSE` set): the mount already is the bucket.
    async fn ship_projects(&mut self) -> Result<bool, SyncError> {
        if std::env::var_os("CODITECT_PROJECTS_ON_GCSFUSE").is_some() {
            return Ok(false);
        }
        let root = self.ws.files.root().to_path_buf();
        let listed = crate::files::list_tree(&root, usize::MAX);
        let mut seen = HashSet::new();
        let mut changed = false;
        for (path, _) in listed {
            if path.contains("coditect-tmp") {
                continue; // a write in flight
            }
            let full = root.join(&path);
            let Ok(meta) = std::fs::metadata(&full) else {
                continue;
            };
            let mtime = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64);
            seen.insert(path.clone());
            if let Some((m, s, _)) = self.files.get(&path)
                && (*m, *s) == (mtime, meta.len())
            {
                continue;
            }
            let Ok(data) = tokio::fs::read(&full).await else {
                continue;
            };
            let digest = sha(&data);
            // The size of the bytes uploaded, not of the file a moment before.
            let size = data.len() as u64;
            if self.manifest.projects.get(&path).map(|p| &p.sha256) != Some(&digest) {
                match self
                    .upload(
                        &format!("projects/blobs/{digest}"),
                        Bytes::from(data),
                        Precondition::DoesNotExist,
                    )
                    .await
                {
                    Ok(_) | Err(StoreError::PreconditionFailed { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                self.manifest.projects.insert(
                    path.clone(),
                    ProjectFile {
                        sha256: digest.clone(),
                        size,
                    },
                );
                changed = true;
            }
            self.files.insert(path, (mtime, meta.len(), digest));
        }
        let before = self.manifest.projects.len();
        self.manifest.projects.retain(|p, _| seen.contains(p));
        self.files.retain(|p, _| seen.contains(p));
        Ok(changed || before != self.manifest.projects.len())
    }

    /// One round: databases (when `databases` is due), events and projects (when
    /// `events` is due), then the manifest if anything moved.
    ///
    /// # Errors
    /// The first failure; what was not shipped stays queued for the next round.
    pub async fn round(&mut self, databases: bool, events: bool) -> Result<(), SyncError> {
        let result = self.try_round(databases, events).await;
        if let Err(e) = &result {
            self.failed(e);
        }
        self.ws.metrics.sync_lag.set(self.status.lag_seconds());
        result
    }

    async fn try_round(&mut self, databases: bool, events: bool) -> Result<(), SyncError> {
        if self.status.get().fenced {
            return Err(SyncError::Fenced("see the last error".into()));
        }
        if self.behind() && self.status.get().pending_since_ms.is_none() {
            let now = now_ms();
            self.status.update(|s| s.pending_since_ms = Some(now));
        }
        let (mut moved, mut rolled) = (false, false);
        if databases {
            let wal_bytes: u64 = self.manifest.wal.iter().map(|w| w.object.size).sum();
            if self.queue.is_empty()
                && (self.manifest.wal.len() >= self.roll_batches || wal_bytes >= ROLL_BYTES)
            {
                self.manifest.previous = Some(self.manifest.current_generation());
                self.manifest.generation += 1;
                self.snapshot().await?;
                (moved, rolled) = (true, true);
            }
        }
        self.cut_round(databases, events).await?;
        moved |= self.ship_rounds().await?;
        let mut replaced = Vec::new();
        if events {
            // Best effort: a fold that fails (a segment unreadable for now) must never
            // hold back the round's new objects; it is tried again next round. Round
            // objects whose WAL pages a generation still names stay.
            let (wal, previous) = (&self.manifest.wal, &self.manifest.previous);
            let carries_wal = |object: &str| {
                wal.iter()
                    .chain(previous.iter().flat_map(|p| &p.wal))
                    .any(|w| w.object.object == object)
            };
            match super::compact::fold_events(&self.target, &mut self.manifest.events, &carries_wal)
                .await
            {
                Ok(r) => replaced = r,
                Err(e) => tracing::warn!(error = %e, "event compaction skipped this round"),
            }
            moved |= !replaced.is_empty();
            moved |= self.ship_projects().await?;
        }
        if moved {
            self.publish(false).await?;
        }
        // Folded segments go once the manifest that names their replacement is durable
        // (one left by a failure here goes with the next roll's prune).
        for name in replaced {
            if let Err(e) = self.target.bucket.delete(&name).await {
                tracing::warn!(object = %name, error = %e, "deleting a folded event segment failed");
            }
        }
        // Once the manifest names the new generation, the one before the previous goes.
        if rolled {
            self.prune().await;
        }
        if !self.behind() {
            let now = now_ms();
            self.status.update(|s| {
                s.pending_since_ms = None;
                s.last_synced_ms = Some(now);
                s.last_error = None;
            });
        }
        Ok(())
    }

    /// Runs rounds on the policy's intervals until `shutdown`, then a final flush; the
    /// seal when that flush left nothing behind.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Option<super::seal::Seal> {
        let policy = &self.ws.spec.spec.sync;
        let (db_every, ev_every) = (
            policy.databases_interval.to_std(),
            policy.events_interval.to_std(),
        );
        let tick = db_every.min(ev_every).min(Duration::from_secs(1));
        // A fixed cadence: rounds start `tick` apart (start to start), never more often,
        // so a busy workspace writes two objects an interval; a change acknowledged just
        // after a round cut its object is in the bucket one interval plus one round's
        // upload later. A round that overran its slot is followed at once by the next.
        let (mut last_db, mut last_ev) = (Instant::now(), Instant::now());
        let mut next = Instant::now() + tick;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep_until(next.into()) => {}
            }
            let started = Instant::now();
            let (db_due, ev_due) = (
                last_db.elapsed() + tick / 4 >= db_every,
                last_ev.elapsed() + tick / 4 >= ev_every,
            );
            let _ = self.round(db_due, ev_due).await;
            if db_due {
                last_db = started;
            }
            if ev_due {
                last_ev = started;
            }
            next = (next + tick).max(Instant::now());
        }
        let flushed = self.round(true, true).await.is_ok();
        // What the last rounds asked of the bucket (a prune's list and deletes) is counted
        // in the bucket before the instance goes.
        let mut published = true;
        if self.usage_unrecorded() && !self.status.get().fenced {
            published = self.publish(false).await.is_ok();
        }
        (flushed && published && !self.behind() && !self.status.get().fenced).then(|| {
            super::seal::Seal {
                manifest_generation: self.manifest_generation,
                last_seq: self.manifest.last_seq(),
                stored_bytes: self.manifest.stored_bytes(),
            }
        })
    }

    fn failed(&self, e: &SyncError) {
        tracing::warn!(error = %e, "sync round failed; retrying next round");
        let text = e.to_string();
        self.status.update(|s| s.last_error = Some(text));
    }
}
