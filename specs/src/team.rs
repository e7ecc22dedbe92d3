//! `Team`: a group of users inside an organization, and the defaults its workspaces
//! inherit (agent set, auto-sleep) when they do not say otherwise.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::AgentSpec;
use crate::workspace::AutoSleepPolicy;

/// Desired state of a Team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamSpec {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The team's members. When non-empty, a workspace's owner must be one of them.
    #[serde(default)]
    pub members: Vec<Member>,
    /// What the team's workspaces get when their own spec is silent.
    #[serde(default)]
    pub workspace_defaults: WorkspaceDefaults,
}

/// A member of a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    /// The user's name (a DNS-1123 label; it names the user's folder in the bucket).
    pub user: String,
    /// What the member may do.
    #[serde(default)]
    pub role: MemberRole,
}

/// What a team member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MemberRole {
    /// Manages the team and its workspaces.
    Admin,
    /// Owns and uses workspaces.
    #[default]
    Member,
    /// Reads workspaces.
    Viewer,
}

/// Defaults for the team's workspaces.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceDefaults {
    /// The agent set of a workspace that declares none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentSpec>,
    /// The auto-sleep policy of a workspace that declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_sleep: Option<AutoSleepPolicy>,
}
