//! Shared helpers for the runtime's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use coditect_runtime::db::Databases;
use coditect_runtime::events::EventLog;
use coditect_runtime::locks::{LockMode, LockRequest, LockTable};
use coditect_runtime::metrics::Metrics;

/// A lock table over real SQLite and a real event log in a temp folder.
pub struct Locks {
    pub dir: tempfile::TempDir,
    pub table: Arc<LockTable>,
    pub events: EventLog,
    pub db: Arc<Databases>,
}

pub fn locks(ttl: Duration, wait: Duration) -> Locks {
    let dir = tempfile::tempdir().unwrap();
    reopen(dir, ttl, wait)
}

/// Opens the lock table of an existing folder again (as after a restart).
pub fn reopen(dir: tempfile::TempDir, ttl: Duration, wait: Duration) -> Locks {
    let db = Arc::new(Databases::open(dir.path()).unwrap());
    let (events, _) = EventLog::open(&dir.path().join("sessions"), 1).unwrap();
    let table = Arc::new(
        LockTable::open(
            db.clone(),
            events.clone(),
            Arc::new(Metrics::default()),
            ttl,
            wait,
        )
        .unwrap(),
    );
    Locks {
        dir,
        table,
        events,
        db,
    }
}

pub fn req(path: &str, mode: LockMode, holder: &str) -> LockRequest {
    LockRequest {
        path: path.into(),
        mode,
        holder: holder.into(),
        ttl_ms: None,
        wait_ms: None,
    }
}

/// Yields until `cond` holds (no sleeping: the other tasks get to run).
pub async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never became true");
}

