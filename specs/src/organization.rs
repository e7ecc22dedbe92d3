//! `Organization`: the tenant. Owns the storage bucket every workspace of it syncs to,
//! the quotas the control plane enforces on apply, and a monthly budget for cost reports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::defaults;

/// Desired state of an Organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationSpec {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Users who manage everything in the organization: its spec, every team and every
    /// workspace (access control reads this; tokens name users).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    /// Where workspaces of this organization keep their durable state.
    #[serde(default)]
    pub storage: StorageSpec,
    /// Limits the control plane enforces on apply and on wake.
    #[serde(default)]
    pub quotas: Quotas,
    /// Monthly budget, for cost reports and alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// The organization's bucket and optional hot mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSpec {
    /// `gs://bucket[/prefix]`, `file:///absolute/path`, or `file:relative/path` (relative
    /// to the control plane's data directory; the embedded default).
    #[serde(default = "defaults::bucket")]
    pub bucket: String,
    /// A second bucket that receives every upload too, for fast restores elsewhere:
    /// `s3://bucket[/prefix]` (an S3-compatible service such as Cloudflare R2), or a
    /// bucket URL like `bucket`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// How to reach an `s3://` mirror; without it the instance reads the AWS SDKs'
    /// variables (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_access: Option<MirrorAccess>,
}

/// The annotation that carries an organization's [`MirrorAccess`] (as JSON: credential
/// references, never their values) to its workspaces' instances.
pub const MIRROR_ACCESS_ANNOTATION: &str = "coditect.io/mirror-access";

/// How to reach an S3-compatible mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MirrorAccess {
    /// The service's endpoint, e.g. `https://ACCOUNT.r2.cloudflarestorage.com`.
    pub endpoint: String,
    /// The region requests are signed for (`auto` for R2).
    #[serde(default = "defaults::mirror_region")]
    pub region: String,
    /// The access key id (give both keys or neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<crate::agent::Credentials>,
    /// The secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<crate::agent::Credentials>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            bucket: defaults::bucket(),
            mirror: None,
            mirror_access: None,
        }
    }
}

/// Workspace quotas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    /// Workspaces that may exist in the organization.
    #[serde(default = "defaults::max_workspaces")]
    pub max_workspaces: u32,
    /// Workspaces that may be awake at once; the rest sleep.
    #[serde(default = "defaults::max_awake_workspaces")]
    pub max_awake_workspaces: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_workspaces: defaults::max_workspaces(),
            max_awake_workspaces: defaults::max_awake_workspaces(),
        }
    }
}

/// A monthly budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// Monthly spend limit in US dollars.
    pub monthly_usd: u32,
    /// Percentage of the budget at which an alert condition is raised.
    #[serde(default = "defaults::budget_alert_percent")]
    pub alert_at_percent: u8,
}
