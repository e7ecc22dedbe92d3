//! The round object: everything one sync round ships, in one object — the committed pages
//! of all six databases (each changed page once) and the event log's new lines — so a
//! busy round writes two objects, this one and the manifest that makes it visible, and the
//! bucket holds one consistent point across the databases and the log.
//!
//! Layout: the line `CODITECT-ROUND 1`, one JSON line (the [`Header`]: each database's
//! part, the event range, the compressed length of each section), then the WAL section and
//! the events section, each one zstd frame. The WAL section is the pages as
//! [`super::segment`] lays them out. The events section is the lines without `prev` and
//! `hash`: both follow from the lines before them (each hash is the SHA-256 of the event's
//! canonical form with the hash before it), so they are recomputed on decoding and checked
//! against the header's `head`, the hash of the last event. That keeps the chain's proof
//! while the 32 incompressible bytes of each hash, most of a compressed line, stay home.
//!
//! Folded event segments (compaction) are round objects with no WAL section. Objects of the
//! formats before (a `CODITECT-WAL` batch, plain JSONL segments) are still read.

use serde::{Deserialize, Serialize};

use super::segment::Part;
use super::wal::Frames;
use crate::events::{Event, EventType};

const MAGIC: &str = "CODITECT-ROUND 1\n";

/// zstd's level: 3, its default, is ~10× LZ4's ratio on event JSON at a fraction of a
/// round's time.
const LEVEL: i32 = 3;

/// What a round object holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    /// Each database's part of the WAL section.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    wal: Vec<Part>,
    /// Compressed bytes of the WAL section (0: none).
    wal_len: usize,
    /// The events section, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<EventsHeader>,
}

/// The events section's range and chain anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsHeader {
    /// The first event's seq.
    pub first: u64,
    /// The last event's seq.
    pub last: u64,
    /// The hash before the first event (its `prev`).
    pub prev: String,
    /// The last event's hash.
    pub head: String,
    /// Compressed bytes of the section.
    len: usize,
    /// The section holds the lines as they are, hashes and all: lines whose hashes do not
    /// follow from their content (a log damaged on disk) are shipped as they are, never
    /// "repaired" by a recomputation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
}

/// An event as the events section holds it: everything but `prev` and `hash`.
#[derive(Serialize)]
struct Bare<'a> {
    seq: u64,
    ts: &'a str,
    session: u64,
    agent: &'a str,
    #[serde(rename = "type")]
    kind: &'a EventType,
    data: &'a serde_json::Value,
}

/// [`Bare`], read back.
#[derive(Deserialize)]
struct BareOwned {
    seq: u64,
    ts: String,
    session: u64,
    agent: String,
    #[serde(rename = "type")]
    kind: EventType,
    data: serde_json::Value,
}

fn compress(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    zstd::bulk::compress(data, LEVEL).map_err(|e| format!("compress: {e}"))
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, String> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    zstd::stream::decode_all(data).map_err(|e| format!("corrupt section: {e}"))
}

/// Encodes a round: the pages of each database (may be empty) and the event log's lines
/// of seqs `first..=last` (JSONL as the log holds them), if any.
///
/// # Errors
/// Only when compression fails: lines that are not events, or that do not chain, are
/// shipped as they are (`raw`).
pub fn encode(
    wal: &[(String, Frames)],
    events: Option<(u64, u64, &[u8])>,
) -> Result<Vec<u8>, String> {
    let wal_section = compress(&super::segment::body(wal))?;
    let (header, events_section) = match events {
        None => (None, Vec::new()),
        Some((first, last, lines)) => {
            let (bare, prev, head) = match strip(lines) {
                Some((bare, prev, head)) => (Some(bare), prev, head),
                None => (None, String::new(), String::new()),
            };
            let section = compress(bare.as_deref().unwrap_or(lines))?;
            let h = EventsHeader {
                first,
                last,
                prev,
                head,
                len: section.len(),
                raw: bare.is_none(),
            };
            (Some(h), section)
        }
    };
    let header = Header {
        wal: super::segment::header(wal),
        wal_len: wal_section.len(),
        events: header,
    };
    let mut out = MAGIC.as_bytes().to_vec();
    out.extend(serde_json::to_vec(&header).map_err(|e| e.to_string())?);
    out.push(b'\n');
    out.extend(wal_section);
    out.extend(events_section);
    Ok(out)
}

