//! The control plane's HTTP API, Kubernetes style, plus the gateway. Every route but the
//! health checks needs a bearer token ([`crate::access`]); what a token's user may see
//! and change follows the roles the specs declare.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /healthz` | liveness (no token) |
//! | `GET /readyz?wait_ms=N` | readiness: the first pass over existing objects is done (no token) |
//! | `POST /apis/coditect.io/v1/apply` | `{objects, dryRun, prune}`: validate all, authorize all, write all or nothing |
//! | `GET /apis/coditect.io/v1/{plural}?labelSelector=&organization=` | list (only what the caller may read) |
//! | `GET /apis/coditect.io/v1/{plural}?watch=true&resourceVersion=N` | NDJSON change stream from N (likewise filtered) |
//! | `GET`/`DELETE /apis/coditect.io/v1/organizations/{name}` | one organization |
//! | `GET`/`DELETE /apis/coditect.io/v1/organizations/{org}/{teams,workspaces}/{name}` | one team or workspace (`?purge=true`) |
//! | `GET /apis/coditect.io/v1/events?kind=&organization=&name=` | reconcile events |
//! | `GET /apis/coditect.io/v1/whoami` | the caller's user |
//! | `POST /apis/coditect.io/v1/access-reviews` | `{verb, kind, name, organization?, team?, owner?, as?}`: may the caller (or `as`) do it? |
//! | `POST`/`GET /apis/coditect.io/v1/tokens`, `DELETE …/tokens/{id}` | create (the secret shown once), list, revoke |
//! | `GET /apis/coditect.io/v1/audit?since=&limit=`, `GET …/audit/verify` | the audit trail and its chain check |
//! | `POST /apis/coditect.io/v1/organizations/{org}/workspaces/{name}/sleep`, `…/wake` | put to sleep, wake (`workspaces.use`) |
//! | `GET /apis/coditect.io/v1/usage?organization=&sinceMs=&untilMs=` | measured usage of the workspaces the caller may read (the cost report's input) |
//! | `ANY /w/{org}/{workspace}/…` | the gateway to the workspace's own API; wakes a sleeping one and holds the request |
//! | `ANY /u/{login}/…` | a migrating user: to v1 until cut over, to their workspace after (held during the cutover) |

mod access;
pub mod migrations;
mod objects;
mod sleep;
mod usage;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Access;
use crate::access::http::Refusal;
use crate::driver::InstanceTokens;
use crate::error::StoreError;
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
    /// Tokens, roles, rate limits and the audit trail.
    pub access: Arc<Access>,
    /// Each instance's own token, which the gateway presents on the caller's behalf.
    pub instances: Arc<dyn InstanceTokens>,
    /// Asks the controller to reconcile a workspace now (sleep and wake are wishes in
    /// the status, which does not trigger reconciles by itself).
    pub nudge: tokio::sync::mpsc::UnboundedSender<coditect_specs::ObjectKey>,
    /// Where each migrating user's `/u/{login}/…` goes.
    pub users: Arc<crate::gateway::users::UserRoutes>,
}

