//! The effective spec: what a manifest means once every default is filled in.
//!
//! Static defaults are filled by serde while parsing ([`crate::defaults`]); this module
//! adds the ones that depend on other fields or documents: a workspace without agents or
//! auto-sleep policy takes its team's `workspaceDefaults`, then the built-in policy; an
//! agent without model, address or credentials takes its provider's. Applying defaults
//! twice changes nothing, and the spec hash is taken over the effective spec, so writing
//! a default out and leaving it implicit are the same apply.

use crate::agent::{AgentSpec, Credentials};
use crate::defaults;
use crate::load::Document;
use crate::resource::{Kind, Resource};
use crate::team::TeamSpec;
use crate::validate::{Catalog, scope_key};
use crate::workspace::AutoSleepPolicy;

/// Fills in every default of `resource`; `team` is the workspace's team, if known.
pub fn apply_defaults(resource: &mut Resource, team: Option<&TeamSpec>) {
    match resource {
        Resource::Organization(_) => {}
        Resource::Migration(m) => m.spec.target.agents.iter_mut().for_each(agent),
        Resource::Team(t) => t.spec.workspace_defaults.agents.iter_mut().for_each(agent),
        Resource::Workspace(w) => {
            if let Some(team) = team {
                if w.spec.agents.is_empty() {
                    w.spec.agents = team.workspace_defaults.agents.clone();
                }
                if w.spec.auto_sleep.is_none() {
                    w.spec.auto_sleep = team.workspace_defaults.auto_sleep.clone();
                }
            }
            if w.spec.auto_sleep.is_none() {
                w.spec.auto_sleep = Some(AutoSleepPolicy::default());
            }
            w.spec.agents.iter_mut().for_each(agent);
        }
    }
}

fn agent(a: &mut AgentSpec) {
    if a.model.is_none() {
        a.model = Some(defaults::model(a.provider).to_string());
    }
    if a.base_url.is_none() {
        a.base_url = defaults::base_url(a.provider).map(str::to_string);
    }
    if a.credentials.is_none() {
        a.credentials = defaults::credentials_env(a.provider).map(|env| Credentials {
            env: Some(env.to_string()),
            secret_ref: None,
        });
    }
}

/// Applies defaults to every document of an apply, finding each workspace's team in the
/// same apply first and in `known` second.
pub fn apply_defaults_all(docs: &mut [Document], known: &Catalog) {
    let mut objects: Vec<Resource> = docs.iter().map(|d| d.resource.clone()).collect();
    apply_defaults_objects(&mut objects, known);
    for (doc, object) in docs.iter_mut().zip(objects) {
        doc.resource = object;
    }
}

/// [`apply_defaults_all`] for objects without source documents (API requests).
pub fn apply_defaults_objects(objects: &mut [Resource], known: &Catalog) {
    let teams: Vec<(crate::ObjectKey, TeamSpec)> = objects
        .iter()
        .filter_map(|r| match r {
            Resource::Team(t) => Some((r.key(), t.spec.clone())),
            _ => None,
        })
        .collect();
    for object in objects.iter_mut() {
        let meta = object.metadata();
        let team = match (meta.organization.as_deref(), meta.team.as_deref()) {
            (Some(org), Some(team)) if object.kind() == Kind::Workspace => {
                let key = scope_key(Kind::Team, Some(org), team);
                teams
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, s)| s.clone())
                    .or_else(|| match known.get(&key) {
                        Some(Resource::Team(t)) => Some(t.spec.clone()),
                        _ => None,
                    })
            }
            _ => None,
        };
        apply_defaults(object, team.as_ref());
    }
}
