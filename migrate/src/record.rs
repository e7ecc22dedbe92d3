//! One user's record in a migration, kept in the control plane's store (one row per user,
//! written after every step): where they are, what was copied and found, and what a
//! rollback needs. A control plane killed at any point reads these back and goes on from
//! each user's phase; every step is idempotent, so a step cut off is simply taken again.

use coditect_specs::{ObjectKey, UserPhase};
use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::export::V1User;
use crate::merge::Merged;
use crate::verify::Grade;

/// A user's migration, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    /// Their login (the workspace's owner, and `/u/{login}/…`).
    pub login: String,
    /// Their line of `users.jsonl`.
    pub user: V1User,
    /// Where they are.
    pub phase: UserPhase,
    /// Their v2 workspace.
    pub workspace: ObjectKey,
    /// The workspace's team.
    pub team: String,
    /// The verification grade, once verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<Grade>,
    /// Why the grade is not Perfect, why a step waits, or why the user Failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// What the export could not give, at its place (object, line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Files in the merged tree.
    #[serde(default)]
    pub files: usize,
    /// Bytes copied so far (all syncs).
    #[serde(default)]
    pub bytes_copied: u64,
    /// Transcript lines imported as events.
    #[serde(default)]
    pub events: u64,
    /// Paths the sandboxes disagreed on.
    #[serde(default)]
    pub conflicts: usize,
    /// A person promoted them (or the migration promotes automatically).
    #[serde(default)]
    pub promoted: bool,
    /// A person approved cutting them over despite their grade.
    #[serde(default)]
    pub approved: bool,
    /// How long their requests were held at cutover, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_ms: Option<f64>,
    /// How long the route took to flip back at rollback, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_ms: Option<f64>,
    /// Files a rollback wrote back into (or deleted from) the v1 layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_back: Option<usize>,
    /// Cutovers tried and abandoned (too long a pause, a worse grade on the last sync).
    #[serde(default)]
    pub attempts: u32,
    /// When the last cutover was abandoned (RFC 3339): the next waits longer each time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// The last copy from v1 (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<String>,
    /// When they were cut over (RFC 3339): the rollback window counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_over_at: Option<String>,
    /// What the last sync put in v2 (SHA-256 by path): a v2 file that no longer matches
    /// it was changed behind the migration's back (before cutover, nobody should).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub at_sync: std::collections::BTreeMap<String, String>,
    /// Paths found changed in v2 behind the migration's back (put back from v1 each
    /// time); they keep the grade at Investigate until a person approves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampered: Vec<String>,
    /// The tree they were cut over with: what a rollback compares v2 against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_cutover: Option<Merged>,
    /// Their most recently active sandbox: where files new in v2 go back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_sandbox: Option<String>,
    /// The route was flipped back to v1; the write-back may still be due.
    #[serde(default)]
    pub routed_back: bool,
    /// The last change of this record (RFC 3339).
    pub updated_at: String,
}

impl UserRecord {
    /// A newly selected user.
    pub fn pending(user: V1User, workspace: ObjectKey, team: String, now: &str) -> Self {
        UserRecord {
            login: user.login.clone(),
            user,
            phase: UserPhase::Pending,
            workspace,
            team,
            grade: None,
            reasons: Vec::new(),
            problems: Vec::new(),
            files: 0,
            bytes_copied: 0,
            events: 0,
            conflicts: 0,
            promoted: false,
            approved: false,
            pause_ms: None,
            rollback_ms: None,
            written_back: None,
            attempts: 0,
            last_attempt_at: None,
            synced_at: None,
            cut_over_at: None,
            at_sync: std::collections::BTreeMap::new(),
            tampered: Vec::new(),
            at_cutover: None,
            newest_sandbox: None,
            routed_back: false,
            updated_at: now.to_string(),
        }
    }

    /// Whether the grade lets them be cut over, given the policy and any approval.
    pub fn may_cut_over(&self, accept_investigate: bool) -> bool {
        match self.grade {
            Some(Grade::Perfect) => true,
            Some(Grade::Investigate) => accept_investigate || self.approved,
            Some(Grade::Poor) => self.approved,
            None => false,
        }
    }
}
