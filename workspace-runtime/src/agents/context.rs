//! Shared context: what an agent is shown beside its task, so that four agents on one
//! codebase do not each read and summarise the same files. Every task's prompt carries a
//! briefing: the file tree, the other agents' recent edits (with their diff summaries),
//! digests of files other agents have already read (unchanged since), and the messages
//! addressed to the agent since its last task.
//!
//! Tokens saved are counted in `agent_metrics` (`tokens_saved`, estimated at 4 bytes a
//! token) in two ways: a file whose digest was in the briefing and that the agent did not
//! read during the task counts its size less the digest's; a repeated read of a file the
//! agent already has, unchanged, in its conversation is answered with a short note instead
//! of the content, and counts the content.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::Digest as _;

use crate::bus::MessageFilter;
use crate::workspace::WorkspaceRuntime;

/// Bytes per token, for the estimate of tokens saved.
pub const BYTES_PER_TOKEN: usize = 4;
/// Recent edits remembered.
const RECENT_EDITS: usize = 20;
/// Files listed in a briefing's tree.
const TREE_LIMIT: usize = 200;

/// What the workspace's agents have read and written, shared between them.
#[derive(Debug, Default)]
pub struct SharedContext {
    reads: Mutex<HashMap<String, Digest>>,
    edits: Mutex<VecDeque<Edit>>,
}

/// A file as some agent read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// SHA-256 of what was read.
    pub sha256: String,
    /// Its size.
    pub bytes: usize,
    /// Its line count.
    pub lines: usize,
    /// Its first non-empty line.
    pub head: String,
    /// Who read it.
    pub reader: String,
}

/// An edit an agent made.
#[derive(Debug, Clone, PartialEq)]
struct Edit {
    agent: String,
    path: String,
    sha256: String,
    summary: String,
}

/// A briefing for one task: the text, and what it offered in place of reads.
#[derive(Debug, Default)]
pub struct Briefing {
    /// The text for the prompt.
    pub text: String,
    /// Files offered as digests: path, sha, size, the digest's own size.
    pub digests: Vec<(String, String, usize, usize)>,
    /// The newest message id shown.
    pub last_message: i64,
}

impl SharedContext {
    /// Notes that `agent` read `path` with `content`.
    pub fn note_read(&self, agent: &str, path: &str, content: &[u8]) {
        let text = String::from_utf8_lossy(content);
        let digest = Digest {
            sha256: hex::encode(sha2::Sha256::digest(content)),
            bytes: content.len(),
            lines: text.lines().count(),
            head: text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect(),
            reader: agent.to_string(),
        };
        if let Ok(mut reads) = self.reads.lock() {
            reads.insert(path.to_string(), digest);
        }
    }

    /// Notes an edit (its diff summary comes from the write).
    pub fn note_edit(&self, agent: &str, path: &str, sha256: &str, summary: &str) {
        if let Ok(mut edits) = self.edits.lock() {
            edits.retain(|e| e.path != path);
            edits.push_back(Edit {
                agent: agent.to_string(),
                path: path.to_string(),
                sha256: sha256.to_string(),
                summary: summary.to_string(),
            });
            while edits.len() > RECENT_EDITS {
                edits.pop_front();
            }
        }
        // A digest of the old content no longer describes the file.
        if let Ok(mut reads) = self.reads.lock() {
            reads.remove(path);
        }
    }

    /// The briefing for `agent`'s next task: messages newer than `since_message`.
    pub fn brief(&self, ws: &WorkspaceRuntime, agent: &str, since_message: i64) -> Briefing {
        let mut b = Briefing {
            last_message: since_message,
            ..Briefing::default()
        };
        let tree = crate::files::list_tree(ws.files.root(), TREE_LIMIT);
        if !tree.is_empty() {
            b.text
                .push_str(&format!("Files in the workspace ({}):\n", tree.len()));
            for (path, size) in &tree {
                b.text.push_str(&format!("- {path} ({size} B)\n"));
            }
        }
        let edits: Vec<Edit> = self
            .edits
            .lock()
            .map(|e| {
                e.iter()
                    .rev()
                    .filter(|e| e.agent != agent)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !edits.is_empty() {
            b.text
                .push_str("Recent edits by other agents (newest first):\n");
            for e in edits {
                b.text.push_str(&format!(
                    "- {} wrote {} ({}, sha256 {})\n",
                    e.agent,
                    e.path,
                    e.summary,
                    &e.sha256[..e.sha256.len().min(12)]
                ));
            }
        }
        let reads: Vec<(String, Digest)> = self
            .reads
            .lock()
            .map(|r| {
                let mut v: Vec<_> = r
                    .iter()
                    .filter(|(_, d)| d.reader != agent)
                    .map(|(p, d)| (p.clone(), d.clone()))
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            })
            .unwrap_or_default();
        if !reads.is_empty() {
            b.text.push_str(
                "Files other agents have read, unchanged since (read one only if you need its exact text):\n",
            );
            for (path, d) in reads {
                let line = format!(
                    "- {path}: {} lines, {} B, read by {}, begins {:?}\n",
                    d.lines, d.bytes, d.reader, d.head
                );
                b.digests.push((path, d.sha256, d.bytes, line.len()));
                b.text.push_str(&line);
            }
        }
        let filter = MessageFilter {
            agent: Some(agent.to_string()),
            topics: Default::default(),
        };
        if let Ok(messages) = ws.bus.history(&filter, since_message, 20) {
            let to_me: Vec<_> = messages.iter().filter(|m| m.from != agent).collect();
            if !to_me.is_empty() {
                b.text.push_str("Messages to you:\n");
            }
            for m in to_me {
                let text = m.body["text"]
                    .as_str()
                    .map_or_else(|| m.body.to_string(), str::to_string);
                b.text.push_str(&format!("- from {}: {text}\n", m.from));
            }
            if let Some(last) = messages.last() {
                b.last_message = last.id;
            }
        }
        b
    }
}
