//! The workspace's HTTP + WebSocket API.
//!
//! Every request but `GET /healthz` must carry the workspace's bearer token (`Authorization: Bearer …`, or
//! `?access_token=…` for WebSocket clients that cannot set headers). A missing or wrong
//! token gets 401 before any handler runs, so it leaves no trace in the data.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /healthz` | `ok`, without a token: for the kubelet's readiness probe; says nothing else |
//! | `GET /v1/health` | `{"ok":true}` once the instance serves (for the control plane's probes) |
//! | `GET /v1/status` | workspace, session, agents, queue depths, last seq |
//! | `GET /metrics` | Prometheus metrics |
//! | `POST /v1/tasks`, `GET /v1/tasks` | submit, list |
//! | `POST /v1/tasks/claim`, `POST /v1/tasks/{id}/finish`, `POST /v1/tasks/{id}/cancel` | run a task |
//! | `POST /v1/locks`, `GET /v1/locks`, `POST /v1/locks/{token}/renew`, `DELETE /v1/locks/{token}` | leases |
//! | `GET /v1/agents` | each agent's state, task, tokens, leases, newest event (derived, not self-reported) |
//! | `GET /v1/locks/waiters` | who waits for which path |
//! | `GET /v1/tree` | the files under `projects/`, with sizes |
//! | `PUT /v1/files/{path}`, `GET /v1/files/{path}` | fenced writes (`X-Fencing-Token`), reads |
//! | `POST /v1/messages`, `GET /v1/messages`, `GET /v1/messages/ws` | bus |
//! | `POST /v1/events`, `GET /v1/events`, `GET /v1/events/ws`, `GET /v1/verify` | event log |
//! | `POST /v1/events/import` | events from elsewhere (a migration), each `source` once |
//! | `POST /v1/query` | read-only SQL |
//! | `GET /v1/query/ws` | live queries: a `SELECT`'s rows, again after each commit that touches what it reads |
//! | `POST /v1/session/renew` | extend the session |
//! | `POST /v1/keepalive` | `{"for": "2h"}`: keep the workspace awake that long |

mod errors;
mod events;
mod import;
mod live;
mod paging;
mod resources;
mod server;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::workspace::WorkspaceRuntime;

pub use errors::ApiError;
pub use live::{MAX_SUBSCRIPTIONS, QUEUE as LIVE_QUERY_QUEUE};
pub use server::{HEADER_READ_TIMEOUT, serve, serve_with};

/// The one route that answers without a token (a kubelet probe carries none).
pub const PROBE_PATH: &str = "/healthz";

/// The largest JSON request body (tasks, locks, events, messages, queries).
pub const MAX_JSON_BODY: usize = 2 << 20;

/// The largest project file a `PUT /v1/files/…` may write; streamed to disk.
pub const MAX_FILE_BODY: u64 = 256 << 20;

/// What a refused body is told.
const LIMITS: &str = "request bodies are limited to 2 MiB (2097152 bytes); a project file written with PUT /v1/files/… to 256 MiB (268435456 bytes), streamed";

