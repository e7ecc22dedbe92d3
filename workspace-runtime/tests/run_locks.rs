//! Locks belong to the run that took them: every ending of a task releases its leases at
//! once (a failed task no longer blocks its path for a whole lease), a re-run of a task
//! takes its own lease back instead of waiting on it, and a step's write is not made twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use coditect_runtime::agents::ToolCall;
use coditect_runtime::agents::tools::Toolbox;
use coditect_runtime::testkit::TestWorkspace;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_releases_its_lock_at_once() {
    let ws = TestWorkspace::start_with_agents().await;
    let (_, failing) = ws
        .client
        .post(
            "/v1/tasks",
            &json!({"agent": "alpha", "title": "append a line to missing.md"}),
        )
        .await;
    let id = failing["id"].as_i64().unwrap();
    common::finished(&ws, &[id]).await;
    let (_, tasks) = ws.client.get("/v1/tasks?agent=alpha").await;
    assert_eq!(tasks[0]["state"], "failed", "{tasks}");
    let (_, locks) = ws.client.get("/v1/locks").await;
    assert_eq!(locks, json!([]), "the failed run's lease is gone: {locks}");
    // The next task on the path is not held up by it.
    let (_, next) = ws
        .client
        .post(
            "/v1/tasks",
            &json!({"agent": "beta", "title": "create file missing.md with now here"}),
        )
        .await;
    common::finished(&ws, &[next["id"].as_i64().unwrap()]).await;
    let (_, tasks) = ws.client.get("/v1/tasks?agent=beta").await;
    assert_eq!(tasks[0]["state"], "done", "{tasks}");
}

fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_takes_its_own_lease_back_and_does_not_repeat_a_write() {
    let ws = TestWorkspace::start().await;
    let first = Toolbox::new(ws.runtime.clone(), "alpha");
    first.begin_task(7);
    let acquire = call("c1", "acquire_lock", json!({"path": "notes.md"}));
    let lease = first.run(&acquire, "task-7/turn-1/c1").await.unwrap();
    let token = lease["token"].as_u64().unwrap();

    // The run is interrupted (its toolbox gone, as in a restart) and the task runs again:
    // the same agent and task get their lease back instead of waiting it out.
    let rerun = Toolbox::new(ws.runtime.clone(), "alpha");
    rerun.begin_task(7);
    let again = rerun.run(&acquire, "task-7/turn-1/c1").await.unwrap();
    assert_eq!(again["token"].as_u64(), Some(token), "{again}");
    // Another task of the same agent is another run: it waits, and times out.
    let other = Toolbox::new(ws.runtime.clone(), "alpha");
    other.begin_task(8);
    let refused = other
        .run(
            &call("c9", "acquire_lock", json!({"path": "notes.md"})),
            "task-8/turn-1/c9",
        )
        .await
        .unwrap_err();
    assert!(refused.contains("timed out"), "{refused}");

    // A step's write is made once, however often the step runs.
    let write = call(
        "c2",
        "write_file",
        json!({"path": "notes.md", "content": "one line\n", "token": token}),
    );
    let made = rerun.run(&write, "task-7/turn-2/c2").await.unwrap();
    let edit = call(
        "c3",
        "edit_file",
        json!({"path": "notes.md", "search": "one line\n", "replace": "one line\nappended\n", "token": token}),
    );
    rerun.run(&edit, "task-7/turn-3/c3").await.unwrap();
    let repeated = rerun.run(&edit, "task-7/turn-3/c3").await.unwrap();
    assert!(
        repeated["note"].as_str().unwrap().contains("not repeated"),
        "{repeated}"
    );
    let rewrite = rerun.run(&write, "task-7/turn-2/c2").await.unwrap();
    assert_eq!(rewrite["sha256"], made["sha256"]);
    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("notes.md")).unwrap(),
        "one line\nappended\n",
        "the edit went in once, and the repeated write did not undo it"
    );

    // The run ends: its lease with it, so the other task gets the path at once.
    rerun.end_task();
    let (_, locks) = ws.client.get("/v1/locks").await;
    assert_eq!(locks, json!([]), "{locks}");
    other
        .run(
            &call("c9", "acquire_lock", json!({"path": "notes.md"})),
            "task-8/turn-1/c9",
        )
        .await
        .unwrap();
}
