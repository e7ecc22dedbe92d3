//! The views the studio and `coditect agents|locks` read: `/v1/agents` derives each
//! agent's state from its tasks, leases and events; `/v1/locks/waiters` says who waits;
//! `/v1/tree` lists `projects/`; a `file_edit` event carries the write's unified diff.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use coditect_runtime::testkit::TestWorkspace;
use serde_json::{Value, json};

fn agent<'a>(view: &'a Value, name: &str) -> &'a Value {
    view.as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_locks_and_tree_are_derived_from_what_the_runtime_keeps() {
    let ws = TestWorkspace::start().await;
    let (status, lease) = ws
        .client
        .post(
            "/v1/locks",
            &json!({"path": "src/a.txt", "mode": "exclusive", "holder": "alpha"}),
        )
        .await;
    assert_eq!(status, 200, "{lease}");
    let token = lease["token"].as_u64().unwrap();
    // beta waits for the same path.
    let client = ws.client.clone();
    let waiting = tokio::spawn(async move {
        client
            .post(
                "/v1/locks",
                &json!({"path": "src/a.txt", "mode": "exclusive", "holder": "beta", "wait_ms": 30000}),
            )
            .await
    });
    let locks = ws.runtime.locks.clone();
    common::until(|| locks.waiting() == 1).await;
    let (_, waiters) = ws.client.get("/v1/locks/waiters").await;
    assert_eq!(waiters[0]["holder"], "beta", "{waiters}");
    assert_eq!(waiters[0]["path"], "src/a.txt");

    let (status, _) = ws
        .client
        .post(
            "/v1/tasks",
            &json!({"agent": "alpha", "title": "queued one"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = ws
        .client
        .put_file("src/a.txt", token, "alpha", "one\ntwo\n")
        .await;
    assert_eq!(status, 200);
    let (status, _) = ws
        .client
        .put_file("src/a.txt", token, "alpha", "one\nthree\n")
        .await;
    assert_eq!(status, 200);

    let (status, view) = ws.client.get("/v1/agents").await;
    assert_eq!(status, 200, "{view}");
    let alpha = agent(&view, "alpha");
    assert_eq!(alpha["queued"], 1, "{alpha}");
    assert_eq!(alpha["locks"][0]["path"], "src/a.txt");
    assert_eq!(alpha["last_event"]["type"], "file_edit", "{alpha}");
    assert_eq!(alpha["tokens"], json!({"input": 0, "output": 0}));
    let beta = agent(&view, "beta");
    assert_eq!(beta["state"], "waiting_for_lock", "{beta}");
    assert_eq!(beta["waiting_for"][0]["path"], "src/a.txt");

    let (_, tree) = ws.client.get("/v1/tree").await;
    assert_eq!(
        tree["files"],
        json!([{"path": "src/a.txt", "size": 10}]),
        "{tree}"
    );
    assert_eq!(tree["truncated"], false);

    // The second write's event carries its diff.
    let (_, events) = ws.client.get("/v1/events?since=0").await;
    let edits: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "file_edit")
        .collect();
    let patch = edits[1]["data"]["diff"]["patch"].as_str().unwrap();
    assert!(
        patch.contains("-two\n") && patch.contains("+three\n"),
        "{patch}"
    );

    ws.client.delete(&format!("/v1/locks/{token}")).await;
    let (status, granted) = waiting.await.unwrap();
    assert_eq!(status, 200, "{granted}");
    assert_eq!(ws.client.get("/v1/locks/waiters").await.1, json!([]));
}