/// Waits (on the live event feed, after replaying the past) until every task in `ids` has
/// finished.
pub async fn finished(ws: &coditect_runtime::testkit::TestWorkspace, ids: &[i64]) {
    use coditect_runtime::events::EventType;
    let (mut live, durable) = ws.runtime.events.subscribe();
    let mut pending: std::collections::HashSet<i64> = ids.iter().copied().collect();
    let events = ws.runtime.events.clone();
    let past = tokio::task::spawn_blocking(move || {
        events
            .replay_until(1, durable)
            .map(|e| e.unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for e in past {
        if e.kind == EventType::TaskFinished {
            pending.remove(&e.data["task"].as_i64().unwrap());
        }
    }
    while !pending.is_empty() {
        let e = live.recv().await.unwrap();
        if e.kind == EventType::TaskFinished {
            pending.remove(&e.data["task"].as_i64().unwrap());
        }
    }
}

/// Serves `app` on 127.0.0.1:0; returns `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Runs one task on agent `alpha` of a fresh workspace, driven by `model` through the real
/// agent loop; returns the workspace and the finished task.
pub async fn run_task<M: coditect_runtime::agents::Model + 'static>(
    model: M,
    title: &str,
) -> (coditect_runtime::testkit::TestWorkspace, serde_json::Value) {
    let ws = coditect_runtime::testkit::TestWorkspace::start().await;
    let runner = coditect_runtime::agents::runner::run(
        ws.runtime.clone(),
        "alpha".into(),
        20,
        model,
        std::future::pending::<()>(),
    );
    let agent = tokio::spawn(runner);
    let (_, task) = ws
        .client
        .post(
            "/v1/tasks",
            &serde_json::json!({"agent": "alpha", "title": title}),
        )
        .await;
    finished(&ws, &[task["id"].as_i64().unwrap()]).await;
    agent.abort();
    let (_, tasks) = ws.client.get("/v1/tasks?agent=alpha").await;
    let task = tasks[0].clone();
    (ws, task)
}

/// A `text/event-stream` answer of the given events (`event:` name, `data:` line).
pub fn sse(events: Vec<(Option<&str>, String)>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut body = String::new();
    for (name, data) in events {
        if let Some(name) = name {
            body.push_str(&format!("event: {name}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    ([("content-type", "text/event-stream")], body).into_response()
}

/// `text` cut in two (at a char boundary), as streams deliver it in pieces.
pub fn halves(text: &str) -> Vec<String> {
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid += 1;
    }
    [&text[..mid], &text[mid..]]
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The sum of agent `alpha`'s samples of `metric` in agent_metrics.
pub fn metric_sum(ws: &coditect_runtime::testkit::TestWorkspace, metric: &str) -> f64 {
    ws.runtime
        .db
        .agent_metrics
        .read(|c| {
            c.query_row(
                "SELECT coalesce(sum(value), 0) FROM samples WHERE agent = 'alpha' AND metric = ?1",
                [metric],
                |r| r.get(0),
            )
        })
        .unwrap()
}

/// Asserts that `secret` appears in no event of the workspace's log.
pub async fn assert_never_logged(ws: &coditect_runtime::testkit::TestWorkspace, secret: &str) {
    let (_, events) = ws.client.get("/v1/events?since=0&limit=100000").await;
    let text = events.to_string();
    assert!(text.len() > 100, "the log has events: {text}");
    assert!(
        !text.contains(secret),
        "the key {secret:?} was written to an event"
    );
}

/// A conversation just after one tool call: the task, the model's call of `name` (with
/// `state`, the provider's state as a follow-up would carry it), and its result.
pub fn after_one_call(
    id: &str,
    name: &str,
    arguments: serde_json::Value,
    state: Option<coditect_runtime::agents::ProviderState>,
) -> Vec<coditect_runtime::agents::Turn> {
    use coditect_runtime::agents::{ToolCall, Turn};
    vec![
        Turn::User {
            text: format!("the task that led to {name}"),
        },
        Turn::Assistant {
            text: String::new(),
            calls: vec![ToolCall {
                id: id.into(),
                name: name.into(),
                arguments,
            }],
            state,
        },
        Turn::ToolResult {
            id: id.into(),
            ok: true,
            content: serde_json::json!({"token": 1}),
        },
    ]
}

/// What the provider answered to `conversation`, which a test expects it to refuse: the
/// status and the provider's message (panics on any other outcome).
pub async fn refusal<M: coditect_runtime::agents::Model>(
    model: &M,
    conversation: &[coditect_runtime::agents::Turn],
) -> (u16, String) {
    match model.next_turn(conversation, &["acquire_lock"]).await {
        Err(coditect_runtime::agents::ModelError::Refused { status, message }) => (status, message),
        other => panic!("expected the provider to refuse, got {other:?}"),
    }
}

/// Five tasks and five events through the API, and a project file, for round `round`;
/// the tasks' ids.
pub async fn write_some(ws: &coditect_runtime::testkit::TestWorkspace, round: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..5 {
        let body =
            serde_json::json!({"agent": "alpha", "title": format!("round {round} task {i}")});
        let (status, t) = ws.client.post("/v1/tasks", &body).await;
        assert_eq!(status, 200, "{t}");
        ids.push(t["id"].as_i64().unwrap());
        let e = serde_json::json!({"agent": "alpha", "type": "agent_message", "data": {"round": round, "i": i}});
        assert_eq!(ws.client.post("/v1/events", &e).await.0, 200);
    }
    let dir = ws.runtime.layout.projects().join("src");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("r{round}.rs")),
        format!("// round {round}\n").repeat(100),
    )
    .unwrap();
    ids
}

/// The task titles in a workspace folder's sessions database (checked whole first).
pub fn task_titles(db: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db.join("databases/sessions.db")).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut s = c.prepare("SELECT title FROM tasks ORDER BY id").unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A workspace started in a fresh folder syncing to `target`, and its replicator (the test
/// drives the rounds).
pub async fn synced(
    target: &coditect_runtime::sync::replicator::SyncTarget,
) -> (
    coditect_runtime::testkit::TestWorkspace,
    coditect_runtime::sync::replicator::Replicator,
) {
    use coditect_runtime::testkit::{TempRoot, TestWorkspace, spec};
    let ws =
        TestWorkspace::start_synced(Arc::new(TempRoot::new()), spec(), Some(target.clone())).await;
    let r = coditect_runtime::sync::replicator::Replicator::start(
        ws.runtime.clone(),
        target.clone(),
        ws.runtime.sync.clone(),
    )
    .await
    .unwrap();
    (ws, r)
}
