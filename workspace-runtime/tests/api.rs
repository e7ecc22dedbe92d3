//! The HTTP API of a real instance on 127.0.0.1: auth, tasks, bus, files, queries, metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use coditect_runtime::testkit::TestWorkspace;
use serde_json::{Value, json};

/// Every route, with a body that would be valid.
fn every_endpoint() -> Vec<(reqwest::Method, &'static str, Value)> {
    use reqwest::Method as M;
    vec![
        (M::GET, "/v1/health", Value::Null),
        (M::GET, "/v1/status", Value::Null),
        (M::GET, "/metrics", Value::Null),
        (
            M::POST,
            "/v1/tasks",
            json!({"agent": "alpha", "title": "t"}),
        ),
        (M::GET, "/v1/tasks", Value::Null),
        (M::POST, "/v1/tasks/claim", json!({"agent": "alpha"})),
        (M::POST, "/v1/tasks/1/finish", json!({"ok": true})),
        (M::POST, "/v1/tasks/1/cancel", Value::Null),
        (
            M::POST,
            "/v1/locks",
            json!({"path": "a", "mode": "exclusive", "holder": "alpha"}),
        ),
        (M::GET, "/v1/locks", Value::Null),
        (M::POST, "/v1/locks/1/renew", Value::Null),
        (M::DELETE, "/v1/locks/1", Value::Null),
        (M::PUT, "/v1/files/a.txt", Value::Null),
        (M::GET, "/v1/files/a.txt", Value::Null),
        (
            M::POST,
            "/v1/messages",
            json!({"from": "alpha", "topic": "t", "body": 1}),
        ),
        (M::GET, "/v1/messages", Value::Null),
        (M::GET, "/v1/messages/ws", Value::Null),
        (
            M::POST,
            "/v1/events",
            json!({"agent": "alpha", "type": "agent_message", "data": {}}),
        ),
        (M::GET, "/v1/events", Value::Null),
        (
            M::POST,
            "/v1/events/import",
            json!({"events": [{"source": "s", "agent": "alpha", "type": "agent_message"}]}),
        ),
        (M::GET, "/v1/events/ws", Value::Null),
        (M::GET, "/v1/verify", Value::Null),
        (
            M::POST,
            "/v1/query",
            json!({"db": "sessions", "sql": "SELECT 1"}),
        ),
        (M::POST, "/v1/session/renew", Value::Null),
        (M::GET, "/v1/no-such-route", Value::Null),
    ]
}

