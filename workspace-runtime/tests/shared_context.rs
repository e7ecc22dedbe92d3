//! Shared context: an agent's task prompt carries the other agents' recent edits, digests
//! of the files they read, and the messages addressed to it; what it did not have to read
//! again is counted as tokens saved in agent_metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use coditect_runtime::agents::{Model, ModelError, ModelTurn, ToolCall, Turn, runner};
use coditect_runtime::testkit::TestWorkspace;
use serde_json::{Value, json};

/// A model that plays back a script of turns and keeps every conversation it was shown.
struct Scripted {
    turns: Mutex<VecDeque<Vec<(&'static str, Value)>>>,
    seen: Arc<Mutex<Vec<Vec<Turn>>>>,
}

impl Scripted {
    fn new(turns: Vec<Vec<(&'static str, Value)>>) -> (Self, Arc<Mutex<Vec<Vec<Turn>>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let model = Scripted {
            turns: Mutex::new(turns.into()),
            seen: seen.clone(),
        };
        (model, seen)
    }
}

impl Model for Scripted {
    fn provider(&self) -> &str {
        "scripted"
    }

    async fn next_turn(&self, conversation: &[Turn], _: &[&str]) -> Result<ModelTurn, ModelError> {
        self.seen.lock().unwrap().push(conversation.to_vec());
        let calls = self.turns.lock().unwrap().pop_front().unwrap_or_default();
        Ok(ModelTurn {
            text: String::new(),
            calls: calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, arguments))| ToolCall {
                    id: format!("c{i}"),
                    name: name.into(),
                    arguments,
                })
                .collect(),
            ..ModelTurn::default()
        })
    }
}

async fn run(ws: &TestWorkspace, agent: &str, model: Scripted) {
    let handle = tokio::spawn(runner::run(
        ws.runtime.clone(),
        agent.into(),
        10,
        model,
        std::future::pending::<()>(),
    ));
    let (_, task) = ws
        .client
        .post("/v1/tasks", &json!({"agent": agent, "title": "work"}))
        .await;
    common::finished(ws, &[task["id"].as_i64().unwrap()]).await;
    handle.abort();
}

fn samples(ws: &TestWorkspace, agent: &str, metric: &str) -> Vec<f64> {
    ws.runtime
        .db
        .agent_metrics
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT value FROM samples WHERE agent = ?1 AND metric = ?2 ORDER BY rowid",
            )?;
            stmt.query_map([agent, metric], |r| r.get(0))?.collect()
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_what_the_others_read_wrote_and_said_and_does_not_read_it_again() {
    let ws = TestWorkspace::start().await;
    let readme = format!("# Demo project\n{}", "line of text\n".repeat(300));
    std::fs::write(ws.runtime.layout.projects().join("README.md"), &readme).unwrap();
    let notes = "n".repeat(399) + "\n";

    let (alpha, _) = Scripted::new(vec![
        vec![("read_file", json!({"path": "README.md"}))],
        vec![("write_file", json!({"path": "notes.md", "content": notes}))],
        vec![(
            "send_message",
            json!({"to": "beta", "text": "README describes the demo"}),
        )],
    ]);
    run(&ws, "alpha", alpha).await;

    let (beta, seen) = Scripted::new(vec![
        vec![("read_file", json!({"path": "notes.md"}))],
        vec![("read_file", json!({"path": "notes.md"}))],
    ]);
    run(&ws, "beta", beta).await;

    let seen = seen.lock().unwrap();
    let Turn::User { text: prompt } = &seen[0][0] else {
        panic!("the task comes first")
    };
    for expected in [
        "Files in the workspace (2):",
        "- README.md (",
        "alpha wrote notes.md (+1 -0 lines, sha256 ",
        "README.md: 301 lines",
        "read by alpha, begins \"# Demo project\"",
        "Messages to you:\n- from alpha: README describes the demo",
    ] {
        assert!(
            prompt.contains(expected),
            "missing {expected:?} in:\n{prompt}"
        );
    }
    // The second read of the unchanged file is answered short.
    let last = seen.last().unwrap();
    let Turn::ToolResult { content, .. } = last.last().unwrap() else {
        panic!("a tool result last")
    };
    assert_eq!(content["unchanged"], true, "{content}");

    let saved = samples(&ws, "beta", "tokens_saved");
    assert_eq!(saved.len(), 2, "{saved:?}");
    assert_eq!(saved[0], 100.0, "the repeated read: 400 bytes at 4 a token");
    let digest_line = prompt
        .lines()
        .find(|l| l.starts_with("- README.md: "))
        .unwrap();
    let expected = (readme.len() - digest_line.len() - 1) / 4;
    assert_eq!(saved[1], expected as f64, "README was never read by beta");
    assert!(
        samples(&ws, "alpha", "tokens_saved").is_empty(),
        "alpha read all it used"
    );
}
