//! `Workspace`: one persistent, shared codebase with its agents, and the policies its
//! runtime instance runs under (session, locks, sync, auto-sleep).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Duration;
use crate::agent::{AgentSpec, Credentials};
use crate::defaults;
use crate::quantity::Quantity;

/// Desired state of a Workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// The user who owns the workspace; names its folder in the bucket.
    pub owner: String,
    /// How long a session lasts and whether it may be renewed.
    #[serde(default)]
    pub session: SessionPolicy,
    /// What the runtime instance may use.
    #[serde(default)]
    pub resources: Resources,
    /// The code the agents work on.
    #[serde(default)]
    pub projects: Vec<Project>,
    /// The agents; the team's `workspaceDefaults.agents` when empty.
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// File lock leases.
    #[serde(default)]
    pub locks: LockPolicy,
    /// How often state ships to the bucket.
    #[serde(default)]
    pub sync: SyncPolicy,
    /// When the workspace sleeps; the team's default, then the built-in one, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_sleep: Option<AutoSleepPolicy>,
    /// The bearer token clients present to the workspace API; generated at start (and
    /// written 0600 under the workspace folder) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<Credentials>,
    /// Tasks queued once, when the workspace first starts (a demo, a bootstrap); a task
    /// added later is queued at the next start, one already queued never again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<SeedTask>,
}

/// A task the spec queues (see `WorkspaceSpec::tasks`); routed like a submitted task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedTask {
    /// Short title; it also identifies the task, so titles are unique in a spec.
    pub title: String,
    /// What to do, when the title does not say it all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prompt: String,
    /// The agent to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Else the least busy agent holding this role (else the least busy agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
}

/// Session length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionPolicy {
    /// Longest a session lasts before it must be renewed (at most 24h).
    #[serde(default = "defaults::session_max_duration")]
    pub max_duration: Duration,
    /// Whether a session may be renewed before it expires.
    #[serde(default = "defaults::yes")]
    pub renewable: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            max_duration: defaults::session_max_duration(),
            renewable: true,
        }
    }
}

/// Compute and storage for the runtime instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (`2`, `500m`).
    #[serde(default = "defaults::cpu")]
    pub cpu: Quantity,
    /// Memory (`4Gi`).
    #[serde(default = "defaults::memory")]
    pub memory: Quantity,
    /// Local disk for databases and projects (`20Gi`).
    #[serde(default = "defaults::storage")]
    pub storage: Quantity,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: defaults::cpu(),
            memory: defaults::memory(),
            storage: defaults::storage(),
        }
    }
}

/// A project checked out into the workspace: exactly one of `git` or `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Project {
    /// The project's folder name under `projects/` (a DNS-1123 label).
    pub name: String,
    /// A git repository to clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// A local folder to copy (relative to the manifest's folder, or absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A git repository and the ref to check out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSource {
    /// Clone URL (https, ssh or file).
    pub url: String,
    /// Branch, tag or commit.
    #[serde(rename = "ref", default = "defaults::git_ref")]
    pub git_ref: String,
}

/// File lock leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockPolicy {
    /// How long a lease lasts without renewal; a crashed holder's lock expires after it.
    #[serde(default = "defaults::lease_ttl")]
    pub lease_ttl: Duration,
    /// How long an acquire waits in line before it fails naming the holder.
    #[serde(default = "defaults::acquire_timeout")]
    pub acquire_timeout: Duration,
}

impl Default for LockPolicy {
    fn default() -> Self {
        LockPolicy {
            lease_ttl: defaults::lease_ttl(),
            acquire_timeout: defaults::acquire_timeout(),
        }
    }
}

/// How often state ships to the bucket (each at least 1s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncPolicy {
    /// SQLite changes.
    #[serde(default = "defaults::databases_interval")]
    pub databases_interval: Duration,
    /// Event log segments.
    #[serde(default = "defaults::events_interval")]
    pub events_interval: Duration,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            databases_interval: defaults::databases_interval(),
            events_interval: defaults::events_interval(),
        }
    }
}

/// When an idle workspace is put to sleep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoSleepPolicy {
    /// Whether the workspace sleeps at all.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Sleep after this long idle (no client, no task, no model call in flight).
    #[serde(default = "defaults::idle_after")]
    pub idle_after: Duration,
    /// Windows in which the workspace is kept awake even when idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Free the local disk of the sleeping workspace once its bucket copy is verified (the
    /// next wake restores it from the bucket). Off by default: a wake from local disk is
    /// tens of milliseconds, a restore grows with the workspace's size.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free_local_disk: bool,
}

impl Default for AutoSleepPolicy {
    fn default() -> Self {
        AutoSleepPolicy {
            enabled: true,
            idle_after: defaults::idle_after(),
            schedule: None,
            free_local_disk: false,
        }
    }
}

/// Keep-awake windows in a time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// IANA time zone name, e.g. `Europe/Berlin`.
    #[serde(default = "defaults::timezone")]
    pub timezone: String,
    /// The windows.
    pub keep_awake: Vec<Window>,
}

/// A daily window on some weekdays, `from` before `to`, as `HH:MM`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Window {
    /// The weekdays the window applies to.
    pub days: Vec<Weekday>,
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM`.
    pub to: String,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}