#[tokio::test]
async fn no_token_or_a_wrong_token_gets_401_everywhere_and_leaves_no_trace() {
    let ws = TestWorkspace::start().await;
    let seq_before = ws.runtime.events.durable_seq();
    for client in [
        ws.client.with_token(None),
        ws.client.with_token(Some("wrong")),
        ws.client.with_token(Some("")),
    ] {
        for (method, path, body) in every_endpoint() {
            let mut req = client
                .request(method.clone(), path)
                .header("x-fencing-token", "1");
            if !body.is_null() {
                req = req.json(&body);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{method} {path}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        }
    }
    assert_eq!(
        ws.runtime.events.durable_seq(),
        seq_before,
        "no event was written"
    );
    assert_eq!(
        ws.runtime.tasks.list(None, None, None, 10).unwrap().len(),
        0,
        "no task was written"
    );
    assert!(ws.runtime.locks.list().is_empty(), "no lock was granted");
    let (status, _) = ws.client.get("/v1/status").await;
    assert_eq!(status, 200, "the right token works");
    // The kubelet's probe needs no token, and learns nothing but that the instance serves.
    let probe = ws
        .client
        .with_token(None)
        .request(reqwest::Method::GET, "/healthz")
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status().as_u16(), 200);
    assert_eq!(probe.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn tasks_run_by_priority_then_age_and_every_step_is_an_event() {
    let ws = TestWorkspace::start().await;
    let c = &ws.client;
    for (title, priority) in [("low", 0), ("high-1", 5), ("high-2", 5), ("mid", 2)] {
        let (s, t) = c
            .post(
                "/v1/tasks",
                &json!({"agent": "alpha", "title": title, "priority": priority}),
            )
            .await;
        assert_eq!((s, t["state"].as_str()), (200, Some("queued")), "{t}");
    }
    let (s, err) = c
        .post("/v1/tasks", &json!({"agent": "nobody", "title": "x"}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(err["error"], "unknown_agent");
    let mut order = Vec::new();
    for _ in 0..4 {
        let (_, t) = c.post("/v1/tasks/claim", &json!({"agent": "alpha"})).await;
        assert_eq!(t["state"], "running");
        order.push(t["title"].as_str().unwrap().to_string());
        let (s, done) = c
            .post(
                &format!("/v1/tasks/{}/finish", t["id"]),
                &json!({"ok": true, "result": "fine"}),
            )
            .await;
        assert_eq!((s, done["state"].as_str()), (200, Some("done")));
    }
    assert_eq!(order, ["high-1", "high-2", "mid", "low"]);
    let (_, none) = c
        .post("/v1/tasks/claim", &json!({"agent": "alpha", "wait_ms": 0}))
        .await;
    assert!(none.is_null());
    // Cancel a queued task; a second cancel is refused with the reason.
    let (_, t) = c
        .post("/v1/tasks", &json!({"agent": "beta", "title": "doomed"}))
        .await;
    let (s, cancelled) = c
        .post(&format!("/v1/tasks/{}/cancel", t["id"]), &Value::Null)
        .await;
    assert_eq!((s, cancelled["state"].as_str()), (200, Some("cancelled")));
    let (s, again) = c
        .post(&format!("/v1/tasks/{}/cancel", t["id"]), &Value::Null)
        .await;
    assert_eq!(s, 409);
    assert!(
        again["reason"]
            .as_str()
            .unwrap()
            .contains("is cancelled; cannot cancel")
    );
    let (_, events) = c.get("/v1/events?since=0").await;
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.iter().filter(|t| **t == "task_queued").count(), 5);
    assert_eq!(types.iter().filter(|t| **t == "task_started").count(), 4);
    assert_eq!(types.iter().filter(|t| **t == "task_finished").count(), 5);
}

#[tokio::test]
async fn a_claim_waits_for_the_next_task() {
    let ws = TestWorkspace::start().await;
    let c = ws.client.clone();
    let waiting = tokio::spawn(async move {
        c.post(
            "/v1/tasks/claim",
            &json!({"agent": "beta", "wait_ms": 30000}),
        )
        .await
    });
    let queues = &ws.runtime.tasks;
    let (_, t) = ws
        .client
        .post("/v1/tasks", &json!({"agent": "beta", "title": "wake up"}))
        .await;
    let (_, claimed) = waiting.await.unwrap();
    assert_eq!(claimed["id"], t["id"]);
    assert_eq!(queues.depth("beta"), 0);
}

#[tokio::test]
async fn messages_are_delivered_direct_and_by_topic_and_replay_by_id() {
    let ws = TestWorkspace::start().await;
    let c = &ws.client;
    let (_, m1) = c
        .post(
            "/v1/messages",
            &json!({"from": "alpha", "to": "beta", "body": {"text": "hi beta"}}),
        )
        .await;
    let (_, _m2) = c
        .post(
            "/v1/messages",
            &json!({"from": "beta", "topic": "build", "body": "green"}),
        )
        .await;
    let (_, m3) = c
        .post(
            "/v1/messages",
            &json!({"from": "alpha", "topic": "review", "body": "look"}),
        )
        .await;
    let (s, bad) = c
        .post("/v1/messages", &json!({"from": "alpha", "body": "nowhere"}))
        .await;
    assert_eq!(s, 400, "{bad}");
    let (_, for_beta) = c.get("/v1/messages?agent=beta&topic=review").await;
    let ids: Vec<i64> = for_beta
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![m1["id"].as_i64().unwrap(), m3["id"].as_i64().unwrap()]
    );
    let (_, after) = c
        .get(&format!(
            "/v1/messages?agent=beta&topic=review&since={}",
            m1["id"]
        ))
        .await;
    assert_eq!(after.as_array().unwrap().len(), 1);
    let stored = ws
        .runtime
        .db
        .messages
        .read(|c| c.query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0)))
        .unwrap();
    assert_eq!(stored, 3, "persisted in the messages database");
}

