//! The manifest: one object per workspace (`manifest.json`) naming everything a restore
//! needs — the current generation's database snapshots and WAL segments, the event log
//! segments, the project files — each with its SHA-256, and the instance that owns the
//! workspace. It is written last in every sync round, with a generation precondition, so
//! it never names an object that is not completely uploaded, and an instance that lost
//! ownership finds out on its next write.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's object name, under the workspace's prefix.
pub const MANIFEST: &str = "manifest.json";

/// One uploaded object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Its name under the workspace's prefix.
    pub object: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// A batch of WAL changes of all six databases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRef {
    /// The object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Its place in the generation, from 1.
    pub index: u64,
    /// When it was cut (ms since the epoch): `--to-time` stops before later batches.
    pub ts_ms: u64,
}

/// A segment of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsRef {
    /// The object.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Its first event's seq.
    pub first: u64,
    /// Its last event's seq.
    pub last: u64,
}

/// A project file, stored by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectFile {
    /// SHA-256 of its content (its blob is `projects/blobs/{sha256}`).
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// Who owns the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// A random id of the instance.
    pub instance: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// The workspace's path in the bucket.
    pub workspace: String,
    /// The owner.
    pub owner: Owner,
    /// The database generation: a snapshot and the WAL batches after it.
    pub generation: u64,
    /// When the snapshots were taken (ms since the epoch).
    pub snapshot_ms: u64,
    /// Snapshots of the six databases, by name.
    pub snapshots: BTreeMap<String, ObjectRef>,
    /// WAL batches after the snapshots, in order.
    pub wal: Vec<WalRef>,
    /// The generation before, kept for restores to an earlier time.
    pub previous: Option<Generation>,
    /// Event log segments, in seq order, gapless.
    pub events: Vec<EventsRef>,
    /// Project files by path under `projects/`.
    pub projects: BTreeMap<String, ProjectFile>,
    /// When it was written (ms since the epoch).
    pub updated_ms: u64,
    /// What the workspace's instances asked of the bucket and logged, per UTC day, kept
    /// across instances (the cost report's measured operations, egress and log volume).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub usage: super::meter::UsageRecord,
    /// The same for the hot mirror's bucket (its operations and the bytes it keeps).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mirror_usage: super::meter::UsageRecord,
}

/// A database generation: snapshots and the WAL batches after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// Its number.
    pub generation: u64,
    /// When its snapshots were taken.
    pub snapshot_ms: u64,
    /// The snapshots.
    pub snapshots: BTreeMap<String, ObjectRef>,
    /// The batches.
    pub wal: Vec<WalRef>,
}

impl Manifest {
    /// The current generation, detached.
    pub fn current_generation(&self) -> Generation {
        Generation {
            generation: self.generation,
            snapshot_ms: self.snapshot_ms,
            snapshots: self.snapshots.clone(),
            wal: self.wal.clone(),
        }
    }

    /// Bytes of the objects this manifest keeps: both generations' snapshots and WAL
    /// batches, the event segments and the project blobs (each blob once).
    pub fn stored_bytes(&self) -> u64 {
        let generation = |snapshots: &BTreeMap<String, ObjectRef>, wal: &[WalRef]| -> u64 {
            snapshots.values().map(|o| o.size).sum::<u64>()
                + wal.iter().map(|w| w.object.size).sum::<u64>()
        };
        let blobs: BTreeMap<&str, u64> = self
            .projects
            .values()
            .map(|p| (p.sha256.as_str(), p.size))
            .collect();
        generation(&self.snapshots, &self.wal)
            + self
                .previous
                .as_ref()
                .map_or(0, |p| generation(&p.snapshots, &p.wal))
            + self.events.iter().map(|e| e.object.size).sum::<u64>()
            + blobs.values().sum::<u64>()
    }

    /// The objects a restore to now reads: the current generation's snapshots and WAL
    /// batches, the event segments and the project blobs, each once.
    pub fn restore_objects(&self) -> Vec<ObjectRef> {
        self.objects(false)
    }

    /// Every object the manifest keeps: [`Manifest::restore_objects`] and the previous
    /// generation's (for restores to an earlier time), each once.
    pub fn kept_objects(&self) -> Vec<ObjectRef> {
        self.objects(true)
    }

    fn objects(&self, previous: bool) -> Vec<ObjectRef> {
        let blobs = self.projects.values().map(|p| ObjectRef {
            object: format!("projects/blobs/{}", p.sha256),
            sha256: p.sha256.clone(),
            size: p.size,
        });
        let earlier = self.previous.iter().filter(|_| previous);
        let mut seen = std::collections::HashSet::new();
        self.snapshots
            .values()
            .chain(self.wal.iter().map(|w| &w.object))
            .chain(earlier.clone().flat_map(|p| p.snapshots.values()))
            .chain(earlier.flat_map(|p| p.wal.iter().map(|w| &w.object)))
            .chain(self.events.iter().map(|e| &e.object))
            .cloned()
            .chain(blobs)
            .filter(|o| seen.insert(o.object.clone()))
            .collect()
    }

    /// The last event seq in the bucket.
    pub fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.last)
    }
}
