//! Kubernetes-style object metadata and status conditions shared by every kind.
//!
//! `metadata.organization` and `metadata.team` scope a Team or Workspace the way a
//! namespace scopes a Kubernetes object. The server-owned fields (`generation`,
//! `resourceVersion`, `uid`, timestamps, `finalizers`) are accepted in manifests so that
//! `get -o yaml | apply -f -` works, and ignored on apply.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Metadata of a resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// The object's name, a DNS-1123 label, unique within its scope.
    pub name: String,
    /// The organization a Team or Workspace belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The team a Workspace belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Labels for selection (`-l key=value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations for tools.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Server-set: bumped on every change of `spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Server-set: opaque version for optimistic concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Server-set: unique id of this incarnation of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Server-set: RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Server-set: RFC 3339 time deletion was requested; finalizers then run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Server-set: what must happen before the object may disappear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// One observed condition (`Ready`, `Progressing`, `Degraded`), as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The condition's name, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase machine-readable reason.
    #[serde(default)]
    pub reason: String,
    /// A human-readable explanation.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time the status last changed.
    #[serde(default)]
    pub last_transition_time: String,
    /// The generation this condition was observed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Status common to Organization and Team: conditions and a roll-up of their workspaces.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollupStatus {
    /// The generation this status describes; trust it only when equal to `generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observed conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Workspaces in scope that are Ready.
    #[serde(default)]
    pub workspaces_ready: u32,
    /// Workspaces in scope.
    #[serde(default)]
    pub workspaces_total: u32,
}

/// Observed state of a Workspace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceStatus {
    /// The generation this status describes; trust it only when equal to `generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observed conditions (`Ready`, `Progressing`, `Degraded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// A one-word summary: Pending, Starting, Running, Stopping (going to sleep), Asleep,
    /// Waking, Terminating, Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Where the runtime instance answers (`http://127.0.0.1:PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// RFC 3339 time the current session expires unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<String>,
    /// Hash of the spec the running instance was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// Seconds the bucket is behind the instance: since the oldest change not yet
    /// durable in the bucket, 0 when everything is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_lag_seconds: Option<f64>,
    /// The bucket the instance syncs to (`file:///…` or `gs://…`); `coditect backup`
    /// reads it from here when the instance is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The bucket's hot mirror (`s3://…`), when the organization has one; `coditect
    /// backup --from mirror` reads it from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Seconds the mirror is behind the bucket (0 when it holds the newest manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_lag_seconds: Option<f64>,
    /// Present while the workspace is to sleep (or sleeps): why, by whom, since when.
    /// Cleared by a wake (by hand, or a client connecting through the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<SleepStatus>,
    /// The last client request the instance saw (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<String>,
    /// Why an awake workspace is not put to sleep, as auto-sleep last judged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awake_because: Option<String>,
}

/// Why and since when a workspace sleeps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SleepStatus {
    /// Why it was put to sleep (`idle for 30m`, `by hand`).
    pub reason: String,
    /// Who asked (a user, or `auto-sleep`).
    pub by: String,
    /// When it was asked (RFC 3339).
    pub requested_at: String,
    /// When the instance stopped (RFC 3339); absent while it is still stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asleep_since: Option<String>,
    /// Why it is not asleep yet, when something holds it (unsaved work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}
