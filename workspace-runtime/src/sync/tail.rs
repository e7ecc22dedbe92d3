//! The event log's new lines, for shipping: a cursor (session file, byte offset) that
//! reads only what was appended since the last round — the raw lines, byte for byte —
//! instead of replaying the session from its start every round.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where shipping stands in the session files.
#[derive(Debug, Clone, Default)]
pub struct EventTail {
    file: Option<PathBuf>,
    offset: u64,
}

#[derive(Deserialize)]
struct Seq {
    seq: u64,
}

impl EventTail {
    /// A tail at the start of the log (its first read scans up to `from`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines of events `from..=until` from the session files in `dir`, and moves past
    /// them. Lines before `from` are skipped; nothing past `until` is consumed.
    ///
    /// # Errors
    /// When a file cannot be read, or the lines do not hold every seq asked for.
    pub fn read(&mut self, dir: &Path, from: u64, until: u64) -> std::io::Result<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        let start = match &self.file {
            Some(f) => files.iter().position(|x| x == f).unwrap_or_else(|| {
                self.offset = 0;
                0
            }),
            // A fresh tail (a new instance of a long-lived workspace) finds `from` by
            // reading a few lines, not by reading the log from its start.
            None => {
                let i = locate_file(&files, from)?;
                if let Some(file) = files.get(i) {
                    self.offset = locate_offset(file, from)?;
                    self.file = Some(file.clone());
                }
                i
            }
        };
        let (mut out, mut next) = (Vec::new(), from);
        'files: for file in &files[start..] {
            let offset = if self.file.as_ref() == Some(file) {
                self.offset
            } else {
                0
            };
            let mut f = std::fs::File::open(file)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            let mut consumed = 0;
            while let Some(nl) = buf[consumed..].iter().position(|b| *b == b'\n') {
                let line = &buf[consumed..consumed + nl];
                let seq = serde_json::from_slice::<Seq>(line)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", file.display())))?
                    .seq;
                if seq > until {
                    self.file = Some(file.clone());
                    self.offset = offset + consumed as u64;
                    break 'files;
                }
                if seq >= next {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                    next = seq + 1;
                }
                consumed += nl + 1;
            }
            self.file = Some(file.clone());
            self.offset = offset + consumed as u64;
        }
        if next != until + 1 {
            self.file = None; // start over with a scan next time
            return Err(std::io::Error::other(format!(
                "the event log holds seq {from}..{} of {from}..={until}",
                next.saturating_sub(1)
            )));
        }
        Ok(out)
    }
}

/// The seq on the line that starts at `at` in `f` (reading at most that line).
fn seq_at(f: &mut std::fs::File, at: u64) -> std::io::Result<Option<(u64, u64)>> {
    let mut reader = std::io::BufReader::new(&mut *f);
    reader.seek(SeekFrom::Start(at))?;
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut reader, b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    let seq = serde_json::from_slice::<Seq>(&line)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .seq;
    Ok(Some((seq, line.len() as u64)))
}

/// The index of the last session file whose first event is at or before `from`.
fn locate_file(files: &[PathBuf], from: u64) -> std::io::Result<usize> {
    let mut found = 0;
    for (i, file) in files.iter().enumerate() {
        match seq_at(&mut std::fs::File::open(file)?, 0)? {
            Some((first, _)) if first <= from => found = i,
            Some(_) => break,
            None => {}
        }
    }
    Ok(found)
}

/// A byte offset in `file` where a line starts whose seq is at or before `from` — close
/// to it, found by bisecting the file (a few small reads, whatever its size).
fn locate_offset(file: &Path, from: u64) -> std::io::Result<u64> {
    let mut f = std::fs::File::open(file)?;
    let (mut lo, mut hi) = (0u64, f.metadata()?.len());
    while hi - lo > 64 * 1024 {
        let mid = lo + (hi - lo) / 2;
        // The first line starting after `mid`.
        let mut reader = std::io::BufReader::new(&mut f);
        reader.seek(SeekFrom::Start(mid))?;
        let mut partial = Vec::new();
        let skipped = std::io::BufRead::read_until(&mut reader, b'\n', &mut partial)? as u64;
        let start = mid + skipped;
        match seq_at(&mut f, start)? {
            Some((seq, _)) if seq < from => lo = start,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventDraft, EventLog, EventType};

    fn seqs(lines: &[u8]) -> Vec<u64> {
        lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<Event>(l).unwrap().seq)
            .collect()
    }

    #[tokio::test]
    async fn the_tail_reads_only_new_lines_across_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path(), 1).unwrap();
        let append = |n: usize| {
            let log = log.clone();
            async move {
                for i in 0..n {
                    log.append(EventDraft::new(
                        "t",
                        EventType::Checkpoint,
                        serde_json::json!({"i": i}),
                    ))
                    .await
                    .unwrap();
                }
            }
        };
        append(5).await;
        let mut tail = EventTail::new();
        assert_eq!(
            seqs(&tail.read(dir.path(), 3, 5).unwrap()),
            [3, 4, 5],
            "a first read scans up to `from`"
        );
        append(3).await;
        assert_eq!(
            seqs(&tail.read(dir.path(), 6, 7).unwrap()),
            [6, 7],
            "nothing past `until`"
        );
        log.set_session(2);
        append(2).await;
        let lines = tail.read(dir.path(), 8, 10).unwrap();
        assert_eq!(seqs(&lines), [8, 9, 10], "on into the next session's file");
        // Byte for byte what the log holds.
        let on_disk = std::fs::read_to_string(dir.path().join("000002.jsonl")).unwrap();
        assert!(String::from_utf8(lines).unwrap().ends_with(&on_disk));
        assert!(
            tail.read(dir.path(), 11, 12).is_err(),
            "seqs the log does not hold"
        );
    }

    #[tokio::test]
    async fn a_fresh_tail_finds_its_place_in_a_long_log_by_bisection() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = EventLog::open(dir.path(), 1).unwrap();
        let mut last = None;
        for session in 1..=3u64 {
            log.set_session(session);
            for i in 0..8000 {
                log.append_nowait(EventDraft::new(
                    "t",
                    EventType::AgentMessage,
                    serde_json::json!({"i": i, "pad": "x".repeat(100)}),
                ));
            }
            last = Some(
                log.append(EventDraft::new(
                    "t",
                    EventType::Checkpoint,
                    serde_json::json!({}),
                ))
                .await
                .unwrap()
                .seq,
            );
        }
        let last = last.unwrap();
        assert!(
            std::fs::metadata(dir.path().join("000001.jsonl"))
                .unwrap()
                .len()
                > 512 * 1024
        );
        for from in [
            1, 2, 4000, 8000, 8001, 8002, 12_345, 16_002, 16_003, 20_000, last,
        ] {
            let until = (from + 50).min(last);
            let got = seqs(&EventTail::new().read(dir.path(), from, until).unwrap());
            assert_eq!(got, (from..=until).collect::<Vec<_>>(), "from {from}");
        }
    }
}
