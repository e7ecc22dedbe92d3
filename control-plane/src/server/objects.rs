//! The object routes: apply, list, watch, get, delete and reconcile events, each
//! authorized against the caller's roles. Lists and watches show only what the caller
//! may read; an object of an organization the caller has no role in is "not found", not
//! "forbidden", so its existence is not told either.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use coditect_specs::{Kind, ObjectKey, Resource};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ServerState, authorize, bad_request, not_found, record};
use crate::access::http::Refusal;
use crate::access::{Denial, Identity, Outcome, Subject, Verb};
use crate::apply::{ApplyError, check, parse, prune_set};
use crate::error::StoreError;
use crate::reconcile::PURGE_ANNOTATION;
use crate::selector::LabelSelector;
use crate::store::Store;

fn kind_of(plural: &str) -> Result<Kind, ApiError> {
    plural
        .parse()
        .map_err(|e: coditect_specs::resource::UnknownKind| not_found(e))
}

#[derive(Debug, Deserialize)]
pub(super) struct ApplyBody {
    objects: Vec<Value>,
    #[serde(default, rename = "dryRun")]
    pub(crate) dry_run: bool,
    #[serde(default)]
    prune: Option<String>,
}

/// `POST /apis/coditect.io/v1/apply`: every object validated and authorized before any is
/// written; a change (or a refusal of one) goes to the audit trail before the answer.
pub(super) async fn apply(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Json(body): Json<ApplyBody>,
) -> Result<Json<Value>, ApiError> {
    let dry_run = body.dry_run;
    let outcome = apply_objects(&s, &who, body).await;
    if !dry_run {
        let (result, objects, detail) = match &outcome {
            Ok(v) => (Outcome::Ok, applied_keys(v), None),
            Err((objects, e)) => (e.outcome(), objects.clone(), Some(e.reason())),
        };
        record(&s, &who, "apply", objects, result, detail).await?;
    }
    outcome.map(Json).map_err(|(_, e)| e.into())
}

/// Why an apply did not happen, with what the audit trail says of it.
enum Refused {
    Invalid(Vec<crate::apply::ObjectViolation>),
    Denied(Vec<Denial>),
    Other(ApiError),
}

impl Refused {
    fn outcome(&self) -> Outcome {
        match self {
            Refused::Denied(_) => Outcome::Denied,
            _ => Outcome::Failed,
        }
    }

    fn reason(&self) -> String {
        match self {
            Refused::Invalid(v) => format!("{} problem(s) in the objects", v.len()),
            Refused::Denied(d) => d
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Refused::Other(_) => "refused".into(),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Invalid(violations) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "invalid", "reason": format!("{} problem(s); nothing was changed", violations.len()), "violations": violations}),
            ),
            Refused::Denied(denials) => Refusal::Forbidden(denials).into(),
            Refused::Other(e) => e,
        }
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Other(e.into())
    }
}

fn applied_keys(v: &Value) -> Vec<String> {
    let results = v["results"].as_array().into_iter().flatten();
    let pruned = v["pruned"].as_array().into_iter().flatten();
    results
        .filter(|r| r["action"] != "unchanged")
        .filter_map(|r| r["key"].as_str().map(str::to_string))
        .chain(pruned.filter_map(|p| p.as_str().map(|k| format!("{k} (pruned)"))))
        .collect()
}