/// The API and gateway router.
pub fn router(state: ServerState) -> Router {
    let gateway = crate::gateway::routes::<ServerState>().route(
        "/u/{login}/{*rest}",
        axum::routing::any(crate::gateway::user_proxy),
    );
    let api = Router::new()
        .route("/apis/coditect.io/v1/apply", post(objects::apply))
        .route("/apis/coditect.io/v1/events", get(objects::events))
        .route("/apis/coditect.io/v1/whoami", get(access::whoami))
        .route("/apis/coditect.io/v1/access-reviews", post(access::review))
        .route(
            "/apis/coditect.io/v1/tokens",
            post(access::create_token).get(access::list_tokens),
        )
        .route(
            "/apis/coditect.io/v1/tokens/{id}",
            delete(access::revoke_token),
        )
        .route("/apis/coditect.io/v1/audit", get(access::audit))
        .route("/apis/coditect.io/v1/usage", get(usage::usage))
        .route(
            "/apis/coditect.io/v1/audit/verify",
            get(access::verify_audit),
        )
        .route("/apis/coditect.io/v1/{plural}", get(objects::list))
        .route(
            "/apis/coditect.io/v1/organizations/{name}",
            get(objects::get_org).delete(objects::delete_org),
        )
        .route(
            "/apis/coditect.io/v1/organizations/{org}/{plural}/{name}",
            get(objects::get_scoped).delete(objects::delete_scoped),
        )
        .route(
            "/apis/coditect.io/v1/migrations/{name}",
            get(migrations::get).delete(migrations::delete),
        )
        .route(
            "/apis/coditect.io/v1/migrations/{name}/users",
            get(migrations::users),
        )
        .route(
            "/apis/coditect.io/v1/migrations/{name}/actions",
            post(migrations::act),
        )
        .route(
            "/apis/coditect.io/v1/organizations/{org}/workspaces/{name}/sleep",
            post(sleep::sleep),
        )
        .route(
            "/apis/coditect.io/v1/organizations/{org}/workspaces/{name}/wake",
            post(sleep::wake),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            crate::access::http::identify,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY))
        .layer(axum::middleware::from_fn_with_state(
            MAX_API_BODY as u64,
            coditect_runtime::api::declared_limit,
        ));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .route("/readyz", get(readyz))
        .merge(crate::studio::router())
        .merge(api)
        // The gateway authenticates itself, streams and checks its own limit.
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

/// An API error: a status and `{"error", "reason", …}`.
#[derive(Debug)]
pub struct ApiError(Box<Response>);

impl ApiError {
    /// An error with `status` and a JSON body.
    pub fn new(status: StatusCode, body: Value) -> Self {
        ApiError(Box::new((status, Json(body)).into_response()))
    }
}

impl ApiError {
    /// Whether it answers 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == StatusCode::NOT_FOUND
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError(Box::new(r.into_response()))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(
            status,
            json!({"error": if status == StatusCode::CONFLICT { "conflict" } else { "store" }, "reason": e.to_string()}),
        )
    }
}

impl From<crate::access::AccessError> for ApiError {
    fn from(e: crate::access::AccessError) -> Self {
        use crate::access::AccessError as A;
        let (status, error) = match &e {
            A::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            A::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            A::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            A::Store(_) | A::Audit(_) | A::Tls(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError::new(status, json!({"error": error, "reason": e.to_string()}))
    }
}

/// Appends a change (or a refusal of one) to the audit trail; answers only once it is
/// durable.
pub(super) async fn record(
    s: &ServerState,
    who: &crate::access::Identity,
    action: &str,
    objects: Vec<String>,
    outcome: crate::access::Outcome,
    detail: Option<String>,
) -> Result<(), ApiError> {
    s.access
        .audit
        .record(crate::access::Entry {
            who,
            action,
            objects,
            outcome,
            detail,
        })
        .await?;
    Ok(())
}

/// Whether `who` may `verb` the stored object `key`: `Ok`, 403 naming the permission, or
/// 404 when the caller may not even read it (nothing is told of objects one cannot see).
pub(crate) fn authorize(
    policy: &crate::access::Policy,
    who: &crate::access::Identity,
    verb: crate::access::Verb,
    key: &coditect_specs::ObjectKey,
) -> Result<(), ApiError> {
    let subject = policy.subject(key);
    if policy
        .decide(who, crate::access::Verb::Read, &subject)
        .is_err()
    {
        return Err(not_found(key));
    }
    policy
        .decide(who, verb, &subject)
        .map_err(|d| Refusal::from(d).into())
}

fn not_found(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        json!({"error": "not_found", "reason": format!("{what} not found")}),
    )
}

fn bad_request(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        json!({"error": "bad_request", "reason": reason.to_string()}),
    )
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
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, json!({"ready": false, "reason": "still reconciling the objects that existed at start"})).into_response()
    }
}