/// The lines without `prev` and `hash`, with the hash before the first and the last one;
/// `None` unless every line is an event whose hash follows from its content and the one
/// before, and whose line is exactly what the log writes for it (so decoding gives the
/// same bytes).
fn strip(lines: &[u8]) -> Option<(Vec<u8>, String, String)> {
    let mut bare = Vec::with_capacity(lines.len() / 2);
    let (mut first_prev, mut prev) = (None, None::<String>);
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let e: Event = serde_json::from_slice(line).ok()?;
        let chained = prev.as_ref().is_none_or(|p| *p == e.prev);
        let exact = serde_json::to_vec(&e).ok()? == line;
        if !chained || !exact || e.compute_hash() != e.hash {
            return None;
        }
        first_prev.get_or_insert_with(|| e.prev.clone());
        let b = Bare {
            seq: e.seq,
            ts: &e.ts,
            session: e.session,
            agent: &e.agent,
            kind: &e.kind,
            data: &e.data,
        };
        serde_json::to_writer(&mut bare, &b).ok()?;
        bare.push(b'\n');
        prev = Some(e.hash);
    }
    Some((bare, first_prev?, prev?))
}

/// A round object's header, its WAL section and its events section.
type Sections<'a> = (Header, &'a [u8], &'a [u8]);

/// The header and the two sections of a round object.
fn parts(bytes: &[u8]) -> Result<Option<Sections<'_>>, String> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_bytes()) else {
        return Ok(None);
    };
    let nl = rest.iter().position(|b| *b == b'\n').ok_or("no header")?;
    let header: Header = serde_json::from_slice(&rest[..nl]).map_err(|e| e.to_string())?;
    let body = &rest[nl + 1..];
    let events_len = header.events.as_ref().map_or(0, |e| e.len);
    if body.len() != header.wal_len + events_len {
        return Err(format!(
            "{} bytes after the header, {} expected",
            body.len(),
            header.wal_len + events_len
        ));
    }
    let (wal, events) = body.split_at(header.wal_len);
    Ok(Some((header, wal, events)))
}

/// The WAL pages of a round object (or of a WAL batch of an earlier format).
///
/// # Errors
/// When the bytes are neither.
pub fn decode_wal(bytes: &[u8]) -> Result<Vec<(String, Frames)>, String> {
    match parts(bytes)? {
        Some((header, wal, _)) => super::segment::split(header.wal, &inflate(wal)?),
        None => super::segment::decode(bytes),
    }
}

