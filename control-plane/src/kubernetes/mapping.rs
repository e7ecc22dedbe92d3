//! Our objects as Kubernetes objects and back: an organization is a namespace (and a
//! cluster-scoped Organization), `metadata.organization` is `metadata.namespace`, and a
//! workspace's team is the label `coditect.io/team`. Everything else — spec, status,
//! labels, annotations, finalizers — has the same name on both sides.

use coditect_specs::{Kind, Resource};
use serde_json::{Map, Value, json};

use super::{GROUP, TEAM_LABEL, VERSION};

/// Why a Kubernetes object is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Not a kind of ours.
    #[error("{0} is not a coditect.io kind")]
    Kind(String),
    /// A Team or Workspace outside a namespace.
    #[error("{kind} {name} has no namespace (its organization)")]
    NoNamespace {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// The object does not fit our types.
    #[error("{0}")]
    Invalid(String),
}

/// The `apiVersion` of our kinds on Kubernetes (the same as ours).
pub fn api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

/// The namespace of an organization.
pub fn namespace(organization: &str) -> String {
    organization.to_string()
}

/// Server-set fields of Kubernetes' `metadata` that have no place in ours.
const KUBERNETES_ONLY: [&str; 5] = [
    "managedFields",
    "ownerReferences",
    "selfLink",
    "deletionGracePeriodSeconds",
    "generateName",
];

/// The annotation `kubectl apply` keeps; not ours to carry.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `r` as the object `kubectl apply -f` takes: namespaced by its organization, its team
/// as a label, and without what the server sets.
pub fn to_kubernetes(r: &Resource) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    let Some(obj) = v.as_object_mut() else {
        return Value::Null;
    };
    obj.remove("status");
    let meta = r.metadata();
    let mut m = Map::new();
    m.insert("name".into(), json!(meta.name));
    if !r.kind().is_cluster_scoped()
        && let Some(org) = &meta.organization
    {
        m.insert("namespace".into(), json!(namespace(org)));
    }
    let mut labels = meta.labels.clone();
    if let Some(team) = &meta.team {
        labels.insert(TEAM_LABEL.into(), team.clone());
    }
    if !labels.is_empty() {
        m.insert("labels".into(), json!(labels));
    }
    if !meta.annotations.is_empty() {
        m.insert("annotations".into(), json!(meta.annotations));
    }
    obj.insert("metadata".into(), Value::Object(m));
    v
}

/// The Namespace an organization's objects live in.
pub fn namespace_object(organization: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace(organization),
            "labels": {"app.kubernetes.io/managed-by": "coditect", "coditect.io/organization": organization},
        },
    })
}

/// What `kubectl apply -f` takes for `resources`: each organization's Namespace first,
/// then the objects (Organizations, Teams, Workspaces in that order).
pub fn manifests(resources: &[Resource]) -> Vec<Value> {
    let mut orgs: Vec<String> = resources
        .iter()
        .filter_map(|r| match r.kind() {
            Kind::Organization => Some(r.metadata().name.clone()),
            Kind::Migration => None,
            _ => r.metadata().organization.clone(),
        })
        .collect();
    orgs.sort();
    orgs.dedup();
    let mut out: Vec<Value> = orgs.iter().map(|o| namespace_object(o)).collect();
    for kind in Kind::ALL {
        out.extend(
            resources
                .iter()
                .filter(|r| r.kind() == kind)
                .map(to_kubernetes),
        );
    }
    out
}

/// A Kubernetes object of one of our kinds as ours (spec defaults filled in by serde).
///
/// # Errors
/// Not one of our kinds, a Team or Workspace without a namespace, or a body that does
/// not fit the types.
pub fn from_kubernetes(object: &Value) -> Result<Resource, MappingError> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind)
        .ok_or_else(|| MappingError::Kind(kind.to_string()))?;
    let mut v = object.clone();
    let name = v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(MappingError::Invalid(format!("{name}: no metadata")));
    };
    let ns = meta.remove("namespace");
    for k in KUBERNETES_ONLY {
        meta.remove(k);
    }
    if !kind.is_cluster_scoped() {
        let Some(ns) = ns.and_then(|n| n.as_str().map(str::to_string)) else {
            return Err(MappingError::NoNamespace {
                kind: kind.as_str().into(),
                name,
            });
        };
        meta.insert("organization".into(), json!(ns));
    }
    if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut)
        && let Some(team) = labels.remove(TEAM_LABEL)
        && kind == Kind::Workspace
    {
        meta.insert("team".into(), team);
    }
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove(LAST_APPLIED);
    }
    // Kubernetes' resourceVersion is a string already; generation a number: both fit.
    v["apiVersion"] = json!(coditect_specs::API_VERSION);
    Resource::from_trusted_json(v)
        .map_err(|e| MappingError::Invalid(format!("{} {name}: {e}", kind.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<Resource> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/examples");
        coditect_specs::load_effective(&dir, false, &coditect_specs::Catalog::default())
            .unwrap()
            .into_iter()
            .map(|d| d.resource)
            .collect()
    }

    #[test]
    fn the_examples_come_back_as_they_went_with_the_organization_as_namespace() {
        let all = examples();
        let out = manifests(&all);
        assert_eq!(out[0]["kind"], "Namespace");
        assert_eq!(out[0]["metadata"]["name"], "acme");
        let ws = out
            .iter()
            .find(|o| o["metadata"]["name"] == "alice-main")
            .unwrap();
        assert_eq!(ws["metadata"]["namespace"], "acme");
        assert_eq!(ws["metadata"]["labels"][TEAM_LABEL], "platform");
        assert!(ws["metadata"].get("organization").is_none());
        let org = out.iter().find(|o| o["kind"] == "Organization").unwrap();
        assert!(org["metadata"].get("namespace").is_none(), "cluster-scoped");
        for r in &all {
            let mut k = to_kubernetes(r);
            // What the API server adds on the way.
            k["metadata"]["uid"] = json!("0b8f");
            k["metadata"]["generation"] = json!(1);
            k["metadata"]["managedFields"] = json!([{"manager": "kubectl"}]);
            let back = from_kubernetes(&k).unwrap();
            assert_eq!(back.key(), r.key());
            assert_eq!(back.metadata().team, r.metadata().team);
            assert_eq!(back.metadata().labels, r.metadata().labels);
            assert_eq!(back.metadata().generation, Some(1));
            assert_eq!(
                coditect_specs::spec_hash(&back),
                coditect_specs::spec_hash(r),
                "{}",
                r.key()
            );
        }
    }

    #[test]
    fn a_workspace_outside_a_namespace_or_a_foreign_kind_is_refused_with_its_name() {
        let ws = json!({"apiVersion": "coditect.io/v1", "kind": "Workspace", "metadata": {"name": "w"}, "spec": {"owner": "a"}});
        assert_eq!(
            from_kubernetes(&ws).unwrap_err().to_string(),
            "Workspace w has no namespace (its organization)"
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(
            from_kubernetes(&pod).unwrap_err().to_string(),
            "Pod is not a coditect.io kind"
        );
    }
}
