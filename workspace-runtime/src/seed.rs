//! Seeding: what a workspace's spec puts into it on its first start. Each project with a
//! `path` is copied (or, with `git`, cloned) into `projects/{name}/` when that folder does
//! not exist yet; each seed task is queued unless a task with its title was already queued
//! by the spec. Both are idempotent, so a restart or a re-apply seeds nothing twice and
//! never overwrites the agents' work.
//!
//! A project that cannot be fetched (a git host out of reach) does not keep the workspace
//! from starting: the failure is logged and put in the event log (`project_seed_failed`),
//! and the next start tries again.

use std::path::Path;

use serde_json::json;

use crate::error::StorageError;
use crate::error::TaskError;
use crate::events::{EventDraft, EventType};
use crate::tasks::SubmitTask;
use crate::workspace::WorkspaceRuntime;

/// Who the seed tasks are submitted by.
pub const SUBMITTER: &str = "spec";

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A project's files could not be copied.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// `git clone` failed.
    #[error("project {project}: git clone {url} failed: {reason}")]
    Clone {
        /// The project.
        project: String,
        /// Its repository.
        url: String,
        /// git's own words.
        reason: String,
    },
    /// A seed task was refused.
    #[error("seed task {title:?}: {source}")]
    Task {
        /// Its title.
        title: String,
        /// Why.
        source: TaskError,
    },
}

/// Copies or clones each project that is not in `projects/` yet; a failure is reported in
/// the event log and tried again at the next start.
///
/// # Errors
/// When the event log cannot be written.
pub async fn projects(ws: &WorkspaceRuntime) -> Result<(), StorageError> {
    for project in &ws.spec.spec.projects {
        let dest = ws.layout.projects().join(&project.name);
        if dest.exists() {
            continue;
        }
        let data = match project_files(project, &dest).await {
            Ok(files) => json!({"project_seeded": project.name, "files": files}),
            Err(e) => {
                tracing::warn!(project = %project.name, error = %e, "seeding a project failed; the next start tries again");
                json!({"project_seed_failed": project.name, "reason": e.to_string()})
            }
        };
        ws.events
            .append(EventDraft::new("runtime", EventType::Checkpoint, data))
            .await?;
    }
    Ok(())
}

/// Fetches one project into `dest`; returns how many files were copied (0 for a clone).
async fn project_files(
    project: &coditect_specs::workspace::Project,
    dest: &Path,
) -> Result<usize, SeedError> {
    if let Some(path) = &project.path {
        let tmp = dest.with_extension("seeding");
        let _ = std::fs::remove_dir_all(&tmp);
        let n = copy_tree(Path::new(path), &tmp)?;
        std::fs::rename(&tmp, dest).map_err(StorageError::io("rename folder", dest))?;
        return Ok(n);
    }
    let Some(git) = &project.git else {
        return Ok(0);
    };
    let failed = |reason: String| SeedError::Clone {
        project: project.name.clone(),
        url: git.url.clone(),
        reason,
    };
    let out = tokio::process::Command::new("git")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["clone", "--quiet", "--depth", "1", "--branch"])
        .args([&git.git_ref, &git.url])
        .arg(dest)
        .output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(0)
}

/// Queues the spec's tasks that it has not queued before.
///
/// # Errors
/// [`SeedError::Task`] when a task cannot be routed.
pub async fn tasks(ws: &WorkspaceRuntime) -> Result<(), SeedError> {
    for task in &ws.spec.spec.tasks {
        let queued: bool = ws.db.sessions.read(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM tasks WHERE submitted_by = ?1 AND title = ?2)",
                [SUBMITTER, task.title.as_str()],
                |r| r.get(0),
            )
        })?;
        if queued {
            continue;
        }
        ws.tasks
            .submit(SubmitTask {
                agent: task.agent.clone(),
                role: task.role.clone(),
                title: task.title.clone(),
                prompt: task.prompt.clone(),
                priority: task.priority,
                submitted_by: SUBMITTER.into(),
            })
            .await
            .map_err(|source| SeedError::Task {
                title: task.title.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Copies the files under `from` to `to`; returns how many.
fn copy_tree(from: &Path, to: &Path) -> Result<usize, StorageError> {
    std::fs::create_dir_all(to).map_err(StorageError::io("create folder", to))?;
    let mut n = 0;
    for entry in std::fs::read_dir(from).map_err(StorageError::io("read folder", from))? {
        let entry = entry.map_err(StorageError::io("read folder", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(StorageError::io("read folder", &src))?;
        if kind.is_symlink() {
            // A link is copied as the link it is, never followed (it may lead anywhere on
            // this machine); the files API refuses it if it leads outside projects/.
            let link = std::fs::read_link(&src).map_err(StorageError::io("read link", &src))?;
            std::os::unix::fs::symlink(&link, &dst).map_err(StorageError::io("copy link", &dst))?;
        } else if kind.is_dir() {
            n += copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(StorageError::io("copy file", &src))?;
            n += 1;
        }
    }
    Ok(n)
}
