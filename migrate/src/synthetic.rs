//! A synthetic v1 export, for tests and benchmarks only (feature `testkit`; no user-facing
//! command writes one). Each user has the four sandboxes with what real trees hold and
//! what a migration must carry byte for byte: a file all four agree on, one two of them
//! disagree on, a binary file, an empty file, a unicode name, a deep tree, transcripts.

use std::path::Path;

use serde_json::json;

/// What [`write`] made, to check a migration against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Users.
    pub users: usize,
    /// Files per user after the merge (one conflict keeps one extra file).
    pub files_per_user: usize,
    /// Transcript lines per user.
    pub lines_per_user: usize,
}

/// The unicode-named file every user has.
pub const UNICODE_PATH: &str = "docs/ünïcødé 文件.md";
/// The deep file every user has.
pub const DEEP_PATH: &str = "a/b/c/d/e/f/g/h/i/j/deep.txt";
/// The binary file (every byte value) every user has.
pub const BINARY_PATH: &str = "assets/all-bytes.bin";

fn put(root: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = root.join(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)
}

/// Writes an export of `users` users under `root` (a folder: `file://{root}`).
///
/// # Errors
/// The folder cannot be written.
pub fn write(root: &Path, users: usize) -> std::io::Result<Written> {
    let mut list = String::new();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    for n in 0..users {
        let id = format!("u{n:05}");
        let login = format!("user{n}");
        list.push_str(
            &json!({"id": id, "login": login, "email": format!("{login}@example.com"), "org": "acme", "team": "platform", "createdAt": "2025-01-01T00:00:00Z"})
                .to_string(),
        );
        list.push('\n');
        for (i, agent) in crate::export::AGENTS.iter().enumerate() {
            let sb = format!("sb-{agent}");
            let base = format!("users/{id}/sandboxes/{sb}");
            let active = format!("2026-06-01T1{i}:00:00Z");
            put(
                root,
                &format!("{base}/meta.json"),
                json!({"sandbox": sb, "agent": agent, "createdAt": "2026-06-01T08:00:00Z", "lastActiveAt": active, "expiredAt": if i == 3 { json!(null) } else { json!(active) }})
                    .to_string()
                    .as_bytes(),
            )?;
            let files = format!("{base}/files");
            put(
                root,
                &format!("{files}/README.md"),
                format!("# {login}\n").as_bytes(),
            )?;
            match *agent {
                "claude" | "gemini" => put(
                    root,
                    &format!("{files}/src/main.rs"),
                    format!("fn main() {{ println!(\"{agent}\"); }}\n").as_bytes(),
                )?,
                "codex" => put(root, &format!("{files}/{BINARY_PATH}"), &all_bytes)?,
                _ => {
                    put(root, &format!("{files}/.keep"), b"")?;
                    put(
                        root,
                        &format!("{files}/{UNICODE_PATH}"),
                        "héllo wörld 你好\n".as_bytes(),
                    )?;
                    put(root, &format!("{files}/{DEEP_PATH}"), b"deep\n")?;
                }
            }
            let mut transcript = String::new();
            for (k, (role, text)) in [
                ("user", "please fix it"),
                ("assistant", "on it"),
                ("tool", "wrote src/main.rs"),
            ]
            .iter()
            .enumerate()
            {
                let mut line =
                    json!({"ts": format!("2026-06-01T1{i}:0{k}:00Z"), "role": role, "text": text});
                if *role == "tool" {
                    line["tool"] = json!("write_file");
                    line["path"] = json!("src/main.rs");
                }
                transcript.push_str(&line.to_string());
                transcript.push('\n');
            }
            put(
                root,
                &format!("{base}/transcript.jsonl"),
                transcript.as_bytes(),
            )?;
        }
    }
    put(root, "users.jsonl", list.as_bytes())?;
    Ok(Written {
        users,
        // README, src/main.rs, its kept copy, the binary, .keep, the unicode file, the deep one.
        files_per_user: 7,
        lines_per_user: 12,
    })
}

/// A Migration of the export under `root`, with `extra` spec lines (indented two spaces,
/// under `spec:`), as a test writes it.
///
/// # Panics
/// When the manifest does not read (a broken test).
#[allow(clippy::expect_used)] // test support: a panic is the failure report
pub fn migration(root: &Path, extra: &str) -> crate::spec::Migration {
    let text = format!(
        "apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {{name: v1}}\nspec:\n  source: {{export: 'file://{}'}}\n{extra}",
        root.display()
    );
    crate::spec::parse("migration.yaml", &text).expect("a Migration")
}
