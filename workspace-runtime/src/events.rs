//! The event log: append-only, hash-chained JSONL, one file per session under
//! `sessions/`, with group commit, torn-tail repair, replay and live tail.
//!
//! ```text
//!  append() ──┐                        ┌─► fsync ─► durable seq ─► broadcast (live tail)
//!  append() ──┼─► channel ─► writer ───┤                        └─► ack each appender
//!  append() ──┘   (batch: all pending) └─► sessions/000001.jsonl, 000002.jsonl, …
//! ```
//!
//! One writer thread owns the files. It takes every append waiting in its channel as one
//! batch, gives each event the next `seq` (gapless across the workspace and its sessions),
//! chains it to the previous event's hash, writes the batch and fsyncs once; only then are
//! the appenders acknowledged and subscribers told. An acknowledged event is therefore on
//! disk; a SIGKILL can only leave a torn final line, which [`EventLog::open`] truncates.
//!
//! `hash` is SHA-256 over the canonical JSON (sorted keys) of the event without `hash`,
//! `prev` included, so [`EventLog::verify`] can prove nothing was removed, reordered or
//! changed. The first event's `prev` is 64 zeros.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, oneshot};

use crate::clock;
use crate::error::StorageError;

/// The `prev` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most appends written per fsync.
const MAX_BATCH: usize = 4096;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// An agent changed a file.
    FileEdit,
    /// An agent said something.
    AgentMessage,
    /// An agent called a tool.
    ToolCall,
    /// A tool call's outcome (`call` names the `tool_call` it answers; `ok`, a short
    /// `result`), so a reader pairs each call with its result.
    ToolResult,
    /// A consistent point (sync, session boundary).
    Checkpoint,
    /// An agent's state changed (idle, editing, waiting, analyzing, indexing).
    AgentStateChange,
    /// A lock was granted.
    LockAcquired,
    /// A lock was released or expired.
    LockReleased,
    /// A task entered a queue.
    TaskQueued,
    /// A task started running.
    TaskStarted,
    /// A task ended (done, failed or cancelled).
    TaskFinished,
    /// A message was sent on the bus.
    MessageSent,
    /// A change to the control plane (the audit trail, which is an event log of its own).
    Audit,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Gapless, starting at 1, across all sessions of the workspace.
    pub seq: u64,
    /// RFC 3339 time the writer sequenced it.
    pub ts: String,
    /// The session it belongs to.
    pub session: u64,
    /// Who did it (`runtime` for the instance itself).
    pub agent: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Details, by type.
    pub data: Value,
    /// The previous event's hash.
    pub prev: String,
    /// SHA-256 of this event's canonical form (without `hash`).
    pub hash: String,
}

impl Event {
    /// The hash this event should carry.
    pub fn compute_hash(&self) -> String {
        let body = json!({
            "seq": self.seq, "ts": self.ts, "session": self.session, "agent": self.agent,
            "type": self.kind, "data": self.data, "prev": self.prev,
        });
        let canonical = coditect_specs::hash::canonical_json(&body);
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// An event before the writer sequences it.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// Who did it.
    pub agent: String,
    /// What happened.
    pub kind: EventType,
    /// Details.
    pub data: Value,
}

impl EventDraft {
    /// A draft.
    pub fn new(agent: impl Into<String>, kind: EventType, data: Value) -> Self {
        EventDraft {
            agent: agent.into(),
            kind,
            data,
        }
    }
}

/// The first broken link found by [`EventLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("event chain broken at seq {seq}: {reason}")]
pub struct ChainBreak {
    /// The first event that does not fit.
    pub seq: u64,
    /// How it does not fit.
    pub reason: String,
}

/// The result of a successful [`EventLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Events checked.
    pub events: u64,
    /// The last event's hash (the chain head).
    pub head: String,
}

/// What [`EventLog::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The last durable event's seq (0 for an empty log).
    pub last_seq: u64,
    /// Bytes of a torn final line that were cut off.
    pub truncated_bytes: u64,
}

struct Request {
    draft: EventDraft,
    session: u64,
    reply: Option<oneshot::Sender<Result<Arc<Event>, StorageError>>>,
}

/// A segment file and the first seq in it.
#[derive(Debug, Clone)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
}

