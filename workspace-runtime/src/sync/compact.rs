//! Compaction of the event log in the bucket: every round ships its new events in its
//! round object, so a long-lived workspace's manifest would name more event segments every
//! day and a restore would read more objects every day. Once the manifest names more than
//! [`COMPACT_AFTER`] open segments (smaller than half of [`SEGMENT_BYTES`]), runs of
//! consecutive open ones are folded into segments of up to [`SEGMENT_BYTES`] (round
//! objects with events only, the lines in seq order); a segment of half that size or more
//! is closed and never read again, so a long log is not rewritten over and over. The
//! folded objects are uploaded first; the manifest then names them; only after that
//! manifest is durable are the old ones deleted (but for round objects whose WAL pages a
//! generation still names). A crash anywhere leaves a manifest whose every object exists.
//!
//! The bound: a restore reads at most 6 snapshots, [`super::replicator`]'s roll threshold of
//! WAL batches (256), `COMPACT_AFTER + 1 + event bytes / (SEGMENT_BYTES / 2)` event
//! segments, and one object per project file.

use std::ops::Range;

use bytes::Bytes;

use super::manifest::EventsRef;
use super::replicator::{SyncError, SyncTarget};
use super::store::{Precondition, StoreError};

/// Segments a manifest names before the small ones are folded.
pub const COMPACT_AFTER: usize = 64;

/// A folded segment's size limit (compressed: some 50 MiB of lines, which a fold holds in
/// memory).
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// Whether a segment is open: small enough to be folded again.
fn open(e: &EventsRef, limit: u64) -> bool {
    e.object.size < limit / 2
}

/// The runs of consecutive open segments to fold: greedy from the oldest, each run as
/// long as its bytes fit in `limit`; only runs of two or more. Closed segments (half the
/// limit or more) end a run and stay as they are.
pub fn plan(events: &[EventsRef], limit: u64) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, e) in events.iter().enumerate() {
        let closed = !open(e, limit);
        if i > start && (closed || bytes + e.object.size > limit) {
            if i - start >= 2 {
                runs.push(start..i);
            }
            start = i;
            bytes = 0;
        }
        if closed {
            start = i + 1;
            continue;
        }
        bytes += e.object.size;
    }
    if events.len().saturating_sub(start) >= 2 {
        runs.push(start..events.len());
    }
    runs
}

/// Folds the manifest's event segments when it names more than [`COMPACT_AFTER`]; the
/// names of the objects it replaced (to delete once the manifest naming the folded ones is
/// durable), but for those `keep` names (round objects that still carry WAL pages).
///
/// # Errors
/// The bucket's failures, or a segment that does not match its checksum; `events` is then
/// left as it was.
pub async fn fold_events(
    target: &SyncTarget,
    events: &mut Vec<EventsRef>,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<String>, SyncError> {
    if events.iter().filter(|e| open(e, SEGMENT_BYTES)).count() <= COMPACT_AFTER {
        return Ok(Vec::new());
    }
    let runs = plan(events, SEGMENT_BYTES);
    let mut folded: Vec<(Range<usize>, EventsRef)> = Vec::new();
    for run in runs {
        let members = &events[run.clone()];
        let mut lines = Vec::new();
        for e in members {
            let part = super::restore::fetch(target, &e.object)
                .await
                .map_err(|err| SyncError::Local(format!("compaction: {err}")))?;
            let (part, _) = super::round::decode_events(&part).map_err(|err| {
                SyncError::Local(format!("compaction: {}: {err}", e.object.object))
            })?;
            lines.extend_from_slice(&part);
        }
        let (first, last) = (members[0].first, members[members.len() - 1].last);
        let object = format!("sessions/{first:012}-{last:012}.round");
        let data = tokio::task::spawn_blocking(move || {
            super::round::encode(&[], Some((first, last, &lines)))
        })
        .await
        .map_err(|e| SyncError::Local(e.to_string()))?
        .map_err(|e| SyncError::Local(format!("compaction: {e}")))?;
        let data = Bytes::from(data);
        let r = upload(target, &object, data).await?;
        folded.push((
            run,
            EventsRef {
                object: r,
                first,
                last,
            },
        ));
    }
    fault_point("compaction:uploaded").await;
    let mut replaced = Vec::new();
    for (run, r) in folded.into_iter().rev() {
        for old in events.splice(run, std::iter::once(r)) {
            if !keep(&old.object.object) {
                replaced.push(target.name(&old.object.object));
            }
        }
    }
    Ok(replaced)
}

/// Uploads a folded segment; one left by a fold that crashed before its manifest holds
/// the same lines, so it is overwritten.
async fn upload(
    target: &SyncTarget,
    object: &str,
    data: Bytes,
) -> Result<super::manifest::ObjectRef, SyncError> {
    use sha2::Digest as _;
    let sha256 = hex::encode(sha2::Sha256::digest(&data));
    let size = data.len() as u64;
    let name = target.name(object);
    match target
        .bucket
        .put(&name, data.clone(), Precondition::DoesNotExist)
        .await
    {
        Ok(_) => {}
        Err(StoreError::PreconditionFailed { .. }) => {
            target.bucket.put(&name, data, Precondition::None).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(super::manifest::ObjectRef {
        object: object.to_string(),
        sha256,
        size,
    })
}

/// Where a crash test stops the process: when `CODITECT_PAUSE_AT` names this point, the
/// task waits here for ever (and says so on stderr), so the test can SIGKILL it exactly
/// there.
pub async fn fault_point(name: &str) {
    if std::env::var("CODITECT_PAUSE_AT").is_ok_and(|p| p == name) {
        eprintln!("paused at {name}");
        tracing::warn!(point = name, "paused at a fault point (CODITECT_PAUSE_AT)");
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::manifest::ObjectRef;

    fn seg(size: u64) -> EventsRef {
        EventsRef {
            object: ObjectRef {
                object: String::new(),
                sha256: String::new(),
                size,
            },
            first: 0,
            last: 0,
        }
    }

    #[test]
    fn runs_fill_up_to_the_limit_and_leave_closed_segments_alone() {
        let e: Vec<EventsRef> = [100, 5, 5, 5, 40, 30, 3, 3, 60, 1, 1]
            .into_iter()
            .map(seg)
            .collect();
        // 100 closed; 5+5+5+40+30 = 85 (+3+3 = 91, fits); 60 closed; 1+1.
        assert_eq!(plan(&e, 100), vec![1..8, 9..11]);
        let e: Vec<EventsRef> = [40, 40, 40].into_iter().map(seg).collect();
        // 40+40 fits, +40 does not: a new run of one.
        assert_eq!(plan(&e, 100), vec![0..2]);
        assert!(plan(&[seg(1)], 100).is_empty());
        assert_eq!(plan(&[seg(1), seg(1)], 100), vec![0..2]);
    }
}
