//! The four kinds as whole objects (`apiVersion`, `kind`, `metadata`, `spec`, `status`),
//! and [`Resource`], the one type that holds any of them.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

use crate::meta::{ObjectMeta, RollupStatus, WorkspaceStatus};
use crate::migration::{MigrationSpec, MigrationStatus};
use crate::organization::OrganizationSpec;
use crate::team::TeamSpec;
use crate::workspace::WorkspaceSpec;

/// The API group and version of every Coditect kind.
pub const API_VERSION: &str = "coditect.io/v1";

/// A Kubernetes-style object of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object<S, T> {
    /// Always `coditect.io/v1`.
    pub api_version: String,
    /// The kind's name.
    pub kind: String,
    /// Name, scope, labels and server-set fields.
    pub metadata: ObjectMeta,
    /// Desired state.
    pub spec: S,
    /// Observed state; written by the control plane, ignored on apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<T>,
}

/// A tenant.
pub type Organization = Object<OrganizationSpec, RollupStatus>;
/// A group of users in an organization.
pub type Team = Object<TeamSpec, RollupStatus>;
/// A persistent multi-agent workspace.
pub type Workspace = Object<WorkspaceSpec, WorkspaceStatus>;
/// Moving v1 users to v2 workspaces.
pub type Migration = Object<MigrationSpec, MigrationStatus>;

/// The kinds of `coditect.io/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// See [`Organization`].
    Organization,
    /// See [`Team`].
    Team,
    /// See [`Workspace`].
    Workspace,
    /// See [`Migration`].
    Migration,
}

impl Kind {
    /// Every kind, in dependency order (an organization before its teams, a team before
    /// its workspaces, workspaces before a migration that may create more): the order an
    /// apply writes them in.
    pub const ALL: [Kind; 4] = [
        Kind::Organization,
        Kind::Team,
        Kind::Workspace,
        Kind::Migration,
    ];

    /// Whether objects of the kind are unique in the whole control plane rather than in
    /// an organization.
    pub fn is_cluster_scoped(&self) -> bool {
        matches!(self, Kind::Organization | Kind::Migration)
    }

    /// The kind's name as written in `kind:`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Organization => "Organization",
            Kind::Team => "Team",
            Kind::Workspace => "Workspace",
            Kind::Migration => "Migration",
        }
    }

    /// The plural used in API paths and `coditect get`.
    pub fn plural(&self) -> &'static str {
        match self {
            Kind::Organization => "organizations",
            Kind::Team => "teams",
            Kind::Workspace => "workspaces",
            Kind::Migration => "migrations",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a kind name was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}: expected organization, team, workspace or migration")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Accepts the kind, its plural and short names, in any case (`ws`, `orgs`, `Team`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "organization" | "organizations" | "org" | "orgs" => Ok(Kind::Organization),
            "team" | "teams" => Ok(Kind::Team),
            "workspace" | "workspaces" | "ws" => Ok(Kind::Workspace),
            "migration" | "migrations" | "mig" => Ok(Kind::Migration),
            _ => Err(UnknownKind(s.to_string())),
        }
    }
}

/// Any Coditect object.
// Objects are few and handled one at a time; boxing the workspace would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// An organization.
    Organization(Organization),
    /// A team.
    Team(Team),
    /// A workspace.
    Workspace(Workspace),
    /// A migration.
    Migration(Migration),
}

impl Resource {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Organization(_) => Kind::Organization,
            Resource::Team(_) => Kind::Team,
            Resource::Workspace(_) => Kind::Workspace,
            Resource::Migration(_) => Kind::Migration,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Resource::Organization(o) => &o.metadata,
            Resource::Team(o) => &o.metadata,
            Resource::Workspace(o) => &o.metadata,
            Resource::Migration(o) => &o.metadata,
        }
    }

    /// The object's metadata, for the server to set its fields.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Resource::Organization(o) => &mut o.metadata,
            Resource::Team(o) => &mut o.metadata,
            Resource::Workspace(o) => &mut o.metadata,
            Resource::Migration(o) => &mut o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// Where the object is unique: kind, organization (for teams and workspaces), name.
    pub fn key(&self) -> ObjectKey {
        let meta = self.metadata();
        ObjectKey {
            kind: self.kind(),
            organization: if self.kind().is_cluster_scoped() {
                None
            } else {
                meta.organization.clone()
            },
            name: meta.name.clone(),
        }
    }

    /// The spec as JSON (for hashing and diffs).
    pub fn spec_json(&self) -> serde_json::Value {
        let value = match self {
            Resource::Organization(o) => serde_json::to_value(&o.spec),
            Resource::Team(o) => serde_json::to_value(&o.spec),
            Resource::Workspace(o) => serde_json::to_value(&o.spec),
            Resource::Migration(o) => serde_json::to_value(&o.spec),
        };
        // Serializing plain data structs with string keys cannot fail.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// The status as JSON, `null` when none has been written.
    pub fn status_json(&self) -> serde_json::Value {
        let value = match self {
            Resource::Organization(o) => serde_json::to_value(&o.status),
            Resource::Team(o) => serde_json::to_value(&o.status),
            Resource::Workspace(o) => serde_json::to_value(&o.status),
            Resource::Migration(o) => serde_json::to_value(&o.status),
        };
        value.unwrap_or(serde_json::Value::Null)
    }
}

impl Resource {
    /// Reads back an object this system serialized itself (a stored object): kind
    /// dispatch and typed deserialization, without the schema check input gets.
    ///
    /// # Errors
    /// When the JSON is not an object of a known kind.
    pub fn from_trusted_json(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        use serde::de::Error;
        match value.get("kind").and_then(serde_json::Value::as_str) {
            Some("Organization") => Ok(Resource::Organization(serde_json::from_value(value)?)),
            Some("Team") => Ok(Resource::Team(serde_json::from_value(value)?)),
            Some("Workspace") => Ok(Resource::Workspace(serde_json::from_value(value)?)),
            Some("Migration") => Ok(Resource::Migration(serde_json::from_value(value)?)),
            other => Err(serde_json::Error::custom(format!("unknown kind {other:?}"))),
        }
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Resource::Organization(o) => o.serialize(s),
            Resource::Team(o) => o.serialize(s),
            Resource::Workspace(o) => o.serialize(s),
            Resource::Migration(o) => o.serialize(s),
        }
    }
}

/// What identifies an object: `Workspace acme/alice-main`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The organization, for teams and workspaces (none for cluster-scoped kinds).
    pub organization: Option<String>,
    /// The name.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.as_str().to_ascii_lowercase();
        match &self.organization {
            Some(org) => write!(f, "{kind}/{org}/{}", self.name),
            None => write!(f, "{kind}/{}", self.name),
        }
    }
}
