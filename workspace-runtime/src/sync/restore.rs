//! Restore: rebuilds a workspace folder from its bucket, reading the manifest first and
//! then only what it names — each database's snapshot with the WAL batches after it,
//! the event log segments (rewritten into their session files, each segment's chain
//! recomputed and checked against the next), the project files by content — checking
//! every object's SHA-256 on the way, and reading a round object that holds both WAL pages
//! and events once. With a time, batches and events
//! after it are left out (and an older generation is used when the current one starts
//! later).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{Generation, MANIFEST, Manifest, ObjectRef};
use super::replicator::SyncTarget;
use super::store::StoreError;
use super::wal::apply;
use crate::events::Event;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The bucket.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object the manifest names is missing or does not match its checksum.
    #[error("{object}: {reason}")]
    Bad {
        /// The object.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// The destination.
    #[error("{0}")]
    Local(String),
}

/// What a restore brought back.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// The database generation used.
    pub generation: u64,
    /// WAL batches applied.
    pub batches: usize,
    /// The last event restored.
    pub last_seq: u64,
    /// Its time.
    pub last_event_ts: Option<String>,
    /// Project files.
    pub files: usize,
    /// Bytes read from the bucket.
    pub bytes: u64,
    /// Objects read.
    pub objects: usize,
}

fn local(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError {
    let at = format!("{what} {}", path.display());
    move |e| RestoreError::Local(format!("{at}: {e}"))
}

/// Reads the manifest, if the workspace has one.
///
/// # Errors
/// When the bucket cannot be read or the manifest cannot be parsed.
pub async fn manifest(target: &SyncTarget) -> Result<Option<Manifest>, RestoreError> {
    match target.bucket.get(&target.name(MANIFEST)).await? {
        None => Ok(None),
        Some((bytes, _)) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RestoreError::Bad {
                    object: MANIFEST.into(),
                    reason: format!("not a manifest: {e}"),
                })
        }
    }
}

/// Fetches an object and checks it against its reference.
///
/// # Errors
/// [`RestoreError::Bad`] when it is missing or its checksum differs.
pub async fn fetch(target: &SyncTarget, r: &ObjectRef) -> Result<Bytes, RestoreError> {
    let Some((data, _)) = target.bucket.get(&target.name(&r.object)).await? else {
        return Err(RestoreError::Bad {
            object: r.object.clone(),
            reason: "missing from the bucket".into(),
        });
    };
    matches(r, &hex::encode(Sha256::digest(&data)))?;
    Ok(data)
}

/// Whether `sha256` is the object's checksum in the manifest.
fn matches(r: &ObjectRef, sha256: &str) -> Result<(), RestoreError> {
    if sha256 == r.sha256 {
        return Ok(());
    }
    Err(RestoreError::Bad {
        object: r.object.clone(),
        reason: format!(
            "SHA-256 {sha256} does not match the manifest's {}",
            r.sha256
        ),
    })
}

/// The generation to restore for `to_time_ms`.
fn generation(m: &Manifest, to_time_ms: Option<u64>) -> Result<Generation, RestoreError> {
    let current = m.current_generation();
    match to_time_ms {
        Some(t) if t < current.snapshot_ms => match &m.previous {
            Some(p) if p.snapshot_ms <= t => Ok(p.clone()),
            _ => Err(RestoreError::Local(format!(
                "no database generation in the bucket is older than the requested time (the oldest starts at {} ms)",
                m.previous
                    .as_ref()
                    .map_or(current.snapshot_ms, |p| p.snapshot_ms)
            ))),
        },
        _ => Ok(current),
    }
}

