//! The control plane's HTTP API, Kubernetes style, plus the gateway.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /healthz` | liveness |
//! | `GET /readyz?wait_ms=N` | readiness: the first pass over existing objects is done |
//! | `POST /apis/coditect.io/v1/apply` | `{objects, dryRun, prune}`: validate all, write all or nothing |
//! | `GET /apis/coditect.io/v1/{plural}?labelSelector=&organization=` | list |
//! | `GET /apis/coditect.io/v1/{plural}?watch=true&resourceVersion=N` | NDJSON change stream from N |
//! | `GET`/`DELETE /apis/coditect.io/v1/organizations/{name}` | one organization |
//! | `GET`/`DELETE /apis/coditect.io/v1/organizations/{org}/{teams,workspaces}/{name}` | one team or workspace (`?purge=true`) |
//! | `GET /apis/coditect.io/v1/events?kind=&organization=&name=` | reconcile events |
//! | `ANY /w/{org}/{workspace}/…` | the gateway to the workspace's own API |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use coditect_specs::{Kind, ObjectKey, Resource};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::apply::{ApplyError, plan, prune_set};
use crate::error::StoreError;
use crate::reconcile::PURGE_ANNOTATION;
use crate::selector::LabelSelector;
use crate::store::Store;

/// What the server's handlers share.
#[derive(Debug, Clone)]
pub struct ServerState {
    /// The store.
    pub store: Arc<Store>,
    /// True once the controller has reconciled everything that existed at start.
    pub synced: tokio::sync::watch::Receiver<bool>,
    /// For the gateway's proxied requests.
    pub http: reqwest::Client,
}

/// The API and gateway router.
pub fn router(state: ServerState) -> Router {
    let gateway = Router::new()
        .route("/w/{org}/{workspace}", any(crate::gateway::proxy_root))
        .route("/w/{org}/{workspace}/{*rest}", any(crate::gateway::proxy));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .route("/readyz", get(readyz))
        .route("/apis/coditect.io/v1/apply", post(apply))
        .route("/apis/coditect.io/v1/events", get(events))
        .route("/apis/coditect.io/v1/{plural}", get(list))
        .route(
            "/apis/coditect.io/v1/organizations/{name}",
            get(get_org).delete(delete_org),
        )
        .route(
            "/apis/coditect.io/v1/organizations/{org}/{plural}/{name}",
            get(get_scoped).delete(delete_scoped),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY))
        .layer(axum::middleware::from_fn_with_state(
            MAX_API_BODY as u64,
            coditect_runtime::api::declared_limit,
        ))
        // The gateway streams and checks its own limit.
        .merge(gateway)
        .layer(axum::middleware::from_fn_with_state(
            LIMITS,
            coditect_runtime::api::json_refusals,
        ))
        .with_state(state)
}

/// The largest request body of the control plane's own API (an apply of many objects);
/// the gateway's routes stream and have their own limit.
pub const MAX_API_BODY: usize = 16 << 20;

/// What a refused body is told.
const LIMITS: &str = "control-plane API bodies are limited to 16 MiB (16777216 bytes); through the gateway, a workspace's own limits apply (2 MiB, or 256 MiB for a project file)";

/// An API error: status and `{"error", "reason", …}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(
            status,
            json!({"error": if status == StatusCode::CONFLICT { "conflict" } else { "store" }, "reason": e.to_string()}),
        )
    }
}

fn not_found(what: impl std::fmt::Display) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        json!({"error": "not_found", "reason": format!("{what} not found")}),
    )
}

fn bad_request(reason: impl std::fmt::Display) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        json!({"error": "bad_request", "reason": reason.to_string()}),
    )
}

fn kind_of(plural: &str) -> Result<Kind, ApiError> {
    plural
        .parse()
        .map_err(|e: coditect_specs::resource::UnknownKind| not_found(e))
}

#[derive(Debug, Deserialize)]
struct ApplyBody {
    objects: Vec<Value>,
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
    #[serde(default)]
    prune: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReadyQuery {
    /// Wait up to this many milliseconds for readiness.
    #[serde(default)]
    wait_ms: u64,
}

/// `GET /readyz?wait_ms=N`: 200 once the first pass over existing objects is done (every
/// running instance adopted or restarted), else 503 after waiting up to N ms.
async fn readyz(State(s): State<ServerState>, Query(q): Query<ReadyQuery>) -> Response {
    let mut synced = s.synced.clone();
    let wait = std::time::Duration::from_millis(q.wait_ms.min(120_000));
    let ready = tokio::time::timeout(wait, synced.wait_for(|v| *v))
        .await
        .is_ok_and(|r| r.is_ok());
    if ready {
        Json(json!({"ready": true})).into_response()
    } else {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, json!({"ready": false, "reason": "still reconciling the objects that existed at start"})).into_response()
    }
}

