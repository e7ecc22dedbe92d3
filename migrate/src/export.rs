//! The v1 export: what a v1 deployment persists, in a bucket (`gs://…`) or a folder
//! (`file://…`), which v1 keeps rewriting while its users work. The layout (the contract a
//! v1 deployment fills, documented in the README):
//!
//! ```text
//! users.jsonl                                   {"id","login","email","org","team","createdAt"} a line
//! users/{id}/sandboxes/{sandbox}/meta.json      {"sandbox","agent","createdAt","lastActiveAt","expiredAt"|null}
//! users/{id}/sandboxes/{sandbox}/files/**       the sandbox's working tree
//! users/{id}/sandboxes/{sandbox}/transcript.jsonl  {"ts","role","text","tool"?,"path"?} a line
//! ```
//!
//! Reading never stops at the first bad line: each problem is kept with its object and
//! line, and the rest is read.

use std::collections::BTreeMap;

use bytes::Bytes;
use coditect_runtime::sync::Bucket;
use serde::{Deserialize, Serialize};

use crate::error::{MigrateError, Problem};

/// The v1 agents, one sandbox each.
pub const AGENTS: [&str; 4] = ["claude", "gemini", "codex", "kimi"];

/// One v1 user, from `users.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct V1User {
    /// v1's id (the folder under `users/`).
    pub id: String,
    /// The login: the v2 workspace's owner and, by default, its name.
    pub login: String,
    /// Their email.
    pub email: String,
    /// Their organization in v1.
    pub org: String,
    /// Their team in v1.
    pub team: String,
    /// When v1 made them (RFC 3339).
    pub created_at: String,
}

/// A sandbox's `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxMeta {
    /// Its id (the folder).
    pub sandbox: String,
    /// Which agent ran in it.
    pub agent: String,
    /// When it was made.
    pub created_at: String,
    /// When it was last active: the newest wins a merge conflict.
    pub last_active_at: String,
    /// When it expired (v1's 30-minute timeout), if it did.
    #[serde(default)]
    pub expired_at: Option<String>,
}

