//! Offline agents working in a real instance: tasks are claimed by the agent loop, carried
//! out through tools under locks with fencing tokens, and every step is in the event log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use coditect_runtime::testkit::TestWorkspace;
use common::finished;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_agent_carries_out_a_task_under_a_lock() {
    let ws = TestWorkspace::start_with_agents().await;
    let (_, task) = ws
        .client
        .post(
            "/v1/tasks",
            &json!({"agent": "alpha", "title": "create file notes/hello.md with Hello from alpha"}),
        )
        .await;
    finished(&ws, &[task["id"].as_i64().unwrap()]).await;
    let written =
        std::fs::read_to_string(ws.runtime.layout.projects().join("notes/hello.md")).unwrap();
    assert_eq!(written, "Hello from alpha");
    let (_, t) = ws.client.get("/v1/tasks?agent=alpha").await;
    assert_eq!(t[0]["state"], "done", "{t}");
    let (_, events) = ws.client.get("/v1/events?since=0").await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for kind in [
        "task_started",
        "agent_state_change",
        "tool_call",
        "tool_result",
        "lock_acquired",
        "file_edit",
        "lock_released",
        "task_finished",
    ] {
        assert!(kinds.contains(&kind), "missing {kind} in {kinds:?}");
    }
    // Every tool result answers a call made before it.
    let all = events.as_array().unwrap();
    for r in all.iter().filter(|e| e["type"] == "tool_result") {
        assert!(
            all.iter().any(|c| c["type"] == "tool_call"
                && c["data"]["call"] == r["data"]["call"]
                && c["seq"].as_u64() < r["seq"].as_u64()),
            "an unpaired result: {r}"
        );
    }
    let edit = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "file_edit")
        .unwrap();
    assert!(
        edit["data"]["token"].as_u64().unwrap() > 0,
        "the write carried a fencing token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_appending_to_one_file_lose_no_update() {
    let ws = TestWorkspace::start_with_agents().await;
    let (_, t) = ws
        .client
        .post(
            "/v1/tasks",
            &json!({"agent": "alpha", "title": "create file shared.md with # log"}),
        )
        .await;
    finished(&ws, &[t["id"].as_i64().unwrap()]).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        for agent in ["alpha", "beta"] {
            let (_, t) = ws
                .client
                .post(
                    "/v1/tasks",
                    &json!({"agent": agent, "title": format!("append {agent}-{i} to shared.md")}),
                )
                .await;
            ids.push(t["id"].as_i64().unwrap());
        }
    }
    finished(&ws, &ids).await;
    let text = std::fs::read_to_string(ws.runtime.layout.projects().join("shared.md")).unwrap();
    for i in 0..10 {
        for agent in ["alpha", "beta"] {
            assert!(
                text.lines().any(|l| l == format!("{agent}-{i}")),
                "lost update: {agent}-{i} missing from\n{text}"
            );
        }
    }
    assert_eq!(text.lines().count(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_the_planner_cannot_read_fails_with_the_forms_it_knows() {
    let ws = TestWorkspace::start_with_agents().await;
    let (_, t) = ws
        .client
        .post(
            "/v1/tasks",
            &json!({"agent": "beta", "title": "make everything better"}),
        )
        .await;
    let id = t["id"].as_i64().unwrap();
    finished(&ws, &[id]).await;
    let (_, tasks) = ws.client.get("/v1/tasks?agent=beta").await;
    assert_eq!(tasks[0]["state"], "failed");
    assert!(
        tasks[0]["result"]
            .as_str()
            .unwrap()
            .contains("create file PATH with TEXT")
    );
}
