//! Task routing: an explicit agent, the least busy agent holding a role, or the least busy
//! agent of all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use coditect_runtime::testkit::{TempRoot, TestWorkspace, spec_from};
use serde_json::json;

const SPEC: &str = r#"
apiVersion: coditect.io/v1
kind: Workspace
metadata: {name: routed, organization: acme, team: qa}
spec:
  owner: tester
  agents:
    - {name: planner, provider: offline, role: lead}
    - {name: coder-1, provider: offline, role: coder}
    - {name: coder-2, provider: offline, role: coder}
"#;

#[tokio::test]
async fn tasks_go_to_the_least_busy_agent_of_the_role_asked_for() {
    let ws = TestWorkspace::start_in(Arc::new(TempRoot::new()), spec_from(SPEC)).await;
    let c = &ws.client;
    let submit = |body: serde_json::Value| async move { c.post("/v1/tasks", &body).await };
    let (_, a) = submit(json!({"role": "coder", "title": "one"})).await;
    let (_, b) = submit(json!({"role": "coder", "title": "two"})).await;
    let (_, d) = submit(json!({"role": "coder", "title": "three"})).await;
    assert_eq!(
        (a["agent"].as_str(), b["agent"].as_str()),
        (Some("coder-1"), Some("coder-2")),
        "spread over the role"
    );
    assert_eq!(d["agent"], "coder-1", "then back to the least busy");
    let (_, lead) = submit(json!({"role": "lead", "title": "plan"})).await;
    assert_eq!(lead["agent"], "planner");
    let (_, any) = submit(json!({"title": "anything"})).await;
    assert_eq!(
        any["agent"], "coder-2",
        "no role: the least busy of all (coder-1 has 2; coder-2 and planner 1 each; ties by name)"
    );
    let (_, explicit) = submit(json!({"agent": "coder-2", "title": "mine"})).await;
    assert_eq!(explicit["agent"], "coder-2");
    let (status, err) = submit(json!({"role": "tester", "title": "t"})).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("no_agent_for_role"))
    );
    let (_, events) = c.get("/v1/events?since=0").await;
    let routed: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "task_queued")
        .map(|e| e["data"]["routed"].as_str().unwrap())
        .collect();
    assert_eq!(
        routed,
        ["role", "role", "role", "role", "least-busy", "explicit"]
    );
}
