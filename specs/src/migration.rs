//! `Migration`: moving v1 users (four ephemeral sandboxes each) to v2 workspaces, declared
//! like everything else. The spec says where the v1 export and endpoint are, where users
//! land, which users and how many at once, and how verification, cutover and rollback
//! behave; the status accounts for every selected user by phase. The per-user records
//! themselves live in the control plane's store (a thousand users do not fit one object);
//! the migration's reconciler lives in `coditect-migrate`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::AgentSpec;
use crate::duration::Duration;
use crate::meta::Condition;
use crate::workspace::Resources;

/// Desired state of a Migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationSpec {
    /// v1's export and endpoint.
    pub source: MigrationSource,
    /// Where users land.
    #[serde(default)]
    pub target: MigrationTarget,
    /// Which users, in what batches.
    #[serde(default)]
    pub users: UserSelection,
    /// What verification accepts on its own.
    #[serde(default)]
    pub verification: VerificationPolicy,
    /// How users are cut over.
    #[serde(default)]
    pub cutover: CutoverPolicy,
    /// How long a cut-over user can still be rolled back to v1; after it, they are
    /// completed by themselves.
    #[serde(default = "rollback_window")]
    pub rollback_window: Duration,
}

fn rollback_window() -> Duration {
    Duration::from_secs(72 * 3600)
}

/// v1's export and endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationSource {
    /// The export: `gs://bucket/prefix` or `file:///abs/path`.
    pub export: String,
    /// The live v1 endpoint that serves users until they are cut over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Where users land.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationTarget {
    /// The organization every user lands in; absent: the user's own `org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The team; absent: the user's own `team`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The workspace's name, `{login}`, `{org}` and `{team}` replaced (default
    /// `{login}-main`).
    #[serde(default = "workspace_name")]
    pub workspace_name: String,
    /// Resources of each workspace (the team's defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The agents' settings by v1 agent name (`claude`, `gemini`, `codex`, `kimi`); an
    /// agent not named gets its provider's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentSpec>,
}

fn workspace_name() -> String {
    "{login}-main".into()
}

impl Default for MigrationTarget {
    fn default() -> Self {
        MigrationTarget {
            organization: None,
            team: None,
            workspace_name: workspace_name(),
            resources: None,
            agents: Vec::new(),
        }
    }
}

/// Placeholders a workspace-name template may use.
pub const WORKSPACE_NAME_PLACEHOLDERS: [&str; 3] = ["{login}", "{org}", "{team}"];

/// Which users, in what batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSelection {
    /// Only these logins (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    /// Only users of these v1 organizations (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// Users taken on per step of the migration's reconciler.
    #[serde(default = "batch_size")]
    pub batch_size: u32,
    /// Users copied at once; may be changed while the migration runs.
    #[serde(default = "concurrency")]
    pub concurrency: u32,
}

fn batch_size() -> u32 {
    50
}

fn concurrency() -> u32 {
    4
}

impl Default for UserSelection {
    fn default() -> Self {
        UserSelection {
            logins: Vec::new(),
            organizations: Vec::new(),
            batch_size: batch_size(),
            concurrency: concurrency(),
        }
    }
}

/// What verification accepts on its own.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationPolicy {
    /// Cut over a user graded Investigate without `--approve` (Poor always needs it).
    #[serde(default)]
    pub accept_investigate: bool,
}

/// How users are cut over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CutoverPolicy {
    /// Cut users over as soon as they verify (else: `coditect migrate promote`), like
    /// Argo Rollouts' `autoPromotionEnabled`.
    #[serde(default)]
    pub auto_promote: bool,
    /// The longest a user's requests may be held during their cutover; a cutover that
    /// would take longer is abandoned (the user stays on v1) and tried again.
    #[serde(default = "max_pause")]
    pub max_pause: Duration,
}

fn max_pause() -> Duration {
    Duration::from_secs(1)
}

impl Default for CutoverPolicy {
    fn default() -> Self {
        CutoverPolicy {
            auto_promote: false,
            max_pause: max_pause(),
        }
    }
}

/// Where one user is in their migration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum UserPhase {
    /// Selected, nothing done yet.
    Pending,
    /// Their workspace is being created and their files and transcripts copied.
    Copying,
    /// Copied, and kept in sync with v1's export while v1 still serves them.
    Synced,
    /// Compared file by file with v1 and graded; waiting for promotion.
    Verified,
    /// Their requests are held while what changed is copied and the route flips.
    CuttingOver,
    /// Served by v2; can still be rolled back.
    CutOver,
    /// Served by v2 for good.
    Completed,
    /// Back on v1, their v2 changes written back into the v1 layout.
    RolledBack,
    /// Stopped with a reason.
    Failed,
}

impl UserPhase {
    /// Every phase, in the order a user goes through them.
    pub const ALL: [UserPhase; 9] = [
        UserPhase::Pending,
        UserPhase::Copying,
        UserPhase::Synced,
        UserPhase::Verified,
        UserPhase::CuttingOver,
        UserPhase::CutOver,
        UserPhase::Completed,
        UserPhase::RolledBack,
        UserPhase::Failed,
    ];

