//! SQLite WAL shipping, the Litestream pattern in Rust: the runtime turns SQLite's own
//! checkpoints off and checkpoints only after it has read every committed frame, so each
//! change passes through the WAL file where a [`WalCursor`] picks it up. A cursor reads
//! the frames appended since its last read, checks each against the WAL's salts and
//! running checksum (the same checks SQLite makes on recovery), and returns only whole
//! transactions: frames up to the last commit frame. Restoring is applying those pages to
//! a snapshot ([`apply`]): writing each page at its offset and setting the file's size to
//! the last commit's page count — what a checkpoint does.
//!
//! WAL format (sqlite.org/fileformat2.html#walformat): a 32-byte header (magic, version,
//! page size, checkpoint sequence, two salts, two checksum words), then frames of a 24-byte
//! header (page number, database size in pages for a commit frame else 0, the salts, two
//! cumulative checksum words) and one page.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;

/// Committed pages read from a WAL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frames {
    /// The database's page size.
    pub page_size: u32,
    /// Pages, each once (its last committed version), in page order.
    pub pages: Vec<(u32, Vec<u8>)>,
    /// The database's size in pages after the last commit.
    pub db_pages: u32,
}

impl Frames {
    /// Keeps the last committed version of each page, in page order, and drops pages past
    /// the database's end (a restore truncates them anyway): a batch ships each page once
    /// however often its transactions rewrote it. Applying the result gives the same file
    /// as applying every frame in order.
    pub fn once_per_page(&mut self) {
        let mut last: std::collections::BTreeMap<u32, Vec<u8>> = std::collections::BTreeMap::new();
        for (pgno, page) in self.pages.drain(..) {
            if pgno <= self.db_pages {
                last.insert(pgno, page);
            }
        }
        self.pages = last.into_iter().collect();
    }
}

/// Where shipping stands in one database's WAL.
#[derive(Debug, Clone, Default)]
pub struct WalCursor {
    /// Bytes of the WAL already read (0: start from the header).
    offset: u64,
    salt: Option<(u32, u32)>,
    checksum: (u32, u32),
    big_endian: bool,
    page_size: u32,
}

fn be(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
fn checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s0, mut s1) = s;
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

impl WalCursor {
    /// A cursor at the start of a WAL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the WAL file has grown past what the cursor read (a cheap check).
    pub fn behind(&self, wal: &Path) -> bool {
        let len = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
        len > self.offset.max(HEADER) || (len > 0 && self.offset == 0)
    }

    /// The WAL was checkpointed and truncated: start over at its next header.
    pub fn reset(&mut self) {
        *self = WalCursor::default();
    }

    /// Reads the transactions committed since the last read. Call it while no write
    /// transaction can run (the runtime holds the database's writer).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read(&mut self, wal: &Path) -> std::io::Result<Frames> {
        let mut file = match File::open(wal) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.reset();
                return Ok(Frames::default());
            }
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < HEADER {
            self.reset();
            return Ok(Frames::default());
        }
        let mut header = [0u8; HEADER as usize];
        file.read_exact(&mut header)?;
        let magic = be(&header, 0);
        if magic & !1 != 0x377f_0682 {
            return Err(std::io::Error::other(format!(
                "{}: not a WAL file",
                wal.display()
            )));
        }
        let salt = (be(&header, 16), be(&header, 20));
        if self.salt != Some(salt) || self.offset < HEADER {
            // A new WAL (first read, or restarted after a checkpoint): start at its first frame.
            self.big_endian = magic & 1 == 1;
            self.page_size = be(&header, 8);
            let start = checksum(self.big_endian, &header[..24], (0, 0));
            if start != (be(&header, 24), be(&header, 28)) {
                return Ok(Frames::default()); // a header being written; read it next time
            }
            self.salt = Some(salt);
            self.checksum = start;
            self.offset = HEADER;
        }
        let frame_len = FRAME_HEADER + u64::from(self.page_size);
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(self.offset))?;
        file.take(len.saturating_sub(self.offset))
            .read_to_end(&mut buf)?;
        let mut out = Frames {
            page_size: self.page_size,
            ..Frames::default()
        };
        let start = self.offset;
        let (mut pending, mut at, mut sum) = (Vec::new(), 0usize, self.checksum);
        while (at as u64) + frame_len <= buf.len() as u64 {
            let frame = &buf[at..at + frame_len as usize];
            if (be(frame, 8), be(frame, 12)) != salt {
                break; // a frame of an earlier WAL generation: the end of this one
            }
            sum = checksum(self.big_endian, &frame[..8], sum);
            sum = checksum(self.big_endian, &frame[FRAME_HEADER as usize..], sum);
            if sum != (be(frame, 16), be(frame, 20)) {
                break; // torn or stale: the end of the valid log
            }
            pending.push((be(frame, 0), frame[FRAME_HEADER as usize..].to_vec()));
            at += frame_len as usize;
            let commit = be(frame, 4);
            if commit != 0 {
                out.pages.append(&mut pending);
                out.db_pages = commit;
                self.offset = start + at as u64;
                self.checksum = sum;
            }
        }
        out.once_per_page();
        Ok(out)
    }
}

