//! Four sandboxes, one tree: a v1 user's sandboxes are merged into the v2 workspace's
//! `projects/`. The same path with the same content is one file; the same path with
//! different contents goes to the most recently active sandbox, and every other content is
//! kept beside it once, under a name that says where it came from (`main.v1-gemini.rs`,
//! after the newest sandbox that has it), the conflict listed for the report. Pure: it decides from paths, hashes and activity times,
//! so the plan, the copy and the verification all agree on one answer.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One sandbox's file, as the merge sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The sandbox.
    pub sandbox: String,
    /// Its agent.
    pub agent: String,
    /// When it was last active (RFC 3339).
    pub last_active_at: String,
    /// The file's path in the sandbox's tree.
    pub path: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// Where a v2 file comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Placed {
    /// The sandbox it is copied from.
    pub sandbox: String,
    /// Its path there.
    pub v1_path: String,
    /// Its SHA-256: what verification expects in v2.
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// One path the sandboxes disagree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Conflict {
    /// The path.
    pub path: String,
    /// The sandbox whose content is kept at the path (the most recently active).
    pub winner: String,
    /// The other contents: (sandbox, the path they are kept at).
    pub kept: Vec<(String, String)>,
}

/// The merged tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Merged {
    /// Every v2 path, and where it comes from.
    pub files: BTreeMap<String, Placed>,
    /// The paths with more than one content.
    pub conflicts: Vec<Conflict>,
}

impl Merged {
    /// Bytes in the merged tree.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|p| p.size).sum()
    }
}

/// Orders sandboxes newest first: by activity time, then by id (so the answer never
/// depends on listing order).
fn newer(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    let t = |c: &Candidate| c.last_active_at.parse::<jiff::Timestamp>().ok();
    t(b).cmp(&t(a))
        .then_with(|| b.last_active_at.cmp(&a.last_active_at))
        .then_with(|| a.sandbox.cmp(&b.sandbox))
}

/// `dir/name.ext` kept as `dir/name.v1-{agent}.ext` (`Makefile` → `Makefile.v1-kimi`,
/// `.env` → `.env.v1-kimi`).
pub fn kept_name(path: &str, agent: &str) -> String {
    let (dir, file) = match path.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), path),
    };
    let tag = format!("v1-{agent}");
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}.{tag}.{ext}"),
        _ => format!("{dir}{file}.{tag}"),
    }
}

/// Merges the candidates of every sandbox of one user.
pub fn merge(candidates: &[Candidate]) -> Merged {
    let mut by_path: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        by_path.entry(c.path.as_str()).or_default().push(c);
    }
    let taken: BTreeSet<&str> = by_path.keys().copied().collect();
    let mut out = Merged::default();
    let mut extra: Vec<(String, Placed)> = Vec::new();
    for (path, mut versions) in by_path {
        versions.sort_by(|a, b| newer(a, b));
        let winner = versions[0];
        out.files.insert(
            path.to_string(),
            Placed {
                sandbox: winner.sandbox.clone(),
                v1_path: winner.path.clone(),
                sha256: winner.sha256.clone(),
                size: winner.size,
            },
        );
        let mut kept = Vec::new();
        let mut contents = BTreeSet::from([winner.sha256.as_str()]);
        for other in versions.iter().skip(1) {
            // One copy per content, named after the newest sandbox that has it.
            if !contents.insert(other.sha256.as_str()) {
                continue;
            }
            let mut name = kept_name(path, &other.agent);
            if taken.contains(name.as_str()) || kept.iter().any(|(_, n)| *n == name) {
                name = kept_name(path, &format!("{}-{}", other.agent, other.sandbox));
            }
            kept.push((other.sandbox.clone(), name.clone()));
            extra.push((
                name,
                Placed {
                    sandbox: other.sandbox.clone(),
                    v1_path: other.path.clone(),
                    sha256: other.sha256.clone(),
                    size: other.size,
                },
            ));
        }
        if !kept.is_empty() {
            out.conflicts.push(Conflict {
                path: path.to_string(),
                winner: winner.sandbox.clone(),
                kept,
            });
        }
    }
    out.files.extend(extra);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn c(sandbox: &str, agent: &str, at: &str, path: &str, sha: &str) -> Candidate {
        Candidate {
            sandbox: sandbox.into(),
            agent: agent.into(),
            last_active_at: at.into(),
            path: path.into(),
            sha256: sha.into(),
            size: 1,
        }
    }

    #[test]
    fn the_same_content_is_one_file_and_a_different_one_goes_to_the_newest_sandbox() {
        let merged = merge(&[
            c("s1", "claude", "2026-01-01T10:00:00Z", "README.md", "aa"),
            c("s2", "gemini", "2026-01-01T11:00:00Z", "README.md", "aa"),
            c("s1", "claude", "2026-01-01T10:00:00Z", "src/main.rs", "c1"),
            c("s2", "gemini", "2026-01-01T11:00:00Z", "src/main.rs", "g1"),
            c("s3", "kimi", "2026-01-01T09:00:00Z", "src/main.rs", "c1"),
            c("s3", "kimi", "2026-01-01T09:00:00Z", "Makefile", "m"),
        ]);
        assert_eq!(merged.files.len(), 4, "{merged:#?}");
        assert_eq!(merged.files["src/main.rs"].sandbox, "s2", "the newest wins");
        assert_eq!(merged.files["src/main.v1-claude.rs"].sha256, "c1");
        assert!(
            !merged.files.contains_key("src/main.v1-kimi.rs"),
            "kimi's content is claude's: kept once"
        );
        assert_eq!(
            merged.conflicts,
            vec![Conflict {
                path: "src/main.rs".into(),
                winner: "s2".into(),
                kept: vec![("s1".into(), "src/main.v1-claude.rs".into())],
            }]
        );
        assert_eq!(merged.files["Makefile"].sandbox, "s3");
    }

    #[test]
    fn kept_names_say_where_they_came_from() {
        assert_eq!(kept_name("a/b/main.rs", "gemini"), "a/b/main.v1-gemini.rs");
        assert_eq!(kept_name("Makefile", "kimi"), "Makefile.v1-kimi");
        assert_eq!(kept_name(".env", "codex"), ".env.v1-codex");
        assert_eq!(
            kept_name("dir/ünï cødé.tar.gz", "claude"),
            "dir/ünï cødé.tar.v1-claude.gz"
        );
    }

    #[test]
    fn the_answer_does_not_depend_on_the_order_sandboxes_are_listed_in() {
        let a = [
            c("s1", "claude", "2026-01-01T10:00:00Z", "x", "1"),
            c("s2", "gemini", "2026-01-01T10:00:00Z", "x", "2"),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(merge(&a), merge(&b));
    }
}
