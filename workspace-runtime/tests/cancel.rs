//! The orchestrator's view of a running agent: its state and task in `/v1/status`, and a
//! task cancelled while the agent works on it stops at the agent's next step and stays
//! cancelled.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use coditect_runtime::agents::{Model, ModelError, ModelTurn, ToolCall, Turn, runner};
use coditect_runtime::events::EventType;
use coditect_runtime::testkit::TestWorkspace;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

/// A model that says it was called, then waits for permission to answer with a write.
struct Gated {
    called: Arc<Notify>,
    answer: Arc<Semaphore>,
    calls: Arc<AtomicUsize>,
}

impl Model for Gated {
    fn provider(&self) -> &str {
        "gated"
    }

    async fn next_turn(&self, _: &[Turn], _: &[&str]) -> Result<ModelTurn, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.called.notify_one();
        self.answer.acquire().await.unwrap().forget();
        Ok(ModelTurn {
            text: String::new(),
            calls: vec![ToolCall {
                id: "1".into(),
                name: "write_file".into(),
                arguments: json!({"path": "a.md", "content": "x"}),
            }],
            ..ModelTurn::default()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_cancelled_while_running_stops_at_the_next_step() {
    let ws = TestWorkspace::start().await;
    let (called, answer, calls) = (
        Arc::new(Notify::new()),
        Arc::new(Semaphore::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let model = Gated {
        called: called.clone(),
        answer: answer.clone(),
        calls: calls.clone(),
    };
    let agent = tokio::spawn(runner::run(
        ws.runtime.clone(),
        "alpha".into(),
        10,
        model,
        std::future::pending::<()>(),
    ));
    let (_, task) = ws
        .client
        .post(
            "/v1/tasks",
            &json!({"agent": "alpha", "title": "write a.md"}),
        )
        .await;
    let id = task["id"].as_i64().unwrap();
    called.notified().await;

    let (_, status) = ws.client.get("/v1/status").await;
    let alpha = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "alpha")
        .unwrap()
        .clone();
    assert_eq!(
        (
            alpha["state"].as_str(),
            alpha["task"].as_i64(),
            alpha["runningAs"].as_str()
        ),
        (Some("analyzing"), Some(id), Some("gated")),
        "{alpha}"
    );
    let beta = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "beta")
        .unwrap()
        .clone();
    assert_eq!(beta["state"], "not running");

    let (status, _) = ws
        .client
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let (mut live, _) = ws.runtime.events.subscribe();
    answer.add_permits(1);
    // The agent finishes the step it is in, sees the cancellation, and goes idle.
    loop {
        let e = live.recv().await.unwrap();
        if e.kind == EventType::AgentStateChange && e.agent == "alpha" && e.data["state"] == "idle"
        {
            break;
        }
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no model call after the cancellation"
    );
    let (_, tasks) = ws.client.get("/v1/tasks?agent=alpha").await;
    assert_eq!(tasks[0]["state"], "cancelled", "{tasks}");
    agent.abort();
}