#[derive(Debug)]
struct Shared {
    durable: AtomicU64,
    session: AtomicU64,
    segments: Mutex<Vec<Segment>>,
    tail: broadcast::Sender<Arc<Event>>,
    /// Each agent's newest durable event since the log opened (the agents view).
    last_by_agent: Mutex<std::collections::HashMap<String, Arc<Event>>>,
}

/// Handle to the workspace's event log; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventLog {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl EventLog {
    /// Opens the log in `dir`: finds its segments, truncates a torn final line, and starts
    /// the writer thread. New events go to session `session`'s segment.
    ///
    /// # Errors
    /// [`StorageError::CorruptLog`] when a line other than a torn tail is damaged (the log
    /// is then left as it is, for forensics); I/O errors.
    pub fn open(dir: &Path, session: u64) -> Result<(EventLog, Recovery), StorageError> {
        std::fs::create_dir_all(dir).map_err(StorageError::io("create folder", dir))?;
        let (segments, last, recovery) = scan(dir)?;
        let (tail, _) = broadcast::channel(8192);
        let shared = Arc::new(Shared {
            durable: AtomicU64::new(recovery.last_seq),
            session: AtomicU64::new(session),
            segments: Mutex::new(segments),
            tail,
            last_by_agent: Mutex::default(),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            next_seq: recovery.last_seq + 1,
            prev: last.map_or_else(|| GENESIS.to_string(), |e| e.hash),
            file: None,
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(StorageError::io("start event log writer", dir))?;
        Ok((EventLog { tx, shared }, recovery))
    }

    /// Appends an event and returns it once it is durable (fsynced).
    ///
    /// # Errors
    /// When the write or fsync fails (the event is then not in the log), or the log is closed.
    pub async fn append(&self, draft: EventDraft) -> Result<Arc<Event>, StorageError> {
        let (reply, rx) = oneshot::channel();
        self.send(draft, Some(reply))?;
        rx.await.map_err(|_| StorageError::LogClosed)?
    }

    /// Queues an event for the next group commit without waiting for it. For records of
    /// operations whose own durability lies elsewhere (lock grants live in workspace_idx).
    pub fn append_nowait(&self, draft: EventDraft) {
        if self.send(draft, None).is_err() {
            tracing::warn!("event dropped: event log is closed");
        }
    }

    fn send(
        &self,
        draft: EventDraft,
        reply: Option<oneshot::Sender<Result<Arc<Event>, StorageError>>>,
    ) -> Result<(), StorageError> {
        let session = self.shared.session.load(Ordering::Acquire);
        self.tx
            .send(Request {
                draft,
                session,
                reply,
            })
            .map_err(|_| StorageError::LogClosed)
    }

    /// Starts writing new events to `session`'s segment.
    pub fn set_session(&self, session: u64) {
        self.shared.session.store(session, Ordering::Release);
    }

    /// The seq of the last durable event.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// `agent`'s newest durable event appended since the log was opened.
    pub fn last_of(&self, agent: &str) -> Option<Arc<Event>> {
        self.shared
            .last_by_agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent)
            .cloned()
    }

    /// Live events from now on, and the last durable seq at the moment of subscribing:
    /// replay up to that seq, then read the receiver skipping what was replayed, and
    /// nothing is missed or repeated.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Event>>, u64) {
        let rx = self.shared.tail.subscribe();
        (rx, self.durable_seq())
    }

    /// Durable events with `seq >= from`, read lazily from disk, up to the last durable
    /// event at the time of the call. Memory use does not grow with the log.
    pub fn replay(&self, from: u64) -> Replay {
        self.replay_until(from, self.durable_seq())
    }

    /// Durable events with `from <= seq <= until`.
    pub fn replay_until(&self, from: u64, until: u64) -> Replay {
        let segments = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let start = segments
            .iter()
            .rposition(|s| s.first_seq <= from.max(1))
            .unwrap_or(0);
        Replay {
            segments: segments.into_iter().skip(start).collect(),
            reader: None,
            from,
            until: until.min(self.durable_seq()),
        }
    }

    /// Walks the whole chain: seqs gapless from 1, each `prev` the previous `hash`, each
    /// `hash` correct.
    ///
    /// # Errors
    /// The first broken link.
    pub fn verify(&self) -> Result<ChainReport, ChainBreak> {
        verify_events(self.replay(1))
    }
}

