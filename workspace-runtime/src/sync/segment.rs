//! The WAL batch object: the committed pages of all six databases cut in one sync round
//! (each changed page once, its last committed version), so the bucket holds one
//! consistent point across them. Layout: the line `CODITECT-WAL 2`, one JSON line
//! describing each database's part (name, page size, size in pages after the last commit,
//! page count), then the LZ4 block (its uncompressed size first, 4 bytes little-endian) of
//! each part's pages as a 4-byte big-endian page number followed by the page. Version 1,
//! the same without compression, is still read.

use serde::{Deserialize, Serialize};

use super::wal::Frames;

const MAGIC: &str = "CODITECT-WAL 2\n";
const MAGIC_V1: &str = "CODITECT-WAL 1\n";

/// One database's part of a batch: what its pages are.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Part {
    db: String,
    page_size: u32,
    db_pages: u32,
    pages: usize,
}

/// The header line's parts.
pub(super) fn header(parts: &[(String, Frames)]) -> Vec<Part> {
    parts
        .iter()
        .map(|(db, f)| Part {
            db: db.clone(),
            page_size: f.page_size,
            db_pages: f.db_pages,
            pages: f.pages.len(),
        })
        .collect()
}

/// The pages of each part, each as its 4-byte big-endian number and its bytes.
pub(super) fn body(parts: &[(String, Frames)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (_, f) in parts {
        for (pgno, page) in &f.pages {
            body.extend(pgno.to_be_bytes());
            body.extend(page);
        }
    }
    body
}

/// Encodes the frames of each database.
pub fn encode(parts: &[(String, Frames)]) -> Vec<u8> {
    let header = header(parts);
    let body = body(parts);
    let mut out = MAGIC.as_bytes().to_vec();
    out.extend(serde_json::to_vec(&header).unwrap_or_default());
    out.push(b'\n');
    out.extend(lz4_flex::block::compress_prepend_size(&body));
    out
}

/// Decodes a batch.
///
/// # Errors
/// When the bytes are not a batch.
pub fn decode(bytes: &[u8]) -> Result<Vec<(String, Frames)>, String> {
    let (rest, compressed) = match bytes.strip_prefix(MAGIC.as_bytes()) {
        Some(rest) => (rest, true),
        None => (
            bytes
                .strip_prefix(MAGIC_V1.as_bytes())
                .ok_or("not a WAL batch")?,
            false,
        ),
    };
    let nl = rest.iter().position(|b| *b == b'\n').ok_or("no header")?;
    let header: Vec<Part> = serde_json::from_slice(&rest[..nl]).map_err(|e| e.to_string())?;
    let inflated;
    let mut body = &rest[nl + 1..];
    if compressed {
        inflated = lz4_flex::block::decompress_size_prepended(body)
            .map_err(|e| format!("corrupt batch: {e}"))?;
        body = &inflated;
    }
    split(header, body)
}

/// Cuts a body back into each part's pages, as its header describes them.
pub(super) fn split(header: Vec<Part>, mut body: &[u8]) -> Result<Vec<(String, Frames)>, String> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parts() -> Vec<(String, Frames)> {
        let page = |b: u8| {
            let mut p = vec![0u8; 4096];
            p[..64].fill(b);
            p
        };
        vec![
            (
                "sessions".into(),
                Frames {
                    page_size: 4096,
                    pages: vec![(1, page(1)), (7, page(7))],
                    db_pages: 7,
                },
            ),
            ("messages".into(), Frames::default()),
        ]
    }

    #[test]
    fn a_batch_round_trips_compressed() {
        let bytes = encode(&parts());
        assert!(bytes.starts_with(MAGIC.as_bytes()));
        assert!(
            bytes.len() < 2 * 4096 / 4,
            "{} bytes for two mostly empty pages",
            bytes.len()
        );
        assert_eq!(decode(&bytes).unwrap(), parts());
    }

    #[test]
    fn a_version_one_batch_is_still_read() {
        let p = parts();
        let mut v1 = MAGIC_V1.as_bytes().to_vec();
        v1.extend(serde_json::to_vec(&header(&p)).unwrap());
        v1.push(b'\n');
        for (_, f) in &p {
            for (pgno, page) in &f.pages {
                v1.extend(pgno.to_be_bytes());
                v1.extend(page);
            }
        }
        assert_eq!(decode(&v1).unwrap(), p);
    }

    #[test]
    fn a_damaged_batch_is_refused() {
        let mut bytes = encode(&parts());
        let n = bytes.len();
        bytes.truncate(n - 10);
        assert!(decode(&bytes).is_err());
    }
}
