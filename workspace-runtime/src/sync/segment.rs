//! The WAL batch object: the committed frames of all six databases cut in one sync round,
//! so the bucket holds one consistent point across them. Layout: the line
//! `CODITECT-WAL 1`, one JSON line describing each database's part (name, page size, size
//! in pages after the last commit, page count), then each part's pages as a 4-byte
//! big-endian page number followed by the page.

use serde::{Deserialize, Serialize};

use super::wal::Frames;

const MAGIC: &str = "CODITECT-WAL 1\n";

#[derive(Debug, Serialize, Deserialize)]
struct Part {
    db: String,
    page_size: u32,
    db_pages: u32,
    pages: usize,
}

/// Encodes the frames of each database.
pub fn encode(parts: &[(String, Frames)]) -> Vec<u8> {
    let header: Vec<Part> = parts
        .iter()
        .map(|(db, f)| Part {
            db: db.clone(),
            page_size: f.page_size,
            db_pages: f.db_pages,
            pages: f.pages.len(),
        })
        .collect();
    let mut out = MAGIC.as_bytes().to_vec();
    out.extend(serde_json::to_vec(&header).unwrap_or_default());
    out.push(b'\n');
    for (_, f) in parts {
        for (pgno, page) in &f.pages {
            out.extend(pgno.to_be_bytes());
            out.extend(page);
        }
    }
    out
}

/// Decodes a batch.
///
/// # Errors
/// When the bytes are not a batch.
pub fn decode(bytes: &[u8]) -> Result<Vec<(String, Frames)>, String> {
    let rest = bytes
        .strip_prefix(MAGIC.as_bytes())
        .ok_or("not a WAL batch")?;
    let nl = rest.iter().position(|b| *b == b'\n').ok_or("no header")?;
    let header: Vec<Part> = serde_json::from_slice(&rest[..nl]).map_err(|e| e.to_string())?;
    let mut body = &rest[nl + 1..];
    let mut out = Vec::new();
    for part in header {
        let mut pages = Vec::with_capacity(part.pages);
        let len = 4 + part.page_size as usize;
        for _ in 0..part.pages {
            if body.len() < len {
                return Err("truncated batch".into());
            }
            let pgno = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            pages.push((pgno, body[4..len].to_vec()));
            body = &body[len..];
        }
        out.push((
            part.db,
            Frames {
                page_size: part.page_size,
                pages,
                db_pages: part.db_pages,
            },
        ));
    }
    if !body.is_empty() {
        return Err("trailing bytes after the batch".into());
    }
    Ok(out)
}
