//! Four agents, one per provider (Claude over Anthropic Messages, Gemini over
//! streamGenerateContent, Codex over OpenAI Responses, Kimi over Moonshot Chat
//! Completions), each against its own local server on 127.0.0.1 that answers in that
//! provider's streamed wire format, all appending to one file at once. Started from the
//! spec the way a user starts them (`start_agents` → each provider's adapter), they must
//! lose no update, every write must carry the fencing token of a lease its agent held, and
//! the event log must tell each task's story in order.
//!
//! The spec names `HOME` as every agent's key variable: tests cannot set environment
//! variables (that is `unsafe`, which the workspace forbids), and each server checks that
//! the key it receives is that variable's value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::testkit::{TestWorkspace, spec_from};
use serde_json::{Value, json};

const TASKS_PER_AGENT: usize = 3;
const FILE: &str = "shared.md";

/// What every agent's model decides, whatever wire format carries it: take the lock, read
/// the file, write it back with the task's line appended, release, finish.
enum Step {
    Call(&'static str, Value),
    Done(String),
}

fn decide(task: &str, history: &[(String, Value)]) -> Step {
    let token = || history[0].1["token"].clone();
    match history.len() {
        0 => Step::Call("acquire_lock", json!({"path": FILE, "mode": "exclusive"})),
        1 => {
            assert_eq!(history[0].0, "acquire_lock");
            assert!(token().is_u64(), "{:?}", history[0].1);
            Step::Call("read_file", json!({"path": FILE}))
        }
        2 => {
            // Before the first write the file does not exist: the read fails.
            let old = history[1].1["content"].as_str().unwrap_or_default();
            Step::Call(
                "write_file",
                json!({"path": FILE, "content": format!("{old}{task}\n"), "token": token()}),
            )
        }
        3 => Step::Call("release_lock", json!({"token": token()})),
        _ => Step::Done(format!("appended {task}")),
    }
}

/// A tool result as the model reads it: JSON when it is JSON.
fn result(text: &Value) -> Value {
    match text {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| text.clone()),
        other => other.clone(),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap().to_string()
}

fn key_ok(headers: &HeaderMap, name: &str, prefix: &str) -> bool {
    let home = std::env::var("HOME").unwrap();
    headers.get(name).and_then(|v| v.to_str().ok()) == Some(&format!("{prefix}{home}"))
}

async fn anthropic(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    assert!(key_ok(&headers, "x-api-key", ""));
    let messages = body["messages"].as_array().unwrap();
    let task = first_line(messages[0]["content"].as_str().unwrap());
    let mut names = HashMap::new();
    let mut history = Vec::new();
    for m in messages.iter().skip(1) {
        for b in m["content"].as_array().unwrap() {
            match b["type"].as_str() {
                Some("tool_use") => {
                    names.insert(b["id"].clone(), b["name"].as_str().unwrap().to_string());
                }
                Some("tool_result") => {
                    history.push((names[&b["tool_use_id"]].clone(), result(&b["content"])))
                }
                _ => {}
            }
        }
    }
    let (content, stop) = match decide(&task, &history) {
        Step::Call(name, input) => (
            json!([{"type": "tool_use", "id": format!("toolu_{}", history.len()), "name": name, "input": input}]),
            "tool_use",
        ),
        Step::Done(text) => (json!([{"type": "text", "text": text}]), "end_turn"),
    };
    let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 10}});
    assert_eq!(body["stream"], true, "adapters stream by default");
    common::wire::anthropic_events(&answer)
}

async fn gemini(
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    assert!(key_ok(&headers, "x-goog-api-key", ""));
    assert_eq!(
        (model.as_str(), query.as_deref()),
        ("gemini-2.5-pro:streamGenerateContent", Some("alt=sse"))
    );
    let contents = body["contents"].as_array().unwrap();
    let task = first_line(contents[0]["parts"][0]["text"].as_str().unwrap());
    let history: Vec<(String, Value)> = contents
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap().clone())
        .filter_map(|p| p.get("functionResponse").cloned())
        .map(|r| {
            let value = if r["response"]["output"].is_null() {
                r["response"]["error"].clone()
            } else {
                r["response"]["output"].clone()
            };
            (r["name"].as_str().unwrap().to_string(), value)
        })
        .collect();
    let part = match decide(&task, &history) {
        Step::Call(name, args) => json!({"functionCall": {"name": name, "args": args}}),
        Step::Done(text) => json!({"text": text}),
    };
    let answer = json!({
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10},
        "modelVersion": "gemini-2.5-pro"
    });
    common::wire::gemini_chunks(&answer)
}

async fn openai(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    assert!(key_ok(&headers, "authorization", "Bearer "));
    let input = body["input"].as_array().unwrap();
    let task = first_line(input[0]["content"].as_str().unwrap());
    let mut names = HashMap::new();
    let mut history = Vec::new();
    for item in input {
        match item["type"].as_str() {
            Some("function_call") => {
                names.insert(
                    item["call_id"].clone(),
                    item["name"].as_str().unwrap().to_string(),
                );
            }
            Some("function_call_output") => {
                history.push((names[&item["call_id"]].clone(), result(&item["output"])))
            }
            _ => {}
        }
    }
    let output = match decide(&task, &history) {
        Step::Call(name, args) => {
            json!([{"type": "function_call", "id": format!("fc_{}", history.len()),
            "call_id": format!("call_{}", history.len()), "name": name, "arguments": args.to_string(), "status": "completed"}])
        }
        Step::Done(text) => {
            json!([{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}])
        }
    };
    let answer = json!({"id": "resp_1", "object": "response", "status": "completed", "model": body["model"],
        "output": output, "usage": {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110}});
    assert_eq!(body["stream"], true, "adapters stream by default");
    common::wire::responses_events(&answer)
}