/// `POST /apis/coditect.io/v1/apply`.
async fn apply(
    State(s): State<ServerState>,
    Json(body): Json<ApplyBody>,
) -> Result<Json<Value>, ApiError> {
    let prune = body
        .prune
        .as_deref()
        .map(LabelSelector::parse)
        .transpose()
        .map_err(bad_request)?;
    let resources = match plan(&s.store, body.objects) {
        Ok(r) => r,
        Err(ApplyError::Invalid(violations)) => {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "invalid", "reason": format!("{} problem(s); nothing was changed", violations.len()), "violations": violations}),
            ));
        }
        Err(ApplyError::Store(e)) => return Err(e.into()),
    };
    let results = s.store.apply(&resources, body.dry_run)?;
    let mut pruned = Vec::new();
    if let Some(selector) = prune.filter(|p| !p.is_empty()) {
        for key in prune_set(&s.store, &resources, &selector)? {
            if !body.dry_run {
                delete_object(&s.store, &key, false)?;
            }
            pruned.push(key.to_string());
        }
    }
    Ok(Json(
        json!({"results": results, "pruned": pruned, "dryRun": body.dry_run}),
    ))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default, rename = "labelSelector")]
    label_selector: Option<String>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    watch: Option<String>,
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<u64>,
}

/// `GET /apis/coditect.io/v1/{plural}`: a list, or a watch.
async fn list(
    State(s): State<ServerState>,
    Path(plural): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&plural)?;
    let selector =
        LabelSelector::parse(q.label_selector.as_deref().unwrap_or("")).map_err(bad_request)?;
    if q.watch.as_deref().is_some_and(|w| w == "true" || w == "1") {
        return Ok(crate::watch::stream(
            s.store.clone(),
            kind,
            q.organization,
            selector,
            q.resource_version.unwrap_or(0),
        ));
    }
    let rv = s.store.resource_version();
    let items = s
        .store
        .list(Some(kind), q.organization.as_deref(), &selector)?;
    Ok(Json(json!({
        "apiVersion": coditect_specs::API_VERSION,
        "kind": format!("{}List", kind.as_str()),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    }))
    .into_response())
}

async fn get_org(
    State(s): State<ServerState>,
    Path(name): Path<String>,
) -> Result<Json<Resource>, ApiError> {
    let key = ObjectKey {
        kind: Kind::Organization,
        organization: None,
        name,
    };
    s.store.get(&key)?.map(Json).ok_or_else(|| not_found(&key))
}

async fn get_scoped(
    State(s): State<ServerState>,
    Path((org, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Resource>, ApiError> {
    let key = ObjectKey {
        kind: kind_of(&plural)?,
        organization: Some(org),
        name,
    };
    s.store.get(&key)?.map(Json).ok_or_else(|| not_found(&key))
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    purge: Option<bool>,
}

async fn delete_org(
    State(s): State<ServerState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = ObjectKey {
        kind: Kind::Organization,
        organization: None,
        name: name.clone(),
    };
    let inside = s.store.list(None, Some(&name), &LabelSelector::default())?;
    if !inside.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            json!({"error": "conflict", "reason": format!("{key} still holds {} team(s) and workspace(s); delete them first", inside.len())}),
        ));
    }
    delete_response(&s.store, &key, false)
}

async fn delete_scoped(
    State(s): State<ServerState>,
    Path((org, plural, name)): Path<(String, String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = ObjectKey {
        kind: kind_of(&plural)?,
        organization: Some(org.clone()),
        name: name.clone(),
    };
    if key.kind == Kind::Team {
        let members = s
            .store
            .list(Some(Kind::Workspace), Some(&org), &LabelSelector::default())?;
        let n = members
            .iter()
            .filter(|w| w.metadata().team.as_deref() == Some(name.as_str()))
            .count();
        if n > 0 {
            return Err(ApiError(
                StatusCode::CONFLICT,
                json!({"error": "conflict", "reason": format!("{key} still has {n} workspace(s); delete them first")}),
            ));
        }
    }
    delete_response(&s.store, &key, q.purge.unwrap_or(false))
}

fn delete_response(store: &Store, key: &ObjectKey, purge: bool) -> Result<Json<Value>, ApiError> {
    if !delete_object(store, key, purge)? {
        return Err(not_found(key));
    }
    Ok(Json(json!({"deleted": key.to_string(), "purge": purge})))
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
struct EventsQuery {
    kind: String,
    #[serde(default)]
    organization: Option<String>,
    name: String,
}

async fn events(
    State(s): State<ServerState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = ObjectKey {
        kind: kind_of(&q.kind)?,
        organization: q.organization,
        name: q.name,
    };
    Ok(Json(json!({"items": s.store.events(&key, 20)?})))
}