async fn apply_objects(
    s: &ServerState,
    who: &Identity,
    body: ApplyBody,
) -> Result<Value, (Vec<String>, Refused)> {
    let prune = body
        .prune
        .as_deref()
        .map(LabelSelector::parse)
        .transpose()
        .map_err(|e| (Vec::new(), Refused::Other(bad_request(e))))?;
    let parsed = match parse(body.objects) {
        Ok(r) => r,
        Err(ApplyError::Invalid(v)) => return Err((Vec::new(), Refused::Invalid(v))),
        Err(ApplyError::Store(e)) => return Err((Vec::new(), e.into())),
    };
    let keys: Vec<String> = parsed.iter().map(|r| r.key().to_string()).collect();
    let fail = |e: Refused| (keys.clone(), e);
    let policy = s.access.policy(&s.store);
    let mut denials = Vec::new();
    for r in &parsed {
        let key = r.key();
        let exists = s.store.get(&key).map_err(|e| fail(e.into()))?.is_some();
        let verb = if exists { Verb::Update } else { Verb::Create };
        // An update must be allowed on the object as it is and as it would be (a member
        // may not hand their workspace to someone else's name, nor take another's).
        let mut subjects = vec![Subject::of(r)];
        if exists {
            subjects.push(policy.subject(&key));
        }
        denials.extend(
            subjects
                .iter()
                .filter_map(|sub| policy.decide(who, verb, sub).err()),
        );
    }
    if !denials.is_empty() {
        denials.dedup();
        return Err(fail(Refused::Denied(denials)));
    }
    let resources = match check(&s.store, parsed) {
        Ok(r) => r,
        Err(ApplyError::Invalid(v)) => return Err(fail(Refused::Invalid(v))),
        Err(ApplyError::Store(e)) => return Err(fail(e.into())),
    };
    let mut doomed = Vec::new();
    if let Some(selector) = prune.filter(|p| !p.is_empty()) {
        for key in prune_set(&s.store, &resources, &selector).map_err(|e| fail(e.into()))? {
            let subject = policy.subject(&key);
            // Objects the caller cannot see are not theirs to prune.
            if policy.decide(who, Verb::Read, &subject).is_err() {
                continue;
            }
            if let Err(d) = policy.decide(who, Verb::Delete, &subject) {
                denials.push(d);
            }
            doomed.push(key);
        }
    }
    if !denials.is_empty() {
        return Err(fail(Refused::Denied(denials)));
    }
    let results = s
        .store
        .apply(&resources, body.dry_run)
        .map_err(|e| fail(e.into()))?;
    let mut pruned = Vec::new();
    for key in doomed {
        if !body.dry_run {
            delete_object(&s.store, &key, false).map_err(|e| fail(e.into()))?;
        }
        pruned.push(key.to_string());
    }
    Ok(json!({"results": results, "pruned": pruned, "dryRun": body.dry_run}))
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default, rename = "labelSelector")]
    label_selector: Option<String>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    watch: Option<String>,
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<u64>,
}

/// `GET /apis/coditect.io/v1/{plural}`: a list, or a watch, of what the caller may read.
pub(super) async fn list(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(plural): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&plural)?;
    let selector =
        LabelSelector::parse(q.label_selector.as_deref().unwrap_or("")).map_err(bad_request)?;
    if q.watch.as_deref().is_some_and(|w| w == "true" || w == "1") {
        let (access, store) = (s.access.clone(), s.store.clone());
        let visible = move |r: &Resource| {
            access
                .policy(&store)
                .decide(&who, Verb::Read, &Subject::of(r))
                .is_ok()
        };
        return Ok(crate::watch::stream(
            s.store.clone(),
            kind,
            q.organization,
            selector,
            q.resource_version.unwrap_or(0),
            Box::new(visible),
        ));
    }
    let rv = s.store.resource_version();
    let policy = s.access.policy(&s.store);
    let items: Vec<Resource> = s
        .store
        .list(Some(kind), q.organization.as_deref(), &selector)?
        .into_iter()
        .filter(|r| policy.decide(&who, Verb::Read, &Subject::of(r)).is_ok())
        .collect();
    Ok(Json(json!({
        "apiVersion": coditect_specs::API_VERSION,
        "kind": format!("{}List", kind.as_str()),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    }))
    .into_response())
}

pub(super) fn get_one(
    s: &ServerState,
    who: &Identity,
    key: &ObjectKey,
) -> Result<Json<Resource>, ApiError> {
    let object = s.store.get(key)?.ok_or_else(|| not_found(key))?;
    let policy = s.access.policy(&s.store);
    authorize(&policy, who, Verb::Read, key)?;
    Ok(Json(object))
}

