//! `coditect migrate plan`: reads the v1 export and says, per selected user, what the
//! migration would create — the workspace and where it lands, its agents, the merged
//! tree's files and bytes, the merge conflicts, the transcript lines to import — and
//! every problem at its place, changing nothing. It needs no control plane.

use futures_util::{StreamExt, stream};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{MigrateError, Problem};
use crate::export::{V1Export, V1User};
use crate::merge::{Candidate, Conflict, Merged, merge};
use crate::spec::Migration;

/// What would happen to one user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPlan {
    /// Their login (the workspace's owner).
    pub login: String,
    /// v1's id.
    pub id: String,
    /// The organization they land in.
    pub organization: String,
    /// Their team.
    pub team: String,
    /// The workspace made for them.
    pub workspace: String,
    /// One agent per sandbox agent.
    pub agents: Vec<String>,
    /// The merged tree.
    pub files: usize,
    /// Its bytes.
    pub bytes: u64,
    /// Paths the sandboxes disagree on.
    pub conflicts: Vec<Conflict>,
    /// Transcript lines that become events.
    pub events: usize,
    /// What is wrong, at its place: the user would be Failed or Investigate.
    pub problems: Vec<Problem>,
    /// The merge itself (for the copy and verification; not printed).
    #[serde(skip)]
    pub merged: Merged,
    /// The transcripts as read (for the import; not printed).
    #[serde(skip)]
    pub transcripts: Vec<crate::transcript::SandboxTranscript>,
    /// The most recently active sandbox (where files new in v2 go back to on rollback).
    #[serde(skip)]
    pub newest_sandbox: Option<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The Migration's name.
    pub migration: String,
    /// The export read.
    pub export: String,
    /// Users in `users.jsonl`.
    pub users_in_export: usize,
    /// The selected users, by login.
    pub users: Vec<UserPlan>,
    /// Problems of the export itself (bad `users.jsonl` lines, two users landing on one
    /// workspace).
    pub problems: Vec<Problem>,
}

impl Plan {
    /// Files in all merged trees.
    pub fn files(&self) -> usize {
        self.users.iter().map(|u| u.files).sum()
    }

    /// Bytes in all merged trees.
    pub fn bytes(&self) -> u64 {
        self.users.iter().map(|u| u.bytes).sum()
    }

    /// Users with a problem.
    pub fn users_with_problems(&self) -> usize {
        self.users.iter().filter(|u| !u.problems.is_empty()).count()
    }
}

/// Plans `migration`, reading its export; `progress` is told after each user (done, of).
///
/// # Errors
/// The export cannot be opened, or has no `users.jsonl`.
pub async fn plan(
    migration: &Migration,
    progress: impl Fn(usize, usize),
) -> Result<Plan, MigrateError> {
    let export = V1Export::open(&migration.spec.source.export).await?;
    let (all, mut problems) = export.users().await?;
    let selected: Vec<V1User> = all
        .iter()
        .filter(|u| crate::spec::selects(&migration.spec.users, u))
        .cloned()
        .collect();
    let total = selected.len();
    let concurrency = usize::try_from(migration.spec.users.concurrency.max(1)).unwrap_or(4);
    let mut planned: Vec<Result<UserPlan, MigrateError>> = Vec::with_capacity(total);
    let mut stream = stream::iter(selected.iter().map(|u| plan_user(&export, migration, u)))
        .buffer_unordered(concurrency);
    while let Some(p) = stream.next().await {
        planned.push(p);
        progress(planned.len(), total);
    }
    let mut users = planned.into_iter().collect::<Result<Vec<_>, _>>()?;
    users.sort_by(|a, b| a.login.cmp(&b.login));
    // Two users may not land on one workspace.
    let mut landed = std::collections::BTreeMap::new();
    for u in &users {
        if let Some(first) = landed.insert(
            (u.organization.clone(), u.workspace.clone()),
            u.login.clone(),
        ) {
            problems.push(Problem::at(
                "users.jsonl",
                format!(
                    "{} and {} both land on {}/{}: change spec.target.workspaceName",
                    first, u.login, u.organization, u.workspace
                ),
            ));
        }
    }
    Ok(Plan {
        migration: migration.metadata.name.clone(),
        export: export.url().to_string(),
        users_in_export: all.len(),
        users,
        problems,
    })
}

/// One user's plan: every file read and hashed (what verification compares; it plans
/// the user again, since v1 keeps writing while the user is on it).
///
/// # Errors
/// The export did not answer.
pub async fn plan_user(
    export: &V1Export,
    migration: &Migration,
    user: &V1User,
) -> Result<UserPlan, MigrateError> {
    let read = export.user(user).await?;
    let mut problems = read.problems;
    let mut candidates = Vec::new();
    let mut agents = std::collections::BTreeSet::new();
    let mut events = 0;
    let mut transcripts = Vec::new();
    let newest_sandbox = read
        .sandboxes
        .iter()
        .max_by(|a, b| a.1.meta.last_active_at.cmp(&b.1.meta.last_active_at))
        .map(|(id, _)| id.clone());
    for (id, sandbox) in &read.sandboxes {
        agents.insert(sandbox.meta.agent.clone());
        for f in &sandbox.files {
            match export.read(&f.object).await? {
                Some(bytes) => candidates.push(Candidate {
                    sandbox: id.clone(),
                    agent: sandbox.meta.agent.clone(),
                    last_active_at: sandbox.meta.last_active_at.clone(),
                    path: f.path.clone(),
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    size: bytes.len() as u64,
                }),
                None => problems.push(Problem::at(&f.object, "listed but cannot be read")),
            }
        }
        if sandbox.has_transcript {
            let (lines, bad) = export.transcript(user, id).await?;
            events += lines.len();
            problems.extend(bad);
            transcripts.push(crate::transcript::SandboxTranscript {
                sandbox: id.clone(),
                agent: sandbox.meta.agent.clone(),
                lines,
            });
        }
    }
    let merged = merge(&candidates);
    let (organization, team, workspace) = crate::spec::landing(migration, user);
    Ok(UserPlan {
        login: user.login.clone(),
        id: user.id.clone(),
        organization,
        team,
        workspace,
        agents: agents.into_iter().collect(),
        files: merged.files.len(),
        bytes: merged.bytes(),
        conflicts: merged.conflicts.clone(),
        events,
        problems,
        merged,
        transcripts,
        newest_sandbox,
    })
}
