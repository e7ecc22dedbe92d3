//! Copying one user's merged tree out of the v1 export into a [`Destination`] (a
//! workspace, or a folder), byte for byte. Idempotent: a file already there with the expected hash
//! is left alone, so a copy cut off by SIGKILL is simply run again; a destination writes
//! each file whole or not at all, so nothing half-written is ever in its place.
//! Run again after v1 changed a file (a user still on v1), it brings the folder up to date.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::destination::Destination;
use crate::error::{MigrateError, Problem};
use crate::export::V1Export;
use crate::plan::UserPlan;

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// Files written (new or changed).
    pub written: usize,
    /// Files already in place with the right content.
    pub unchanged: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Files that could not be copied, at their place.
    pub problems: Vec<Problem>,
    /// What each path holds now (SHA-256): the plan's, or the bytes copied when v1 had
    /// changed the file since the plan.
    pub placed: std::collections::BTreeMap<String, String>,
}

/// Where a tree path goes under `root`, or `None` when it would leave it (`..`, absolute).
pub fn inside(root: &Path, path: &str) -> Option<PathBuf> {
    stays_inside(path).then(|| root.join(path))
}

/// Whether a tree path names something under its root: only plain names, no `..`, no
/// leading `/`.
pub fn stays_inside(path: &str) -> bool {
    Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
}

/// Every file under `root`, as tree paths (`src/main.rs`), sorted: the runtime's own
/// walk of a projects folder (links leading outside are not followed), without copies in
/// flight (`.{name}.migrating`).
pub fn tree(root: &Path) -> Vec<String> {
    coditect_runtime::files::list_tree(root, usize::MAX)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or(path);
            !(name.starts_with('.') && name.ends_with(".migrating"))
        })
        .collect()
}

/// The SHA-256 of the file at `path`, `None` when there is none.
pub fn file_sha256(path: &Path) -> Option<String> {
    coditect_runtime::files::sha256_of(path)
}

/// Copies `user`'s merged tree from `export` into `dest`.
///
/// # Errors
/// The export or the destination did not answer.
pub async fn copy_tree(
    export: &V1Export,
    user: &UserPlan,
    dest: &impl Destination,
) -> Result<Copied, MigrateError> {
    copy_tree_with(export, user, dest, |_| {}).await
}

/// [`copy_tree`], telling `written` each path once it is in place (for progress).
///
/// # Errors
/// The export or the destination did not answer.
pub async fn copy_tree_with(
    export: &V1Export,
    user: &UserPlan,
    dest: &impl Destination,
    mut written: impl FnMut(&str),
) -> Result<Copied, MigrateError> {
    let mut out = Copied::default();
    let there = dest.hashes().await?;
    for (path, placed) in &user.merged.files {
        if !stays_inside(path) {
            out.problems.push(Problem::at(
                path.clone(),
                "the path leaves the workspace's folder",
            ));
            continue;
        }
        if there.get(path) == Some(&placed.sha256) {
            out.unchanged += 1;
            out.placed.insert(path.clone(), placed.sha256.clone());
            continue;
        }
        let object = format!(
            "users/{}/sandboxes/{}/files/{}",
            user.id, placed.sandbox, placed.v1_path
        );
        let Some(bytes) = export.read(&object).await? else {
            out.problems.push(Problem::at(
                object,
                "listed in the plan, gone from the export",
            ));
            continue;
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != placed.sha256 {
            // v1 rewrote it since the plan: copy what is there now; verification compares
            // against the export again.
            tracing::debug!(object, "changed in v1 since the plan");
        }
        let size = bytes.len() as u64;
        dest.write(path, bytes).await?;
        out.placed.insert(path.clone(), actual);
        out.written += 1;
        out.bytes += size;
        written(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_path_may_not_leave_the_folder() {
        let root = Path::new("/w/projects");
        assert_eq!(
            inside(root, "a/b.rs"),
            Some(PathBuf::from("/w/projects/a/b.rs"))
        );
        assert_eq!(inside(root, "../etc/passwd"), None);
        assert_eq!(inside(root, "/etc/passwd"), None);
        assert_eq!(inside(root, "a/../../x"), None);
    }
}
