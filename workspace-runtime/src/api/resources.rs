//! Request handlers for status, tasks, locks, files, messages, queries and sessions: each
//! turns a request into one call on the workspace and its answer into JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::events::parse_messages_query;
use crate::bus::{Message, SendMessage};
use crate::files::FileWrite;
use crate::locks::{Lease, LockRequest};
use crate::query::QueryResult;
use crate::sessions::SessionInfo;
use crate::tasks::{SubmitTask, Task};
use crate::workspace::WorkspaceRuntime;

type Rt = State<Arc<WorkspaceRuntime>>;

/// `GET /v1/health`.
pub(super) async fn health(State(rt): Rt) -> Json<Value> {
    Json(
        json!({"ok": true, "workspace": rt.spec.metadata.name, "lastSeq": rt.events.durable_seq()}),
    )
}

/// `GET /v1/status`.
pub(super) async fn status(State(rt): Rt) -> Json<Value> {
    let spec = &rt.spec;
    let (active, leases) = (rt.tasks.active(), rt.locks.list().len());
    let session = rt.sessions.current();
    let agents: Vec<Value> = spec
        .spec
        .agents
        .iter()
        .map(|a| {
            let now = rt.agents.get(&a.name);
            json!({"name": a.name, "provider": a.provider.as_str(), "model": a.model, "role": a.role.as_str(),
                "queued": rt.tasks.depth(&a.name),
                "state": now.as_ref().map_or("not running", |n| n.state.as_str()),
                "runningAs": now.as_ref().map(|n| n.provider.clone()),
                "task": now.and_then(|n| n.task)})
        })
        .collect();
    Json(json!({
        "workspace": spec.metadata.name,
        "organization": spec.metadata.organization,
        "team": spec.metadata.team,
        "owner": spec.spec.owner,
        "specHash": coditect_specs::spec_hash(&coditect_specs::Resource::Workspace(spec.clone())),
        "session": {"id": session.id, "expiresAt": crate::clock::rfc3339(session.expires_at_ms), "renewals": session.renewals},
        "agents": agents,
        "lastSeq": rt.events.durable_seq(),
        "locks": leases,
        "lockWaiters": rt.locks.waiting(),
        "activeTasks": active,
        "activity": rt.activity.facts(active, leases),
        "storage": {
            "diskFullRefusals": rt.metrics.disk_full.get(),
            "lastDiskFullAt": match rt.metrics.disk_full_at.get() {
                0 => Value::Null,
                at => json!(crate::clock::rfc3339(at as u64)),
            },
        },
        "sync": match &rt.sync_target {
            Some(_) => {
                let mut v = serde_json::to_value(rt.sync.get()).unwrap_or_default();
                v["enabled"] = json!(true);
                v["lagSeconds"] = json!(rt.sync.lag_seconds());
                if let Some(lag) = rt.sync.mirror_lag_seconds() {
                    v["mirror"]["lagSeconds"] = json!(lag);
                }
                v
            }
            None => json!({"enabled": false}),
        },
    }))
}

/// `GET /metrics`.
pub(super) async fn metrics(State(rt): Rt) -> impl IntoResponse {
    rt.metrics
        .observe_activity(&rt.activity.facts(rt.tasks.active(), rt.locks.list().len()));
    // Lags grow while nothing ships (a bucket that is down): read them now.
    if rt.sync_target.is_some() {
        rt.metrics.sync_lag.set(rt.sync.lag_seconds());
    }
    if let Some(lag) = rt.sync.mirror_lag_seconds() {
        rt.metrics.sync_mirror_lag.set(lag);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        rt.metrics.encode(),
    )
}