#[tokio::test]
async fn fenced_writes_through_the_api() {
    let ws = TestWorkspace::start().await;
    let c = &ws.client;
    let (_, lease) = c
        .post(
            "/v1/locks",
            &json!({"path": "src", "mode": "exclusive", "holder": "alpha"}),
        )
        .await;
    let token = lease["token"].as_u64().unwrap();
    let (s, w) = c
        .put_file("src/main.rs", token, "alpha", "fn main() {}\n")
        .await;
    assert_eq!(s, 200, "{w}");
    let on_disk =
        std::fs::read_to_string(ws.runtime.layout.projects().join("src/main.rs")).unwrap();
    assert_eq!(on_disk, "fn main() {}\n");
    let (s, _) = c.delete(&format!("/v1/locks/{token}")).await;
    assert_eq!(s, 200);
    let (s, refused) = c.put_file("src/main.rs", token, "alpha", "stale").await;
    assert_eq!(
        (s, refused["error"].as_str()),
        (409, Some("stale_fencing_token"))
    );
    let (s, refused) = c.put_file("src/main.rs", 999, "alpha", "forged").await;
    assert_eq!(s, 409, "{refused}");
    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("src/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    let (s, err) = c
        .post(
            "/v1/locks",
            &json!({"path": "src", "mode": "shared", "holder": "beta", "wait_ms": 0}),
        )
        .await;
    assert_eq!(s, 200, "{err}");
}

#[tokio::test]
async fn queries_are_read_only() {
    let ws = TestWorkspace::start().await;
    let c = &ws.client;
    c.post("/v1/tasks", &json!({"agent": "alpha", "title": "q"}))
        .await;
    let (s, r) = c
        .post(
            "/v1/query",
            &json!({"db": "sessions", "sql": "SELECT title FROM tasks"}),
        )
        .await;
    assert_eq!((s, &r["rows"]), (200, &json!([["q"]])));
    for sql in [
        "DELETE FROM tasks",
        "UPDATE tasks SET title = 'x'",
        "PRAGMA writable_schema = ON",
        "ATTACH DATABASE 'x' AS y",
    ] {
        let (s, r) = c
            .post("/v1/query", &json!({"db": "sessions", "sql": sql}))
            .await;
        assert_eq!(s, 403, "{sql}: {r}");
    }
    let (_, r) = c
        .post(
            "/v1/query",
            &json!({"db": "sessions", "sql": "SELECT count(*) FROM tasks"}),
        )
        .await;
    assert_eq!(r["rows"], json!([[1]]));
}

#[tokio::test]
async fn metrics_and_status_report_the_workspace() {
    let ws = TestWorkspace::start().await;
    let c = &ws.client;
    c.post(
        "/v1/locks",
        &json!({"path": "a", "mode": "exclusive", "holder": "alpha"}),
    )
    .await;
    c.post("/v1/tasks", &json!({"agent": "alpha", "title": "m"}))
        .await;
    c.post("/v1/tasks/claim", &json!({"agent": "alpha"})).await;
    let text = c
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "coditect_lock_wait_seconds_count 1",
        "coditect_task_start_seconds_count 1",
        "coditect_lock_hold_seconds",
        "coditect_event_append_seconds",
        "coditect_task_queue_depth{agent=\"alpha\"} 0",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    let (_, status) = c.get("/v1/status").await;
    assert_eq!(status["workspace"], "test-ws");
    assert_eq!(status["locks"], 1);
    assert_eq!(status["agents"][0]["name"], "alpha");
    let (_, verify) = c.get("/v1/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn a_second_instance_on_the_same_folder_is_refused() {
    let ws = TestWorkspace::start().await;
    let err =
        coditect_runtime::WorkspaceRuntime::open(coditect_runtime::testkit::spec(), ws.root.path())
            .await
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("in use by another runtime instance"),
        "{err}"
    );
}

#[tokio::test]
async fn the_generated_token_is_private_and_stable_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let ws = TestWorkspace::start().await;
    let file = ws.runtime.layout.token_file();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "token file mode {mode:o}");
    let token = ws.runtime.token.clone();
    assert_eq!(token.len(), 64);
    let root = ws.stop().await;
    let again = TestWorkspace::start_in(root, coditect_runtime::testkit::spec()).await;
    assert_eq!(again.runtime.token, token);
    let (status, health) = again.client.get("/v1/health").await;
    assert_eq!((status, &health["ok"]), (200, &json!(true)));
}

#[tokio::test]
async fn imported_events_land_once_each_in_the_order_given() {
    let ws = TestWorkspace::start().await;
    let c = &ws.client;
    let batch = |sources: &[&str]| {
        json!({"events": sources.iter().map(|s| json!({
            "source": s, "agent": "claude", "type": "agent_message",
            "data": {"text": format!("line {s}"), "v1": {"ts": "2026-06-01T10:00:00Z"}},
        })).collect::<Vec<_>>()})
    };
    let (s, r) = c
        .post("/v1/events/import", &batch(&["v1:u:s:1", "v1:u:s:2"]))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["imported"].as_u64(), r["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    // Sent again with one more (an import cut off and retried): only the new one lands.
    let (_, r) = c
        .post(
            "/v1/events/import",
            &batch(&["v1:u:s:1", "v1:u:s:2", "v1:u:s:3", "v1:u:s:3"]),
        )
        .await;
    assert_eq!(
        (r["imported"].as_u64(), r["skipped"].as_u64()),
        (Some(1), Some(3)),
        "{r}"
    );
    let (_, events) = c.get("/v1/events").await;
    let imported: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["data"]["importedFrom"].as_str()?,
                e["data"]["text"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(
        imported,
        vec![
            ("v1:u:s:1", "line v1:u:s:1"),
            ("v1:u:s:2", "line v1:u:s:2"),
            ("v1:u:s:3", "line v1:u:s:3")
        ]
    );
    let first = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["importedFrom"] == "v1:u:s:1")
        .unwrap();
    assert_eq!(
        first["data"]["v1"]["ts"], "2026-06-01T10:00:00Z",
        "the original time is kept"
    );
    // The chain still verifies; a source-less event is refused and nothing lands.
    let (s, v) = c.get("/v1/verify").await;
    assert_eq!(s, 200, "{v}");
    let (s, err) = c
        .post(
            "/v1/events/import",
            &json!({"events": [{"source": " ", "agent": "a", "type": "agent_message"}]}),
        )
        .await;
    assert_eq!(s, 400, "{err}");
    let (_, after) = c.get("/v1/events").await;
    assert_eq!(
        after.as_array().unwrap().len(),
        events.as_array().unwrap().len()
    );
}
