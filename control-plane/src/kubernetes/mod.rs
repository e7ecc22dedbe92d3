//! Running on Kubernetes: the same kinds as CustomResourceDefinitions, the same reconcile
//! rules over a store that is the Kubernetes API ([`store::KubeStore`]) and a driver that
//! runs each workspace as a one-replica StatefulSet ([`driver::KubeDriver`]).
//!
//! How our objects map onto Kubernetes (see [`mapping`]):
//!
//! | coditect | Kubernetes |
//! | --- | --- |
//! | Organization `acme` | cluster-scoped `Organization` `acme`, and the Namespace `acme` |
//! | `metadata.organization: acme` (Team, Workspace) | `metadata.namespace: acme` |
//! | `metadata.team: platform` (Workspace) | label `coditect.io/team: platform` |
//! | spec, status, labels, annotations | the same fields |
//!
//! A namespace per organization is what Kubernetes isolates by: RBAC, quotas, the
//! organization's ServiceAccount (Workload Identity), its Secrets.

pub mod crd;
pub mod driver;
pub mod gateway;
pub mod mapping;
#[cfg(feature = "testkit")]
pub mod mock;
pub mod operator;
pub mod store;
pub mod tokens;
pub mod workload;

/// The API group of our kinds.
pub const GROUP: &str = "coditect.io";
/// The version of our kinds.
pub const VERSION: &str = "v1";
/// The field manager of every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "coditect";
/// The label that carries a Workspace's team (Kubernetes has no team in `metadata`).
pub const TEAM_LABEL: &str = "coditect.io/team";
/// The label every object the operator makes for a workspace carries: its name.
pub const WORKSPACE_LABEL: &str = "coditect.io/workspace";