/// Checks a stream of events as a chain from seq 1.
///
/// # Errors
/// The first broken link.
pub fn verify_events(
    events: impl Iterator<Item = Result<Event, StorageError>>,
) -> Result<ChainReport, ChainBreak> {
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_string();
    for event in events {
        let event = event.map_err(|e| ChainBreak {
            seq: expected_seq,
            reason: e.to_string(),
        })?;
        let fail = |reason: String| ChainBreak {
            seq: event.seq,
            reason,
        };
        if event.seq != expected_seq {
            return Err(fail(format!(
                "expected seq {expected_seq} (an event is missing or out of order)"
            )));
        }
        if event.prev != prev {
            return Err(fail(format!(
                "prev is {}, but the previous event's hash is {prev}",
                event.prev
            )));
        }
        let computed = event.compute_hash();
        if event.hash != computed {
            return Err(fail(format!(
                "hash is {}, but the event hashes to {computed} (it was changed)",
                event.hash
            )));
        }
        prev = event.hash;
        expected_seq += 1;
    }
    Ok(ChainReport {
        events: expected_seq - 1,
        head: prev,
    })
}

/// Iterator over durable events; see [`EventLog::replay`].
#[derive(Debug)]
pub struct Replay {
    segments: std::collections::VecDeque<Segment>,
    reader: Option<(PathBuf, std::io::Lines<BufReader<File>>)>,
    from: u64,
    until: u64,
}

impl Iterator for Replay {
    type Item = Result<Event, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.from > self.until {
                return None;
            }
            if self.reader.is_none() {
                let segment = self.segments.pop_front()?;
                let file = match File::open(&segment.path) {
                    Ok(f) => f,
                    Err(e) => return Some(Err(StorageError::io("open segment", &segment.path)(e))),
                };
                self.reader = Some((segment.path, BufReader::new(file).lines()));
            }
            let (path, lines) = self.reader.as_mut()?;
            match lines.next() {
                None => self.reader = None,
                Some(Err(e)) => {
                    return Some(Err(StorageError::io("read segment", path.clone())(e)));
                }
                Some(Ok(line)) => match serde_json::from_str::<Event>(&line) {
                    Ok(event) if event.seq < self.from => {}
                    Ok(event) => {
                        self.from = event.seq + 1;
                        return Some(Ok(event));
                    }
                    Err(e) => {
                        return Some(Err(StorageError::CorruptLog {
                            path: path.clone(),
                            line: 0,
                            reason: e.to_string(),
                        }));
                    }
                },
            }
        }
    }
}

fn segment_path(dir: &Path, session: u64) -> PathBuf {
    dir.join(format!("{session:06}.jsonl"))
}

/// How much of the newest segment [`EventLog::open`] reads: its last 64 KiB, whatever the
/// log's age. Damage in that window (other than a torn final line) refuses the open;
/// older history is checked by [`EventLog::verify`], not on every start.
const TAIL_WINDOW: u64 = 64 * 1024;