/// The API router over a workspace.
pub fn router(ws: Arc<WorkspaceRuntime>) -> Router {
    let json_routes = Router::new()
        .route(PROBE_PATH, get(|| async { "ok" }))
        .route("/v1/health", get(resources::health))
        .route("/v1/status", get(resources::status))
        .route("/metrics", get(resources::metrics))
        .route(
            "/v1/tasks",
            post(resources::submit_task).get(resources::list_tasks),
        )
        .route("/v1/tasks/claim", post(resources::claim_task))
        .route("/v1/tasks/{id}/finish", post(resources::finish_task))
        .route("/v1/tasks/{id}/cancel", post(resources::cancel_task))
        .route(
            "/v1/locks",
            post(resources::acquire_lock).get(resources::list_locks),
        )
        .route("/v1/locks/waiters", get(resources::lock_waiters))
        .route("/v1/locks/{token}/renew", post(resources::renew_lock))
        .route("/v1/locks/{token}", delete(resources::release_lock))
        .route(
            "/v1/messages",
            post(resources::send_message).get(resources::list_messages),
        )
        .route("/v1/messages/ws", get(events::messages_ws))
        .route("/v1/events", post(events::append).get(events::replay))
        .route("/v1/events/import", post(import::import))
        .route("/v1/events/ws", get(events::tail_ws))
        .route("/v1/verify", get(events::verify))
        .route("/v1/agents", get(resources::agents))
        .route("/v1/tree", get(resources::tree))
        .route("/v1/query", post(resources::query))
        .route("/v1/query/ws", get(live::live_ws))
        .route("/v1/session/renew", post(resources::renew_session))
        .route("/v1/keepalive", post(resources::keep_alive))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(
            MAX_JSON_BODY as u64,
            declared_limit,
        ));
    // Files stream their bodies (the handler enforces the limit as bytes arrive).
    let file_routes = Router::new()
        .route(
            "/v1/files/{*path}",
            get(resources::read_file).put(resources::write_file),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            MAX_FILE_BODY,
            declared_limit,
        ));
    json_routes
        .merge(file_routes)
        .layer(axum::middleware::from_fn_with_state(LIMITS, json_refusals))
        .layer(axum::middleware::from_fn_with_state(
            ws.clone(),
            count_disk_full,
        ))
        .layer(axum::middleware::from_fn_with_state(
            ws.clone(),
            note_activity,
        ))
        .layer(axum::middleware::from_fn_with_state(
            ws.clone(),
            authenticate,
        ))
        .with_state(ws)
}

/// Refuses (413) a request whose declared `Content-Length` is over `limit` before any of
/// its body is read, so a client cannot tie a connection up sending what will be refused.
/// Shared with the control plane's API.
pub async fn declared_limit(State(limit): State<u64>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|l| l > limit) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    next.run(req).await
}

/// Refuses requests without the workspace's token.
async fn authenticate(
    State(ws): State<Arc<WorkspaceRuntime>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == PROBE_PATH {
        return next.run(req).await;
    }
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let from_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    match from_header.or(from_query) {
        Some(t) if constant_time_eq(t.as_bytes(), ws.token.as_bytes()) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({"error": "unauthorized", "reason": "missing or wrong bearer token"})),
        )
            .into_response(),
    }
}

/// Answers the refusals axum's extractors make in plain text (a body over the limit, a
/// body that is not JSON) in the API's JSON error shape, so every error reads the same.
/// `limits` says what the bodies are limited to. Shared with the control plane's API.
pub async fn json_refusals(
    State(limits): State<&'static str>,
    req: Request,
    next: Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let (kind, reason) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", limits.to_string()),
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "the route does not take this method".to_string(),
        ),
        _ => {
            let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            (
                "bad_request",
                String::from_utf8_lossy(&bytes).trim().to_string(),
            )
        }
    };
    (
        status,
        axum::Json(serde_json::json!({"error": kind, "reason": reason})),
    )
        .into_response()
}

/// Notes a client request as activity (health checks and the control plane's probes,
/// marked with [`crate::activity::PROBE_HEADER`], are not).
async fn note_activity(
    State(ws): State<Arc<WorkspaceRuntime>>,
    req: Request,
    next: Next,
) -> Response {
    let probe = [PROBE_PATH, "/v1/health"].contains(&req.uri().path())
        || req.headers().contains_key(crate::activity::PROBE_HEADER);
    if !probe {
        ws.activity.touch();
    }
    next.run(req).await
}

/// Counts the writes refused for a full disk, for `/metrics` and the status.
async fn count_disk_full(
    State(ws): State<Arc<WorkspaceRuntime>>,
    req: Request,
    next: Next,
) -> Response {
    let resp = next.run(req).await;
    if resp.status() == StatusCode::INSUFFICIENT_STORAGE {
        ws.metrics.disk_full.inc();
        ws.metrics.disk_full_at.set(crate::clock::now_ms() as i64);
    }
    resp
}

/// Compares two secrets without stopping at the first difference, so timing tells
/// nothing. Shared with the control plane's token check.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