async fn moonshot(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    assert!(key_ok(&headers, "authorization", "Bearer "));
    let messages = body["messages"].as_array().unwrap();
    let task = first_line(messages[1]["content"].as_str().unwrap());
    let mut names = HashMap::new();
    let mut history = Vec::new();
    for m in messages {
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            names.insert(
                c["id"].clone(),
                c["function"]["name"].as_str().unwrap().to_string(),
            );
        }
        if m["role"] == "tool" {
            history.push((names[&m["tool_call_id"]].clone(), result(&m["content"])));
        }
    }
    let (message, finish) = match decide(&task, &history) {
        Step::Call(name, args) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{}", history.len()),
                "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}),
            "tool_calls",
        ),
        Step::Done(text) => (json!({"role": "assistant", "content": text}), "stop"),
    };
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}});
    common::wire::chat_chunks(&answer).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_providers_append_to_one_file_without_losing_an_update() {
    let claude = common::serve(Router::new().route("/v1/messages", post(anthropic))).await;
    let google = common::serve(Router::new().route("/v1beta/models/{model}", post(gemini))).await;
    let codex = common::serve(Router::new().route("/v1/responses", post(openai))).await;
    let kimi = common::serve(Router::new().route("/v1/chat/completions", post(moonshot))).await;
    let spec = spec_from(&format!(
        r#"
apiVersion: coditect.io/v1
kind: Workspace
metadata: {{name: four, organization: acme, team: qa}}
spec:
  owner: tester
  locks: {{leaseTtl: 30s, acquireTimeout: 20s}}
  agents:
    - {{name: claude, provider: anthropic, model: claude-sonnet-4-5, baseUrl: "{claude}", credentials: {{env: HOME}}}}
    - {{name: gemini, provider: google, model: gemini-2.5-pro, baseUrl: "{google}", credentials: {{env: HOME}}}}
    - {{name: codex, provider: openai, model: gpt-5-codex, baseUrl: "{codex}/v1", credentials: {{env: HOME}}}}
    - {{name: kimi, provider: moonshot, model: kimi-k2.6, baseUrl: "{kimi}/v1", credentials: {{env: HOME}}}}
"#
    ));
    let ws = TestWorkspace::start_spec_with_agents(spec).await;
    let agents = ["claude", "gemini", "codex", "kimi"];
    let mut ids = Vec::new();
    let mut lines = BTreeSet::new();
    for n in 0..TASKS_PER_AGENT {
        for agent in agents {
            let title = format!("{agent} line {n}");
            let (status, task) = ws
                .client
                .post("/v1/tasks", &json!({"agent": agent, "title": title}))
                .await;
            assert!((200..300).contains(&status), "{task}");
            ids.push(task["id"].as_i64().unwrap());
            lines.insert(title);
        }
    }
    common::finished(&ws, &ids).await;

    // No lost update: every task's line is in the file, once.
    let text = std::fs::read_to_string(ws.runtime.layout.projects().join(FILE)).unwrap();
    let written: Vec<&str> = text.lines().collect();
    assert_eq!(written.len(), lines.len(), "{text}");
    assert_eq!(
        written
            .iter()
            .map(|l| l.to_string())
            .collect::<BTreeSet<_>>(),
        lines
    );
    let (_, tasks) = ws.client.get("/v1/tasks").await;
    for t in tasks.as_array().unwrap() {
        assert_eq!(t["state"], "done", "{t}");
    }

    // The event log, in order.
    let (_, events) = ws.client.get("/v1/events?since=0&limit=10000").await;
    let events = events.as_array().unwrap();
    let mut held: HashMap<u64, String> = HashMap::new(); // token → holder
    let mut last_token = 0;
    let mut running: HashMap<String, i64> = HashMap::new(); // agent → task
    let mut edits_in_task: HashMap<i64, usize> = HashMap::new();
    let mut providers: HashMap<String, String> = HashMap::new();
    for e in events {
        let agent = e["agent"].as_str().unwrap().to_string();
        let d = &e["data"];
        match e["type"].as_str().unwrap() {
            "lock_acquired" => {
                held.insert(d["token"].as_u64().unwrap(), agent);
            }
            "lock_released" => {
                held.remove(&d["token"].as_u64().unwrap());
            }
            "file_edit" => {
                let token = d["token"].as_u64().unwrap();
                assert_eq!(
                    held.get(&token),
                    Some(&agent),
                    "{agent} wrote with a lease it held: {e}"
                );
                assert!(token > last_token, "fencing tokens only grow: {e}");
                last_token = token;
                let task = running[&agent];
                *edits_in_task.entry(task).or_default() += 1;
            }
            "task_started" => {
                assert!(
                    running.insert(agent, d["task"].as_i64().unwrap()).is_none(),
                    "one task at a time: {e}"
                );
            }
            "task_finished" => {
                assert_eq!(running.remove(&agent), d["task"].as_i64(), "{e}");
            }
            "agent_state_change" => {
                if let Some(p) = d["provider"].as_str() {
                    providers.insert(agent, p.to_string());
                }
            }
            _ => {}
        }
    }
    assert!(
        ids.iter().all(|id| edits_in_task.get(id) == Some(&1)),
        "{edits_in_task:?}"
    );
    assert_eq!(
        providers,
        HashMap::from([
            ("claude".to_string(), "anthropic".to_string()),
            ("gemini".to_string(), "google".to_string()),
            ("codex".to_string(), "openai".to_string()),
            ("kimi".to_string(), "moonshot".to_string()),
        ])
    );
    assert!(
        ws.runtime.verify().ok,
        "the event chain and databases verify"
    );
}