/// Applies committed `frames` to the database file at `db` (a snapshot, then each shipped
/// batch in order).
///
/// # Errors
/// When the file cannot be written.
pub fn apply(db: &Path, frames: &Frames) -> std::io::Result<()> {
    if frames.pages.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new().write(true).open(db)?;
    let page = u64::from(frames.page_size);
    for (pgno, data) in &frames.pages {
        file.seek(SeekFrom::Start((u64::from(*pgno) - 1) * page))?;
        file.write_all(data)?;
    }
    file.set_len(u64::from(frames.db_pages) * page)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn writer(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "NORMAL").unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c
    }

    fn rows(path: &Path) -> Vec<(i64, String)> {
        let c = Connection::open(path).unwrap();
        let mut s = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// A snapshot plus the shipped frames rebuild the database exactly, across a
    /// checkpoint that restarts the WAL.
    #[test]
    fn a_snapshot_and_the_shipped_frames_rebuild_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (live, copy) = (dir.path().join("live.db"), dir.path().join("copy.db"));
        let wal = dir.path().join("live.db-wal");
        let c = writer(&live);
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        // The snapshot: the database with an empty WAL.
        {
            let mut dst = Connection::open(&copy).unwrap();
            rusqlite::backup::Backup::new(&c, &mut dst)
                .unwrap()
                .run_to_completion(64, std::time::Duration::ZERO, None)
                .unwrap();
        }
        let mut cursor = WalCursor::new();
        let mut shipped = Vec::new();
        for round in 0..4 {
            for i in 0..50 {
                c.execute(
                    "INSERT INTO t (v) VALUES (?1)",
                    [format!("r{round}-{i}-{}", "x".repeat(200))],
                )
                .unwrap();
            }
            c.execute("UPDATE t SET v = 'changed' WHERE id % 7 = 0", [])
                .unwrap();
            assert!(cursor.behind(&wal));
            let frames = cursor.read(&wal).unwrap();
            assert!(!frames.pages.is_empty());
            assert!(cursor.read(&wal).unwrap().pages.is_empty(), "nothing twice");
            shipped.push(frames);
            if round == 1 {
                // The runtime's own checkpoint, after reading everything: the WAL restarts.
                c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
                cursor.reset();
            }
        }
        c.execute("DELETE FROM t WHERE id > 150", []).unwrap();
        shipped.push(cursor.read(&wal).unwrap());
        for frames in &shipped {
            apply(&copy, frames).unwrap();
        }
        let check: String = Connection::open(&copy)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert_eq!(rows(&copy), rows(&live));
        assert_eq!(rows(&copy).len(), 150);
    }

    /// A busy round rewrites the same pages hundreds of times; its batch holds each once,
    /// and the copy it rebuilds is the live database.
    #[test]
    fn a_busy_rounds_batch_holds_each_page_once() {
        let dir = tempfile::tempdir().unwrap();
        let (live, copy) = (dir.path().join("live.db"), dir.path().join("copy.db"));
        let wal = dir.path().join("live.db-wal");
        let c = writer(&live);
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('0');",
        )
        .unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        std::fs::copy(&live, &copy).unwrap();
        let mut cursor = WalCursor::new();
        for i in 0..500 {
            c.execute("UPDATE t SET v = ?1 WHERE id = 1", [format!("{i}")])
                .unwrap();
        }
        let frames_in_wal =
            (std::fs::metadata(&wal).unwrap().len() - HEADER) / (FRAME_HEADER + 4096);
        let batch = cursor.read(&wal).unwrap();
        let mut pages: Vec<u32> = batch.pages.iter().map(|(p, _)| *p).collect();
        pages.dedup();
        assert_eq!(pages.len(), batch.pages.len(), "each page once");
        assert!(frames_in_wal > 400, "{frames_in_wal} frames written");
        assert!(
            batch.pages.len() <= 2,
            "{} pages shipped",
            batch.pages.len()
        );
        apply(&copy, &batch).unwrap();
        assert_eq!(rows(&copy), rows(&live));
    }

    #[test]
    fn an_uncommitted_or_torn_tail_is_not_shipped() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let wal = dir.path().join("live.db-wal");
        let c = writer(&live);
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a');",
        )
        .unwrap();
        let mut cursor = WalCursor::new();
        let first = cursor.read(&wal).unwrap();
        assert!(first.db_pages > 0);
        // Garbage appended after the last commit (a torn write) is not a frame.
        let len = std::fs::metadata(&wal).unwrap().len();
        let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
        f.write_all(&vec![0xAB; 24 + first.page_size as usize])
            .unwrap();
        assert!(cursor.read(&wal).unwrap().pages.is_empty());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&wal)
            .unwrap()
            .set_len(len)
            .unwrap();
        c.execute("INSERT INTO t (v) VALUES ('b')", []).unwrap();
        assert!(
            !cursor.read(&wal).unwrap().pages.is_empty(),
            "the next commit is read"
        );
    }
}