    /// Its name.
    pub fn as_str(&self) -> &'static str {
        match self {
            UserPhase::Pending => "Pending",
            UserPhase::Copying => "Copying",
            UserPhase::Synced => "Synced",
            UserPhase::Verified => "Verified",
            UserPhase::CuttingOver => "CuttingOver",
            UserPhase::CutOver => "CutOver",
            UserPhase::Completed => "Completed",
            UserPhase::RolledBack => "RolledBack",
            UserPhase::Failed => "Failed",
        }
    }

    /// Whether nothing more happens to the user unless asked.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            UserPhase::Completed | UserPhase::RolledBack | UserPhase::Failed
        )
    }

    /// Whether a person's `action` (`promote`, `cutover`, `complete`, `rollback`) applies
    /// to a user in this phase; `routed_back` when their rollback is under way.
    pub fn accepts(&self, action: &str, routed_back: bool) -> bool {
        match action {
            "promote" | "cutover" => !self.is_final() && *self < UserPhase::CuttingOver,
            "complete" => *self == UserPhase::CutOver && !routed_back,
            "rollback" => !self.is_final(),
            _ => false,
        }
    }
}

impl std::fmt::Display for UserPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many selected users are in each phase; they add up to `total`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserCounts {
    /// Selected users.
    pub total: u32,
    /// In [`UserPhase::Pending`].
    #[serde(default)]
    pub pending: u32,
    /// In [`UserPhase::Copying`].
    #[serde(default)]
    pub copying: u32,
    /// In [`UserPhase::Synced`].
    #[serde(default)]
    pub synced: u32,
    /// In [`UserPhase::Verified`].
    #[serde(default)]
    pub verified: u32,
    /// In [`UserPhase::CuttingOver`].
    #[serde(default)]
    pub cutting_over: u32,
    /// In [`UserPhase::CutOver`].
    #[serde(default)]
    pub cut_over: u32,
    /// In [`UserPhase::Completed`].
    #[serde(default)]
    pub completed: u32,
    /// In [`UserPhase::RolledBack`].
    #[serde(default)]
    pub rolled_back: u32,
    /// In [`UserPhase::Failed`].
    #[serde(default)]
    pub failed: u32,
}

impl UserCounts {
    /// The counter of `phase`.
    pub fn of_mut(&mut self, phase: UserPhase) -> &mut u32 {
        match phase {
            UserPhase::Pending => &mut self.pending,
            UserPhase::Copying => &mut self.copying,
            UserPhase::Synced => &mut self.synced,
            UserPhase::Verified => &mut self.verified,
            UserPhase::CuttingOver => &mut self.cutting_over,
            UserPhase::CutOver => &mut self.cut_over,
            UserPhase::Completed => &mut self.completed,
            UserPhase::RolledBack => &mut self.rolled_back,
            UserPhase::Failed => &mut self.failed,
        }
    }

    /// How many are in `phase`.
    pub fn of(&self, phase: UserPhase) -> u32 {
        match phase {
            UserPhase::Pending => self.pending,
            UserPhase::Copying => self.copying,
            UserPhase::Synced => self.synced,
            UserPhase::Verified => self.verified,
            UserPhase::CuttingOver => self.cutting_over,
            UserPhase::CutOver => self.cut_over,
            UserPhase::Completed => self.completed,
            UserPhase::RolledBack => self.rolled_back,
            UserPhase::Failed => self.failed,
        }
    }

    /// Counted users over all phases (equal to `total` in a status the reconciler wrote).
    pub fn counted(&self) -> u32 {
        UserPhase::ALL.iter().map(|p| self.of(*p)).sum()
    }
}

/// Observed state of a Migration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observed conditions (`Ready`: every selected user is in a final phase;
    /// `Progressing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// A one-word summary: Running, Waiting (for promotion or approval), Succeeded,
    /// Failed (the export cannot be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Selected users by phase.
    #[serde(default)]
    pub users: UserCounts,
    /// Bytes copied from v1 so far.
    #[serde(default)]
    pub bytes_copied: u64,
    /// Cutover pauses (requests held), median, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_p50_ms: Option<f64>,
    /// Cutover pauses, 99th percentile, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_p99_ms: Option<f64>,
    /// What a person should do next, if anything (`coditect migrate promote …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Problems of the export itself, each at its place (a malformed line of
    /// `users.jsonl`: no user can be told from it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::UserPhase as P;

    #[test]
    fn a_person_s_actions_apply_only_to_users_in_a_fitting_phase() {
        for phase in P::ALL {
            assert_eq!(
                phase.accepts("promote", false),
                matches!(phase, P::Pending | P::Copying | P::Synced | P::Verified),
                "promote {phase}"
            );
            assert_eq!(
                phase.accepts("cutover", false),
                phase.accepts("promote", false)
            );
            assert_eq!(
                phase.accepts("complete", false),
                phase == P::CutOver,
                "complete {phase}"
            );
            assert!(!phase.accepts("complete", true), "not while routed back");
            assert_eq!(
                phase.accepts("rollback", false),
                !matches!(phase, P::Completed | P::RolledBack | P::Failed),
                "rollback {phase}"
            );
            assert!(!phase.accepts("rewind", false));
        }
    }
}