/// One file of a sandbox's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1File {
    /// Its path in the tree (`src/main.rs`).
    pub path: String,
    /// The object it is stored as.
    pub object: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One sandbox of a user: its meta, its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// `meta.json`.
    pub meta: SandboxMeta,
    /// The tree, by path.
    pub files: Vec<V1File>,
    /// Whether it has a transcript.
    pub has_transcript: bool,
}

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptLine {
    /// When (RFC 3339): kept as the imported event's time.
    pub ts: String,
    /// `user`, `assistant` or `tool`.
    pub role: String,
    /// What was said, or the tool's output.
    pub text: String,
    /// The tool, for `role: tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The file it concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A v1 export, opened.
#[derive(Debug, Clone)]
pub struct V1Export {
    url: String,
    bucket: Bucket,
}

/// The objects of one user, as read.
#[derive(Debug, Clone, Default)]
pub struct UserExport {
    /// Their sandboxes, by id.
    pub sandboxes: BTreeMap<String, Sandbox>,
    /// What could not be read, at its place.
    pub problems: Vec<Problem>,
}

fn sandboxes_prefix(user: &str) -> String {
    format!("users/{user}/sandboxes/")
}

impl V1Export {
    /// Opens the export at `url` (`gs://bucket/prefix`, `file:///abs/path`).
    ///
    /// # Errors
    /// The URL cannot be used, or the bucket cannot be reached.
    pub async fn open(url: &str) -> Result<Self, MigrateError> {
        let bucket = Bucket::open(url)
            .await
            .map_err(|source| MigrateError::Export {
                url: url.into(),
                source,
            })?;
        Ok(V1Export {
            url: url.into(),
            bucket,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn failed(&self, source: coditect_runtime::sync::StoreError) -> MigrateError {
        MigrateError::Export {
            url: self.url.clone(),
            source,
        }
    }

    /// An object's bytes, `None` when it does not exist.
    ///
    /// # Errors
    /// The bucket did not answer.
    pub async fn read(&self, object: &str) -> Result<Option<Bytes>, MigrateError> {
        Ok(self
            .bucket
            .get(object)
            .await
            .map_err(|e| self.failed(e))?
            .map(|(b, _)| b))
    }

    /// Every user in `users.jsonl`, and the lines that are not one (with their number).
    /// A login seen twice is a problem on its second line.
    ///
    /// # Errors
    /// No `users.jsonl`, or the bucket did not answer.
    pub async fn users(&self) -> Result<(Vec<V1User>, Vec<Problem>), MigrateError> {
        let Some(bytes) = self.read("users.jsonl").await? else {
            return Err(MigrateError::NoUsers {
                url: self.url.clone(),
            });
        };
        let (users, mut problems) = json_lines::<V1User>("users.jsonl", &bytes);
        let mut seen = std::collections::BTreeSet::new();
        let mut kept = Vec::new();
        for (line, u) in users {
            if u.login.is_empty() || u.id.is_empty() {
                problems.push(Problem::on_line("users.jsonl", line, "empty id or login"));
            } else if !seen.insert(u.login.clone()) {
                problems.push(Problem::on_line(
                    "users.jsonl",
                    line,
                    format!("login {:?} appears twice", u.login),
                ));
            } else {
                kept.push(u);
            }
        }
        Ok((kept, problems))
    }

    /// One user's sandboxes: each one's meta and tree. A sandbox without a readable
    /// `meta.json`, or with an agent v1 did not have, is a problem (and left out).
    ///
    /// # Errors
    /// The bucket did not answer.
    pub async fn user(&self, user: &V1User) -> Result<UserExport, MigrateError> {
        let prefix = sandboxes_prefix(&user.id);
        let listed = self
            .bucket
            .list(&prefix)
            .await
            .map_err(|e| self.failed(e))?;
        let mut by_sandbox: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
        for o in listed {
            let Some(rest) = o.name.strip_prefix(&prefix) else {
                continue;
            };
            let Some((sandbox, inner)) = rest.split_once('/') else {
                continue;
            };
            by_sandbox
                .entry(sandbox.to_string())
                .or_default()
                .push((inner.to_string(), o.size));
        }
        let mut out = UserExport::default();
        for (id, objects) in by_sandbox {
            let meta_object = format!("{prefix}{id}/meta.json");
            let meta = match self.read(&meta_object).await? {
                None => {
                    out.problems.push(Problem::at(
                        &meta_object,
                        "missing: the sandbox's agent and activity are unknown",
                    ));
                    continue;
                }
                Some(bytes) => match serde_json::from_slice::<SandboxMeta>(&bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        out.problems.push(Problem::on_line(
                            &meta_object,
                            e.line(),
                            format!("not a sandbox meta: {e}"),
                        ));
                        continue;
                    }
                },
            };
            if !AGENTS.contains(&meta.agent.as_str()) {
                out.problems.push(Problem::at(
                    &meta_object,
                    format!(
                        "agent {:?} is not one of v1's ({})",
                        meta.agent,
                        AGENTS.join(", ")
                    ),
                ));
                continue;
            }
            let mut files: Vec<V1File> = objects
                .iter()
                .filter_map(|(inner, size)| {
                    let path = inner.strip_prefix("files/")?;
                    Some(V1File {
                        path: path.to_string(),
                        object: format!("{prefix}{id}/{inner}"),
                        size: *size,
                    })
                })
                .collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            let has_transcript = objects.iter().any(|(inner, _)| inner == "transcript.jsonl");
            out.sandboxes.insert(
                id,
                Sandbox {
                    meta,
                    files,
                    has_transcript,
                },
            );
        }
        Ok(out)
    }

    /// A sandbox's transcript lines (numbered from 1), and the lines that are not one.
    ///
    /// # Errors
    /// The bucket did not answer.
    pub async fn transcript(
        &self,
        user: &V1User,
        sandbox: &str,
    ) -> Result<(Vec<(usize, TranscriptLine)>, Vec<Problem>), MigrateError> {
        let object = format!("{}{sandbox}/transcript.jsonl", sandboxes_prefix(&user.id));
        let Some(bytes) = self.read(&object).await? else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (lines, mut problems) = json_lines::<TranscriptLine>(&object, &bytes);
        let mut kept = Vec::new();
        for (n, l) in lines {
            if !matches!(l.role.as_str(), "user" | "assistant" | "tool") {
                problems.push(Problem::on_line(
                    &object,
                    n,
                    format!("role {:?} is not user, assistant or tool", l.role),
                ));
            } else if l.ts.parse::<jiff::Timestamp>().is_err() {
                problems.push(Problem::on_line(
                    &object,
                    n,
                    format!("ts {:?} is not an RFC 3339 time", l.ts),
                ));
            } else {
                kept.push((n, l));
            }
        }
        Ok((kept, problems))
    }
}

/// The JSON objects of a JSON Lines text, with their line numbers; the lines that are not
/// one, as problems (blank lines are skipped).
fn json_lines<T: serde::de::DeserializeOwned>(
    object: &str,
    bytes: &[u8],
) -> (Vec<(usize, T)>, Vec<Problem>) {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(Problem::at(object, "not UTF-8 text"));
        return (ok, problems);
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(line) {
            Ok(v) => ok.push((i + 1, v)),
            Err(e) => problems.push(Problem::on_line(object, i + 1, e.to_string())),
        }
    }
    (ok, problems)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bad_line_is_named_by_its_number_and_the_others_are_read() {
        let text = b"{\"ts\":\"2026-01-01T00:00:00Z\",\"role\":\"user\",\"text\":\"hi\"}\n\n{not json\n{\"ts\":\"x\",\"role\":\"user\",\"text\":\"a\",\"extra\":1}\n";
        let (ok, problems) = json_lines::<TranscriptLine>("t.jsonl", text);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].0, 1);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, Some(3));
        assert_eq!(problems[1].line, Some(4));
        assert!(
            problems[1].reason.contains("unknown field `extra`"),
            "{}",
            problems[1]
        );
    }
}