/// The event lines of a round object, `prev` and `hash` recomputed and the last checked
/// against the header's head, as the log held them (byte for byte); with the section's
/// anchors. Plain JSONL (the segments of an earlier format) comes back as it is, with no
/// anchors.
///
/// # Errors
/// When the section does not decode, or its chain does not end at its head.
pub fn decode_events(bytes: &[u8]) -> Result<(Vec<u8>, Option<EventsHeader>), String> {
    let Some((header, _, section)) = parts(bytes)? else {
        return Ok((bytes.to_vec(), None));
    };
    let Some(anchors) = header.events else {
        return Ok((Vec::new(), None));
    };
    let bare = inflate(section)?;
    if anchors.raw {
        return Ok((bare, Some(anchors)));
    }
    let mut out = Vec::with_capacity(bare.len() * 2);
    let mut prev = anchors.prev.clone();
    let mut next = anchors.first;
    for line in bare.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let b: BareOwned =
            serde_json::from_slice(line).map_err(|e| format!("not an event: {e}"))?;
        if b.seq != next {
            return Err(format!("event {} where {next} was expected", b.seq));
        }
        let mut e = Event {
            seq: b.seq,
            ts: b.ts,
            session: b.session,
            agent: b.agent,
            kind: b.kind,
            data: b.data,
            prev,
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        serde_json::to_writer(&mut out, &e).map_err(|e| e.to_string())?;
        out.push(b'\n');
        prev = e.hash;
        next += 1;
    }
    if next != anchors.last + 1 || prev != anchors.head {
        return Err(format!(
            "the events do not end at the head the object names (seq {}, {})",
            anchors.last, anchors.head
        ));
    }
    Ok((out, Some(anchors)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::events::{EventDraft, EventLog};

    async fn log_lines(n: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path(), 1).unwrap();
        for i in 0..n {
            log.append(EventDraft::new(
                if i % 2 == 0 { "alpha" } else { "beta" },
                EventType::AgentMessage,
                serde_json::json!({"i": i, "text": "héllo \"wörld\"\n", "f": 0.1 + i as f64}),
            ))
            .await
            .unwrap();
        }
        std::fs::read(dir.path().join("000001.jsonl")).unwrap()
    }

    fn pages() -> Vec<(String, Frames)> {
        let mut page = vec![0u8; 4096];
        page[..100].fill(7);
        vec![(
            "sessions".into(),
            Frames {
                page_size: 4096,
                pages: vec![(1, page.clone()), (3, page)],
                db_pages: 3,
            },
        )]
    }

    #[tokio::test]
    async fn a_round_gives_back_its_pages_and_its_lines_byte_for_byte() {
        let lines = log_lines(200).await;
        let bytes = encode(&pages(), Some((1, 200, &lines))).unwrap();
        assert_eq!(decode_wal(&bytes).unwrap(), pages());
        let (back, anchors) = decode_events(&bytes).unwrap();
        assert_eq!(back, lines, "the log's lines, hashes recomputed");
        let anchors = anchors.unwrap();
        assert_eq!((anchors.first, anchors.last), (1, 200));
        assert!(
            bytes.len() * 5 < lines.len(),
            "{} bytes for {} bytes of lines",
            bytes.len(),
            lines.len()
        );
    }

    #[tokio::test]
    async fn either_section_may_be_empty() {
        let lines = log_lines(3).await;
        let events_only = encode(&[], Some((1, 3, &lines))).unwrap();
        assert!(decode_wal(&events_only).unwrap().is_empty());
        assert_eq!(decode_events(&events_only).unwrap().0, lines);
        let wal_only = encode(&pages(), None).unwrap();
        assert_eq!(decode_wal(&wal_only).unwrap(), pages());
        assert_eq!(decode_events(&wal_only).unwrap(), (Vec::new(), None));
    }

    #[tokio::test]
    async fn a_damaged_log_ships_as_it_is_and_a_wrong_head_is_refused() {
        let lines = log_lines(5).await;
        // An edited line still carries its old hash: it ships byte for byte, not repaired.
        let text = String::from_utf8(lines.clone())
            .unwrap()
            .replace("\"i\":2", "\"i\":9");
        let bytes = encode(&[], Some((1, 5, text.as_bytes()))).unwrap();
        assert_eq!(decode_events(&bytes).unwrap().0, text.as_bytes());
        // A head that the recomputed chain does not reach is refused.
        let bytes = encode(&[], Some((1, 5, &lines))).unwrap();
        let (_, anchors) = decode_events(&bytes).unwrap();
        let head = anchors.unwrap().head.into_bytes();
        let at = bytes.windows(64).position(|w| w == head).unwrap();
        let mut forged = bytes.clone();
        forged[at..at + 64].fill(b'0');
        assert!(decode_events(&forged).is_err());
    }

    #[test]
    fn plain_jsonl_and_old_batches_are_still_read() {
        let plain = b"{\"seq\":1}\n".to_vec();
        assert_eq!(decode_events(&plain).unwrap(), (plain, None));
        let old = super::super::segment::encode(&pages());
        assert_eq!(decode_wal(&old).unwrap(), pages());
    }

    #[tokio::test]
    async fn a_truncated_round_is_refused() {
        let bytes = encode(&pages(), Some((1, 3, &log_lines(3).await))).unwrap();
        assert!(decode_wal(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_events(&bytes[..bytes.len() - 1]).is_err());
    }
}
