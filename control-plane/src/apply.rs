//! Planning an apply on the server: every object is checked as the CLI checks a file
//! (schema, per-object rules), then as a set against what the store holds (duplicates,
//! references, quotas), then defaulted. Problems come back with the index of the object and
//! the field path, so a client holding the source files can print file:line:column.

use std::collections::BTreeMap;

use coditect_specs::validate::check_objects;
use coditect_specs::{Catalog, Kind, ObjectKey, Resource, Violation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::selector::LabelSelector;
use crate::store::Store;

/// A problem with one object of an apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectViolation {
    /// Which object (its index in the request).
    pub index: usize,
    /// The field path inside it.
    pub path: String,
    /// Point at the key rather than the value.
    #[serde(rename = "atKey")]
    pub at_key: bool,
    /// What is wrong.
    pub message: String,
}

impl ObjectViolation {
    fn new(index: usize, v: Violation) -> Self {
        ObjectViolation {
            index,
            path: v.path.to_string(),
            at_key: v.at_key,
            message: v.message,
        }
    }
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Objects are invalid; nothing was written.
    #[error("{} problem(s) in the applied objects", .0.len())]
    Invalid(Vec<ObjectViolation>),
    /// The store refused or failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates and defaults the objects of an apply against the store.
///
/// # Errors
/// [`ApplyError::Invalid`] with every problem found.
pub fn plan(store: &Store, objects: Vec<Value>) -> Result<Vec<Resource>, ApplyError> {
    check(store, parse(objects)?)
}

/// Reads each object on its own (schema, per-object rules), without the store: what
/// access control needs to know who an apply touches.
///
/// # Errors
/// [`ApplyError::Invalid`] with every problem found.
pub fn parse(objects: Vec<Value>) -> Result<Vec<Resource>, ApplyError> {
    let mut problems = Vec::new();
    let mut resources = Vec::new();
    for (i, value) in objects.into_iter().enumerate() {
        match coditect_specs::from_value(value) {
            Ok(r) => {
                problems.extend(
                    coditect_specs::validate::check_document(&r)
                        .into_iter()
                        .map(|v| ObjectViolation::new(i, v)),
                );
                resources.push(r);
            }
            Err(vs) => problems.extend(vs.into_iter().map(|v| ObjectViolation::new(i, v))),
        }
    }
    if !problems.is_empty() {
        return Err(ApplyError::Invalid(problems));
    }
    Ok(resources)
}

/// Checks parsed objects as a set against what the store holds (duplicates, references,
/// quotas), then fills in their defaults.
///
/// # Errors
/// [`ApplyError::Invalid`] with every problem found.
pub fn check(store: &Store, mut resources: Vec<Resource>) -> Result<Vec<Resource>, ApplyError> {
    let mut problems = Vec::new();
    let catalog = Catalog::new(store.list(None, None, &LabelSelector::default())?);
    let refs: Vec<&Resource> = resources.iter().collect();
    problems.extend(check_objects(&refs, &catalog).into_iter().map(|p| {
        let mut v = p.violation;
        if let Some(first) = p.duplicate_of {
            v.message
                .push_str(&format!(" (first declared as object {first})"));
        }
        ObjectViolation::new(p.index, v)
    }));
    problems.extend(quota_violations(&resources, &catalog));
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.index);
        return Err(ApplyError::Invalid(problems));
    }
    coditect_specs::apply_defaults_objects(&mut resources, &catalog);
    Ok(resources)
}

/// Workspaces beyond an organization's `spec.quotas.maxWorkspaces`.
fn quota_violations(objects: &[Resource], catalog: &Catalog) -> Vec<ObjectViolation> {
    let mut count: BTreeMap<String, u32> = BTreeMap::new();
    for r in catalog.iter() {
        if let (Resource::Workspace(_), Some(org)) = (r, r.metadata().organization.as_ref()) {
            *count.entry(org.clone()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (i, r) in objects.iter().enumerate() {
        let Resource::Workspace(_) = r else { continue };
        let Some(org) = r.metadata().organization.clone() else {
            continue;
        };
        if catalog.get(&r.key()).is_some() {
            continue; // already counted
        }
        let org_key = ObjectKey {
            kind: Kind::Organization,
            organization: None,
            name: org.clone(),
        };
        let org_spec = objects
            .iter()
            .find(|o| o.key() == org_key)
            .or_else(|| catalog.get(&org_key));
        let Some(Resource::Organization(o)) = org_spec else {
            continue;
        };
        let n = count.entry(org.clone()).or_default();
        *n += 1;
        let max = o.spec.quotas.max_workspaces;
        if *n > max {
            out.push(ObjectViolation::new(
                i,
                Violation::at(
                    coditect_specs::located::FieldPath::parse("metadata.name"),
                    format!("quota exceeded: organization {org:?} allows {max} workspaces (spec.quotas.maxWorkspaces); this apply would make {n}"),
                ),
            ));
        }
    }
    out
}

/// Keys of objects matching `selector` that an apply of `applied` would prune.
///
/// # Errors
/// Storage failures.
pub fn prune_set(
    store: &Store,
    applied: &[Resource],
    selector: &LabelSelector,
) -> Result<Vec<ObjectKey>, StoreError> {
    let keep: Vec<ObjectKey> = applied.iter().map(Resource::key).collect();
    Ok(store
        .list(None, None, selector)?
        .into_iter()
        .map(|r| r.key())
        .filter(|k| !keep.contains(k))
        .collect())
}