pub(super) async fn get_org(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Json<Resource>, ApiError> {
    get_one(&s, &who, &org_key(name))
}

pub(super) async fn get_scoped(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path((org, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Resource>, ApiError> {
    let key = ObjectKey {
        kind: kind_of(&plural)?,
        organization: Some(org),
        name,
    };
    get_one(&s, &who, &key)
}

fn org_key(name: String) -> ObjectKey {
    ObjectKey {
        kind: Kind::Organization,
        organization: None,
        name,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeleteQuery {
    /// Remove the workspace's data folder and bucket copy too.
    #[serde(default)]
    purge: bool,
    /// Check (authorization, preconditions) and change nothing, like kubectl's
    /// `--dry-run=server`.
    #[serde(default, rename = "dryRun")]
    pub(crate) dry_run: bool,
}

pub(super) async fn delete_org(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = org_key(name.clone());
    let q = DeleteQuery { purge: false, ..q };
    audited_delete(&s, &who, &key, &q, || {
        let inside = s.store.list(None, Some(&name), &LabelSelector::default())?;
        if !inside.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                json!({"error": "conflict", "reason": format!("{key} still holds {} team(s) and workspace(s); delete them first", inside.len())}),
            ));
        }
        Ok(())
    })
    .await
}

pub(super) async fn delete_scoped(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path((org, plural, name)): Path<(String, String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = ObjectKey {
        kind: kind_of(&plural)?,
        organization: Some(org.clone()),
        name: name.clone(),
    };
    audited_delete(&s, &who, &key, &q, || {
        if key.kind != Kind::Team {
            return Ok(());
        }
        let members = s
            .store
            .list(Some(Kind::Workspace), Some(&org), &LabelSelector::default())?;
        let n = members
            .iter()
            .filter(|w| w.metadata().team.as_deref() == Some(name.as_str()))
            .count();
        if n > 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                json!({"error": "conflict", "reason": format!("{key} still has {n} workspace(s); delete them first")}),
            ));
        }
        Ok(())
    })
    .await
}

/// A delete: authorized, `precondition` checked, carried out, and audited whatever the
/// outcome (once the caller is known to be allowed to see the object). A dry run stops
/// before the change and leaves no record.
pub(super) async fn audited_delete(
    s: &ServerState,
    who: &Identity,
    key: &ObjectKey,
    q: &DeleteQuery,
    precondition: impl FnOnce() -> Result<(), ApiError>,
) -> Result<Json<Value>, ApiError> {
    let (purge, dry_run) = (q.purge, q.dry_run);
    if s.store.get(key)?.is_none() {
        return Err(not_found(key));
    }
    let policy = s.access.policy(&s.store);
    let denial = policy
        .decide(who, Verb::Delete, &policy.subject(key))
        .err()
        .map(|d| d.to_string());
    let outcome = authorize(&policy, who, Verb::Delete, key)
        .map_err(|e| (Outcome::Denied, e))
        .and_then(|()| precondition().map_err(|e| (Outcome::Failed, e)))
        .and_then(|()| {
            if dry_run {
                return Ok(());
            }
            match delete_object(&s.store, key, purge) {
                Ok(true) => Ok(()),
                Ok(false) => Err((Outcome::Failed, not_found(key))),
                Err(e) => Err((Outcome::Failed, e.into())),
            }
        });
    let (result, detail) = match &outcome {
        Ok(()) => (Outcome::Ok, purge.then(|| "purge".to_string())),
        Err((Outcome::Denied, _)) => (Outcome::Denied, denial),
        Err((o, e)) => (*o, Some(format!("answered {}", e.status()))),
    };
    // A denial of an object the caller cannot see is a 404 and is not worth a record;
    // a dry run changes nothing.
    let hidden = matches!(&outcome, Err((Outcome::Denied, e)) if e.is_not_found());
    if !hidden && !dry_run {
        record(s, who, "delete", vec![key.to_string()], result, detail).await?;
    }
    outcome.map_err(|(_, e)| e)?;
    Ok(Json(
        json!({"deleted": key.to_string(), "purge": purge, "dryRun": dry_run}),
    ))
}

/// Marks an object for deletion (its finalizers then run). Returns whether it existed.
fn delete_object(store: &Store, key: &ObjectKey, purge: bool) -> Result<bool, StoreError> {
    if purge {
        store.update(key, |r| {
            r.metadata_mut()
                .annotations
                .insert(PURGE_ANNOTATION.to_string(), "true".to_string());
        })?;
    }
    store.delete(key)
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    kind: String,
    #[serde(default)]
    organization: Option<String>,
    name: String,
}

pub(super) async fn events(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = ObjectKey {
        kind: kind_of(&q.kind)?,
        organization: q.organization,
        name: q.name,
    };
    let policy = s.access.policy(&s.store);
    authorize(&policy, &who, Verb::Read, &key)?;
    Ok(Json(json!({"items": s.store.events(&key, 20)?})))
}