/// `POST /v1/tasks`.
pub(super) async fn submit_task(
    State(rt): Rt,
    Json(b): Json<SubmitTask>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(rt.tasks.submit(b).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct TaskFilter {
    agent: Option<String>,
    state: Option<String>,
    /// Tasks older than this id (the next page, newest first).
    before: Option<i64>,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// `GET /v1/tasks?agent=&state=&before=&limit=`: newest first, `limit` (default 100, at
/// most 10 000) a page; a page that is not the last says so (see `paging`).
pub(super) async fn list_tasks(
    State(rt): Rt,
    Query(f): Query<TaskFilter>,
) -> Result<axum::response::Response, ApiError> {
    let limit = f.limit.clamp(1, 10_000);
    let tasks = rt
        .tasks
        .list(f.agent.as_deref(), f.state.as_deref(), f.before, limit + 1)?;
    let mut route = String::from("/v1/tasks");
    for (name, value) in [("agent", &f.agent), ("state", &f.state)] {
        if let Some(v) = value {
            route.push(if route.contains('?') { '&' } else { '?' });
            route.push_str(&format!("{name}={v}"));
        }
    }
    Ok(super::paging::page(
        tasks,
        limit as usize,
        "before",
        |t| t.id.to_string(),
        &route,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct ClaimBody {
    agent: String,
    #[serde(default)]
    wait_ms: u64,
}

/// `POST /v1/tasks/claim`: the agent's next task, waiting up to `wait_ms` (60 s at most).
pub(super) async fn claim_task(
    State(rt): Rt,
    Json(b): Json<ClaimBody>,
) -> Result<Json<Option<Task>>, ApiError> {
    let wait = Duration::from_millis(b.wait_ms.min(60_000));
    Ok(Json(rt.tasks.claim(&b.agent, wait).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct FinishBody {
    ok: bool,
    #[serde(default)]
    result: Option<String>,
}

/// `POST /v1/tasks/{id}/finish`.
pub(super) async fn finish_task(
    State(rt): Rt,
    Path(id): Path<i64>,
    Json(b): Json<FinishBody>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(rt.tasks.finish(id, b.ok, b.result).await?))
}

/// `POST /v1/tasks/{id}/cancel`.
pub(super) async fn cancel_task(
    State(rt): Rt,
    Path(id): Path<i64>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(rt.tasks.cancel(id).await?))
}

/// `POST /v1/locks`.
pub(super) async fn acquire_lock(
    State(rt): Rt,
    Json(b): Json<LockRequest>,
) -> Result<Json<Lease>, ApiError> {
    Ok(Json(rt.locks.acquire(b).await?))
}

/// `GET /v1/locks`.
pub(super) async fn list_locks(State(rt): Rt) -> Json<Vec<Lease>> {
    Json(rt.locks.list())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RenewBody {
    #[serde(default)]
    ttl_ms: Option<u64>,
}

/// `POST /v1/locks/{token}/renew`.
pub(super) async fn renew_lock(
    State(rt): Rt,
    Path(token): Path<u64>,
    body: Option<Json<RenewBody>>,
) -> Result<Json<Lease>, ApiError> {
    let ttl = body.and_then(|b| b.0.ttl_ms);
    Ok(Json(rt.locks.renew(token, ttl)?))
}

/// `DELETE /v1/locks/{token}`.
pub(super) async fn release_lock(
    State(rt): Rt,
    Path(token): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    rt.locks.release(token)?;
    Ok(Json(json!({"released": token})))
}

/// `PUT /v1/files/{path}` with `X-Fencing-Token` and `X-Agent`: the body is streamed to
/// disk (up to [`super::MAX_FILE_BODY`] bytes), never held whole in memory.
pub(super) async fn write_file(
    State(rt): Rt,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<FileWrite>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = header("x-fencing-token")
        .ok_or_else(|| ApiError::bad_request("a write needs the X-Fencing-Token header"))?
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request("X-Fencing-Token must be a number"))?;
    let agent = header("x-agent").unwrap_or("api");
    // A declared length over the limit was refused before this handler ran; a body
    // that grows past it is refused as its bytes arrive.
    let pieces = body.into_data_stream();
    Ok(Json(
        rt.files
            .write_stream(agent, token, &path, pieces, super::MAX_FILE_BODY, None)
            .await?,
    ))
}

/// `GET /v1/files/{path}`.
pub(super) async fn read_file(
    State(rt): Rt,
    Path(path): Path<String>,
) -> Result<Vec<u8>, ApiError> {
    Ok(rt.files.read(&path).await?)
}

/// The most files `GET /v1/tree` lists.
pub const TREE_LIMIT: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
pub(super) struct TreeQuery {
    /// Also each file's SHA-256 (reads every file: for verification, not for browsing).
    #[serde(default)]
    sha256: bool,
}

/// `GET /v1/tree[?sha256=true]`: every file under `projects/` with its size (and its
/// SHA-256 when asked), sorted (at most [`TREE_LIMIT`]; `truncated` says when there were
/// more).
pub(super) async fn tree(
    State(rt): Rt,
    Query(q): Query<TreeQuery>,
) -> Result<Json<Value>, ApiError> {
    let root = rt.files.root().to_path_buf();
    let files = tokio::task::spawn_blocking(move || {
        let files = crate::files::list_tree(&root, TREE_LIMIT + 1);
        let truncated = files.len() > TREE_LIMIT;
        let files: Vec<Value> = files
            .into_iter()
            .take(TREE_LIMIT)
            .map(|(path, size)| {
                let mut entry = json!({"path": path, "size": size});
                if q.sha256
                    && let Some(digest) = crate::files::sha256_of(&root.join(&path))
                {
                    entry["sha256"] = json!(digest);
                }
                entry
            })
            .collect();
        (files, truncated)
    })
    .await
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({"files": files.0, "truncated": files.1})))
}

/// `GET /v1/agents`: each agent's state, current task, tokens, leases and newest event,
/// derived from what the runtime keeps (see [`crate::agents::view`]).
pub(super) async fn agents(
    State(rt): Rt,
) -> Result<Json<Vec<crate::agents::view::AgentView>>, ApiError> {
    let view = tokio::task::spawn_blocking(move || crate::agents::view::agents(&rt))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(view))
}

/// `GET /v1/locks/waiters`: who waits for which path, in line order.
pub(super) async fn lock_waiters(State(rt): Rt) -> Json<Vec<crate::locks::LockWaiter>> {
    Json(rt.locks.waiters())
}

/// `POST /v1/messages`.
pub(super) async fn send_message(
    State(rt): Rt,
    Json(b): Json<SendMessage>,
) -> Result<Json<Message>, ApiError> {
    Ok(Json(rt.bus.send(b).await?))
}

/// `GET /v1/messages?agent=&topic=&since=`.
pub(super) async fn list_messages(
    State(rt): Rt,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Message>>, ApiError> {
    let (filter, since) = parse_messages_query(raw.as_deref().unwrap_or(""))?.into_parts();
    Ok(Json(rt.bus.history(&filter, since, 1000)?))
}

#[derive(Debug, Deserialize)]
pub(super) struct QueryBody {
    db: String,
    sql: String,
}

/// `POST /v1/query`: one read-only SELECT.
pub(super) async fn query(
    State(rt): Rt,
    Json(b): Json<QueryBody>,
) -> Result<Json<QueryResult>, ApiError> {
    let db = rt.db.clone();
    let result = tokio::task::spawn_blocking(move || crate::query::run(&db, &b.db, &b.sql))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(result))
}

/// The body of `POST /v1/keepalive`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct KeepAlive {
    /// How long (`2h`, `30m`), at most a week.
    #[serde(rename = "for")]
    span: coditect_specs::Duration,
}

/// `POST /v1/keepalive {"for": "2h"}`: the workspace is not put to sleep for that long,
/// even when idle (like Coder's `schedule extend`).
pub(super) async fn keep_alive(
    State(rt): Rt,
    Json(b): Json<KeepAlive>,
) -> Result<Json<Value>, ApiError> {
    let span = b.span.to_std();
    if span.is_zero() || span > std::time::Duration::from_secs(7 * 86_400) {
        return Err(ApiError::bad_request("for: between 1s and 7d"));
    }
    let until = rt.activity.keep_alive(span);
    Ok(Json(
        json!({"keepAliveUntil": crate::clock::rfc3339(until)}),
    ))
}

/// `POST /v1/session/renew`.
pub(super) async fn renew_session(State(rt): Rt) -> Result<Json<SessionInfo>, ApiError> {
    Ok(Json(rt.sessions.renew()?))
}