/// Restores the workspace into `dest` (its folder: `databases/`, `sessions/`,
/// `projects/` are created; they must not hold anything yet). `progress` is told each
/// object as it arrives (name, objects done, objects in all). `Ok(None)` when the bucket
/// has no manifest for the workspace.
///
/// # Errors
/// [`RestoreError`]; what was written so far is left for inspection.
pub async fn restore(
    target: &SyncTarget,
    dest: &Path,
    to_time_ms: Option<u64>,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<Option<RestoreReport>, RestoreError> {
    let Some(m) = manifest(target).await? else {
        return Ok(None);
    };
    let g = generation(&m, to_time_ms)?;
    let batches: Vec<_> = g
        .wal
        .iter()
        .filter(|w| to_time_ms.is_none_or(|t| w.ts_ms <= t))
        .collect();
    // A round object holds a round's WAL pages and its events: read once, its bytes kept
    // for the events (at most the unfolded segments, COMPACT_AFTER of them).
    let with_events: std::collections::HashSet<&str> =
        m.events.iter().map(|e| e.object.object.as_str()).collect();
    let batches_only = batches
        .iter()
        .filter(|w| !with_events.contains(w.object.object.as_str()))
        .count();
    let total = g.snapshots.len() + batches_only + with_events.len() + m.projects.len();
    let mut report = RestoreReport {
        generation: g.generation,
        ..RestoreReport::default()
    };
    let mut done = 0;
    let mut step = |name: &str, report: &mut RestoreReport, bytes: usize| {
        done += 1;
        report.objects += 1;
        report.bytes += bytes as u64;
        progress(name, done, total);
    };

    let databases = dest.join("databases");
    std::fs::create_dir_all(&databases).map_err(local("create", &databases))?;
    for (name, r) in &g.snapshots {
        // Streamed to disk: a snapshot need not fit in memory.
        let file = databases.join(format!("{name}.db"));
        let digest = target
            .bucket
            .get_to_file(&target.name(&r.object), &file)
            .await?
            .ok_or_else(|| RestoreError::Bad {
                object: r.object.clone(),
                reason: "missing from the bucket".into(),
            })?;
        matches(r, &digest.sha256)?;
        step(&r.object, &mut report, digest.size as usize);
    }
    let mut kept: std::collections::HashMap<String, Bytes> = std::collections::HashMap::new();
    for w in &batches {
        let data = fetch(target, &w.object).await?;
        let parts = super::round::decode_wal(&data).map_err(|reason| RestoreError::Bad {
            object: w.object.object.clone(),
            reason,
        })?;
        for (name, frames) in parts {
            let file = databases.join(format!("{name}.db"));
            apply(&file, &frames).map_err(local("apply WAL batch to", &file))?;
        }
        report.batches += 1;
        step(&w.object.object, &mut report, data.len());
        if with_events.contains(w.object.object.as_str()) {
            kept.insert(w.object.object.clone(), data);
        }
    }

    let sessions = dest.join("sessions");
    std::fs::create_dir_all(&sessions).map_err(local("create", &sessions))?;
    let mut files: BTreeMap<u64, std::io::BufWriter<std::fs::File>> = BTreeMap::new();
    let mut head: Option<String> = None;
    'segments: for e in &m.events {
        let (data, counted) = match kept.remove(&e.object.object) {
            Some(data) => (data, false),
            None => (fetch(target, &e.object).await?, true),
        };
        let bad = |reason: String| RestoreError::Bad {
            object: e.object.object.clone(),
            reason,
        };
        let (lines, anchors) = super::round::decode_events(&data).map_err(bad)?;
        // Each segment starts where the one before ended.
        if let (Some(a), Some(h)) = (&anchors, &head)
            && !a.raw
            && a.prev != *h
        {
            return Err(bad(format!(
                "its first event's prev {} is not the hash {h} the segment before ends at",
                a.prev
            )));
        }
        head = anchors.filter(|a| !a.raw).map(|a| a.head);
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event: Event = serde_json::from_slice(line)
                .map_err(|err| bad(format!("not an event line: {err}")))?;
            if let Some(t) = to_time_ms {
                let at = humantime::parse_rfc3339(&event.ts)
                    .ok()
                    .and_then(|s| s.duration_since(std::time::UNIX_EPOCH).ok());
                if at.is_some_and(|d| d.as_millis() as u64 > t) {
                    break 'segments;
                }
            }
            let file = match files.entry(event.session) {
                std::collections::btree_map::Entry::Occupied(f) => f.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let path = sessions.join(format!("{:06}.jsonl", event.session));
                    v.insert(std::io::BufWriter::with_capacity(
                        1 << 20,
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                            .map_err(local("open", &path))?,
                    ))
                }
            };
            file.write_all(line)
                .and_then(|()| file.write_all(b"\n"))
                .map_err(|err| {
                    RestoreError::Local(format!("write session {}: {err}", event.session))
                })?;
            report.last_seq = event.seq;
            report.last_event_ts = Some(event.ts.clone());
        }
        if counted {
            step(&e.object.object, &mut report, data.len());
        }
    }
    for (session, f) in files {
        f.into_inner()
            .map_err(|e| RestoreError::Local(format!("write session {session}: {e}")))?
            .sync_all()
            .map_err(|e| RestoreError::Local(format!("fsync session file: {e}")))?;
    }

    let projects = dest.join("projects");
    std::fs::create_dir_all(&projects).map_err(local("create", &projects))?;
    for (path, p) in &m.projects {
        let r = ObjectRef {
            object: format!("projects/blobs/{}", p.sha256),
            sha256: p.sha256.clone(),
            size: p.size,
        };
        let data = fetch(target, &r).await?;
        let file = projects.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(local("create", parent))?;
        }
        std::fs::write(&file, &data).map_err(local("write", &file))?;
        report.files += 1;
        step(&r.object, &mut report, data.len());
    }
    Ok(Some(report))
}

/// Verifies the hash chain of the event log in a restored `sessions/` folder.
///
/// # Errors
/// The first broken link, or a file that cannot be read.
pub fn verify_chain(sessions: &Path) -> Result<crate::events::ChainReport, String> {
    let mut files: Vec<_> = std::fs::read_dir(sessions)
        .map_err(|e| format!("read {}: {e}", sessions.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut events = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("read {}: {e}", f.display()))?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            events.push(
                serde_json::from_str::<Event>(line).map_err(|e| format!("{}: {e}", f.display()))?,
            );
        }
    }
    crate::events::verify_events(events.into_iter().map(Ok)).map_err(|b| format!("{b:?}"))
}