/// Finds the segments, repairs a torn tail, and returns the last event. Bounded work: the
/// first line of each segment, and the tail of the newest one that holds events.
fn scan(dir: &Path) -> Result<(Vec<Segment>, Option<Event>, Recovery), StorageError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(StorageError::io("list", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    let mut segments = Vec::new();
    let mut last: Option<Event> = None;
    let mut recovery = Recovery::default();
    // Newest first: tails are read until one holds an event; the rest give their first seq.
    for path in paths.into_iter().rev() {
        let first = if last.is_none() {
            let (first, tail, truncated) = scan_tail(&path)?;
            recovery.truncated_bytes += truncated;
            last = tail;
            first
        } else {
            first_seq(&path)?
        };
        if let Some(first) = first {
            segments.push(Segment {
                first_seq: first,
                path,
            });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    recovery.last_seq = last.as_ref().map_or(0, |e| e.seq);
    Ok((segments, last, recovery))
}

/// The seq of a segment's first event (a sealed segment: its first line is whole).
fn first_seq(path: &Path) -> Result<Option<u64>, StorageError> {
    let file = File::open(path).map_err(StorageError::io("open segment", path))?;
    let mut line = Vec::new();
    BufReader::new(file)
        .read_until(b'\n', &mut line)
        .map_err(StorageError::io("read segment", path))?;
    if line.is_empty() {
        return Ok(None);
    }
    match serde_json::from_slice::<Event>(&line) {
        Ok(e) => Ok(Some(e.seq)),
        Err(e) => Err(StorageError::CorruptLog {
            path: path.to_path_buf(),
            line: 1,
            reason: e.to_string(),
        }),
    }
}

/// First seq, last event and truncated bytes of the newest segment, reading only its
/// first line and its last [`TAIL_WINDOW`] bytes; a torn final line is cut off.
fn scan_tail(path: &Path) -> Result<(Option<u64>, Option<Event>, u64), StorageError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(StorageError::io("open segment", path))?;
    let len = file
        .metadata()
        .map_err(StorageError::io("stat segment", path))?
        .len();
    let mut start = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(start))
        .map_err(StorageError::io("seek segment", path))?;
    let mut window = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.read_to_end(&mut window)
        .map_err(StorageError::io("read segment", path))?;
    let mut from = 0;
    if start > 0 {
        // The window begins inside a line: start at the next one.
        match window.iter().position(|b| *b == b'\n') {
            Some(p) => from = p + 1,
            None => {
                // One line longer than the window: read the whole segment.
                start = 0;
                window = std::fs::read(path).map_err(StorageError::io("read segment", path))?;
            }
        }
    }
    let base = start + from as u64;
    let (first_in_window, last, good_end) = scan_lines(path, &window[from..], base, len)?;
    let first = if start == 0 {
        first_in_window
    } else {
        first_seq(path)?
    };
    let truncated = len - good_end;
    if truncated > 0 {
        tracing::warn!(path = %path.display(), bytes = truncated, "truncating torn final line of event log");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(StorageError::io("open segment", path))?;
        file.set_len(good_end)
            .map_err(StorageError::io("truncate segment", path))?;
        file.sync_all()
            .map_err(StorageError::io("sync segment", path))?;
    }
    Ok((first, last, truncated))
}

/// Parses whole lines of `bytes` (which start at `base` in a file of `len` bytes): the
/// first seq, the last event, and where the last good line ends. Only the file's final
/// line may be bad (torn: no newline, or garbage a crash left); a bad line with more
/// after it is corruption.
fn scan_lines(
    path: &Path,
    bytes: &[u8],
    base: u64,
    len: u64,
) -> Result<(Option<u64>, Option<Event>, u64), StorageError> {
    let mut good_end = base;
    let mut first = None;
    let mut last: Option<Event> = None;
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let (line, tail) = rest.split_at(n);
        rest = tail;
        let complete = line.last() == Some(&b'\n');
        let at_end = good_end + n as u64 == len;
        match serde_json::from_slice::<Event>(line) {
            Ok(event) if complete => {
                first.get_or_insert(event.seq);
                good_end += n as u64;
                last = Some(event);
            }
            _ if at_end => break,
            parsed => {
                return Err(StorageError::CorruptLog {
                    path: path.to_path_buf(),
                    line: line_number(path, good_end),
                    reason: parsed
                        .err()
                        .map_or("line without newline".into(), |e| e.to_string()),
                });
            }
        }
    }
    Ok((first, last, good_end))
}

/// The 1-based number of the line that starts at byte `offset` (read only to report
/// corruption).
fn line_number(path: &Path, offset: u64) -> usize {
    std::fs::read(path).map_or(0, |b| {
        let end = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
        b[..end].iter().filter(|c| **c == b'\n').count() + 1
    })
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    next_seq: u64,
    prev: String,
    file: Option<(u64, File)>,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    /// Writes one batch with one fsync per touched segment, then acknowledges it.
    fn commit(&mut self, batch: Vec<Request>) {
        let (seq0, prev0) = (self.next_seq, self.prev.clone());
        let mut events = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut result = Ok(());
        let mut pending: Vec<u8> = Vec::new();
        // (session, length before the batch), to cut back to if the batch fails.
        let mut touched: Vec<(u64, u64)> = Vec::new();
        if let Some((session, file)) = &self.file {
            touched.push((*session, file.metadata().map_or(0, |m| m.len())));
        }
        for req in batch {
            if self.file.as_ref().is_none_or(|(s, _)| *s != req.session) {
                result = result.and_then(|()| self.flush(&mut pending));
                result = result.and_then(|()| self.switch(req.session, &mut touched));
            }
            let mut event = Event {
                seq: self.next_seq,
                ts: clock::rfc3339(clock::now_ms()),
                session: req.session,
                agent: req.draft.agent,
                kind: req.draft.kind,
                data: req.draft.data,
                prev: std::mem::take(&mut self.prev),
                hash: String::new(),
            };
            event.hash = event.compute_hash();
            self.prev.clone_from(&event.hash);
            self.next_seq += 1;
            if let Ok(line) = serde_json::to_vec(&event) {
                pending.extend_from_slice(&line);
                pending.push(b'\n');
            }
            events.push(Arc::new(event));
            replies.push(req.reply);
        }
        result = result.and_then(|()| self.flush(&mut pending));
        result = result.and_then(|()| self.sync());
        match result {
            Ok(()) => {
                if let Some(last) = events.last() {
                    self.shared.durable.store(last.seq, Ordering::Release);
                    let mut by_agent = self
                        .shared
                        .last_by_agent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    for event in &events {
                        by_agent.insert(event.agent.clone(), event.clone());
                    }
                }
                for (event, reply) in events.into_iter().zip(replies) {
                    let _ = self.shared.tail.send(event.clone());
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(event));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event log write failed; batch not acknowledged");
                self.rollback(seq0, prev0, &touched);
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(e.again()));
                }
            }
        }
    }

    fn flush(&mut self, pending: &mut Vec<u8>) -> Result<(), StorageError> {
        if pending.is_empty() {
            return Ok(());
        }
        let Some((session, file)) = self.file.as_mut() else {
            return Ok(());
        };
        let path = segment_path(&self.dir, *session);
        file.write_all(pending)
            .map_err(StorageError::io("write segment", &path))?;
        pending.clear();
        Ok(())
    }

    fn switch(&mut self, session: u64, touched: &mut Vec<(u64, u64)>) -> Result<(), StorageError> {
        if let Some((old, file)) = self.file.take() {
            file.sync_data().map_err(StorageError::io(
                "sync segment",
                segment_path(&self.dir, old),
            ))?;
        }
        let path = segment_path(&self.dir, session);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StorageError::io("open segment", &path))?;
        let len = file
            .metadata()
            .map_err(StorageError::io("stat segment", &path))?
            .len();
        touched.push((session, len));
        let mut segments = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !segments.iter().any(|s| s.path == path) {
            segments.push(Segment {
                first_seq: self.next_seq,
                path,
            });
        }
        drop(segments);
        self.file = Some((session, file));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        match self.file.as_ref() {
            Some((session, file)) => file.sync_data().map_err(StorageError::io(
                "sync segment",
                segment_path(&self.dir, *session),
            )),
            None => Ok(()),
        }
    }

    /// Undoes a failed batch: cut the segments back and reuse the seqs.
    fn rollback(&mut self, seq0: u64, prev0: String, touched: &[(u64, u64)]) {
        self.next_seq = seq0;
        self.prev = prev0;
        self.file = None;
        for (session, len) in touched {
            let path = segment_path(&self.dir, *session);
            if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                let _ = f.set_len(*len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(i: usize) -> EventDraft {
        EventDraft::new("alpha", EventType::AgentMessage, json!({"i": i}))
    }

    #[tokio::test]
    async fn concurrent_appends_are_gapless_and_chained() {
        let tmp = tempfile::tempdir().unwrap();
        let (log, rec) = EventLog::open(tmp.path(), 1).unwrap();
        assert_eq!(rec.last_seq, 0);
        let mut handles = Vec::new();
        for i in 0..200 {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                log.append(draft(i)).await.unwrap().seq
            }));
        }
        let mut seqs = Vec::new();
        for h in handles {
            seqs.push(h.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        let report = log.verify().unwrap();
        assert_eq!(report.events, 200);
    }

    #[tokio::test]
    async fn reopen_continues_the_chain_and_replays_from_any_seq() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
            for i in 0..10 {
                log.append(draft(i)).await.unwrap();
            }
        }
        let (log, rec) = EventLog::open(tmp.path(), 2).unwrap();
        assert_eq!(rec.last_seq, 10);
        let e = log.append(draft(10)).await.unwrap();
        assert_eq!((e.seq, e.session), (11, 2));
        assert!(tmp.path().join("000002.jsonl").exists());
        let tail: Vec<u64> = log.replay(7).map(|e| e.unwrap().seq).collect();
        assert_eq!(tail, vec![7, 8, 9, 10, 11]);
        let middle: Vec<u64> = log.replay_until(3, 4).map(|e| e.unwrap().seq).collect();
        assert_eq!(middle, vec![3, 4]);
        assert_eq!(log.verify().unwrap().events, 11);
    }

    #[tokio::test]
    async fn torn_final_line_is_truncated_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
            for i in 0..3 {
                log.append(draft(i)).await.unwrap();
            }
        }
        let path = tmp.path().join("000001.jsonl");
        let good = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let torn = br#"{"seq":4,"ts":"2026-"#;
        f.write_all(torn).unwrap();
        drop(f);
        let (log, rec) = EventLog::open(tmp.path(), 1).unwrap();
        assert_eq!(rec.last_seq, 3);
        assert_eq!(rec.truncated_bytes, torn.len() as u64);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        assert_eq!(log.append(draft(3)).await.unwrap().seq, 4);
        assert_eq!(log.verify().unwrap().events, 4);
    }

    #[tokio::test]
    async fn verify_reports_the_first_broken_link() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
            for i in 0..5 {
                log.append(draft(i)).await.unwrap();
            }
        }
        let path = tmp.path().join("000001.jsonl");
        let original = std::fs::read_to_string(&path).unwrap();
        // A changed event.
        std::fs::write(&path, original.replacen(r#"{"i":2}"#, r#"{"i":99}"#, 1)).unwrap();
        let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
        let err = log.verify().unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("was changed"), "{err}");
        drop(log);
        // A removed event.
        let without_third: Vec<&str> = original
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, l)| l)
            .collect();
        std::fs::write(&path, without_third.join("\n") + "\n").unwrap();
        let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
        let err = log.verify().unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(err.reason.contains("missing"), "{err}");
    }

    #[tokio::test]
    async fn corruption_before_the_end_refuses_to_open() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
            for i in 0..3 {
                log.append(draft(i)).await.unwrap();
            }
        }
        let path = tmp.path().join("000001.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[1] = "garbage".into();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let err = EventLog::open(tmp.path(), 1).unwrap_err();
        assert!(
            matches!(err, StorageError::CorruptLog { line: 2, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn open_reads_a_bounded_tail_whatever_the_log_s_age() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
            for i in 0..3000 {
                log.append_nowait(draft(i));
            }
            log.append(draft(3000)).await.unwrap();
            log.set_session(2);
            log.append(draft(3001)).await.unwrap();
            log.set_session(3); // a session that never wrote
        }
        // Damage deep inside the old segment, far outside the tail window: the open does
        // not read it (so it stays fast for a long-lived workspace); verify finds it.
        let old = tmp.path().join("000001.jsonl");
        let text = std::fs::read_to_string(&old).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert!(text.len() as u64 > 2 * TAIL_WINDOW);
        lines[10] = lines[10].replace("\"i\":10", "\"i\":99");
        std::fs::write(&old, lines.join("\n") + "\n").unwrap();
        // A torn tail in the newest segment with events is still cut off.
        let newest = tmp.path().join("000002.jsonl");
        let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
        let torn = b"{\"seq\":3003,";
        f.write_all(torn).unwrap();
        drop(f);
        let (log, rec) = EventLog::open(tmp.path(), 3).unwrap();
        assert_eq!(rec.last_seq, 3002);
        assert_eq!(rec.truncated_bytes, torn.len() as u64);
        assert_eq!(log.append(draft(1)).await.unwrap().seq, 3003);
        assert_eq!(log.replay(3001).count(), 3);
        let broken = log.verify().unwrap_err();
        assert_eq!(broken.seq, 11, "{broken}");
    }

    #[tokio::test]
    async fn subscribers_see_durable_events_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(tmp.path(), 1).unwrap();
        let (mut rx, at) = log.subscribe();
        assert_eq!(at, 0);
        for i in 0..5 {
            log.append_nowait(draft(i));
        }
        for seq in 1..=5 {
            let e = rx.recv().await.unwrap();
            assert_eq!(e.seq, seq);
            assert!(log.durable_seq() >= seq);
        }
    }
}
