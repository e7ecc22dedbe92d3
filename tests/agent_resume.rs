//! A task interrupted between two tool calls resumes where it was: a real `coditect
//! workspace-runtime` whose Kimi agent talks to a local server speaking Moonshot's
//! streamed Chat Completions (thinking on, `reasoning_content` required back on every
//! tool-call message) is SIGKILLed while the model holds its second request; after a
//! restart the task goes on from its stored conversation, and the next request carries
//! the reasoning the provider requires, with the first call's result, not a fresh start.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::testkit::{ApiClient, TempRoot};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

#[derive(Default)]
struct Model {
    requests: Vec<Value>,
    /// Set once the second request has arrived (and is held forever).
    held: Option<tokio::sync::oneshot::Sender<()>>,
}

fn reasoning(call: &str) -> String {
    format!("Before {call}: the file needs its lock, then the write, then the release.")
}

/// One streamed answer: reasoning, then one call (or text), finish, usage, `[DONE]`.
fn stream(call: Option<(&str, &str, Value)>, text: &str) -> Response {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-r", "object": "chat.completion.chunk", "model": "kimi-k2.6",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let id = call.as_ref().map_or("answer", |c| c.0);
    let mut events = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"reasoning_content": reasoning(id)}), Value::Null),
    ];
    match &call {
        Some((id, name, args)) => events.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}),
            Value::Null,
        )),
        None => events.push(chunk(json!({"content": text}), Value::Null)),
    }
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    events.push(chunk(json!({}), json!(finish)));
    let mut body = String::new();
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str("data: {\"id\":\"chatcmpl-r\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":9,\"total_tokens\":59}}\n\ndata: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn completions(State(model): State<Arc<Mutex<Model>>>, Json(body): Json<Value>) -> Response {
    let messages = body["messages"].as_array().unwrap().clone();
    // Moonshot's rule: each assistant tool-call message carries its reasoning.
    for (i, m) in messages.iter().enumerate() {
        if let Some(calls) = m["tool_calls"].as_array() {
            let id = calls[0]["id"].as_str().unwrap();
            if m["reasoning_content"].as_str() != Some(&reasoning(id)) {
                let err = json!({"error": {"message": format!("thinking is enabled but reasoning_content is missing in assistant tool call message at index {i}"), "type": "invalid_request_error"}});
                return (StatusCode::BAD_REQUEST, Json(err)).into_response();
            }
        }
    }
    let results: Vec<Value> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .cloned()
        .collect();
    let held = {
        let mut m = model.lock().unwrap();
        m.requests.push(body.clone());
        if results.len() == 1 {
            m.held.take()
        } else {
            None
        }
    };
    if let Some(held) = held {
        // The first time the model is asked after the first tool result, it thinks for
        // ever: the instance is killed while this request is in flight.
        let _ = held.send(());
        std::future::pending::<()>().await;
    }
    let token = || {
        let lease: Value = serde_json::from_str(results[0]["content"].as_str().unwrap()).unwrap();
        lease["token"].clone()
    };
    match results.len() {
        0 => stream(
            Some((
                "call_1",
                "acquire_lock",
                json!({"path": "resume.md", "mode": "exclusive"}),
            )),
            "",
        ),
        1 => stream(
            Some((
                "call_2",
                "write_file",
                json!({"path": "resume.md", "content": "resumed\n", "token": token()}),
            )),
            "",
        ),
        2 => stream(
            Some(("call_3", "release_lock", json!({"token": token()}))),
            "",
        ),
        _ => stream(None, "Wrote resume.md."),
    }
}

fn start(spec: &Path, root: &Path) -> (Child, ApiClient) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .args(["workspace-runtime", "--spec"])
        .arg(spec)
        .arg("--root")
        .arg(root)
        .env("KIMI_TEST_KEY", "sk-kimi-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let client = coditect_runtime::testkit::ready_client(&mut child);
    (child, client)
}

/// Waits on the event stream until task `id` has finished.
async fn finished(client: &ApiClient, id: i64) {
    let (mut ws, _) = tokio_tungstenite::connect_async(client.ws_url("/v1/events/ws?since=0"))
        .await
        .unwrap();
    while let Some(Ok(msg)) = ws.next().await {
        let Ok(text) = msg.into_text() else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if event["type"] == "task_finished" && event["data"]["task"] == id {
            return;
        }
    }
    panic!("the event stream ended before task {id} finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_killed_between_two_tool_calls_resumes_with_the_provider_state() {
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let model = Arc::new(Mutex::new(Model {
        held: Some(held_tx),
        ..Model::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(model.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let root = TempRoot::new();
    let spec = root.path().join("workspace.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: coditect.io/v1
kind: Workspace
metadata: {{name: resume-ws, organization: acme, team: qa}}
spec:
  owner: tester
  locks: {{leaseTtl: 60s, acquireTimeout: 2s}}
  agents:
    - name: kimi
      provider: moonshot
      model: kimi-k2.6
      baseUrl: {base}
      credentials: {{env: KIMI_TEST_KEY}}
      reasoning: {{effort: high}}
"
        ),
    )
    .unwrap();
    let (mut child, client) = start(&spec, root.path());
    let (status, task) = client
        .post(
            "/v1/tasks",
            &json!({"agent": "kimi", "title": "write resume.md"}),
        )
        .await;
    assert_eq!(status, 200, "{task}");
    let id = task["id"].as_i64().unwrap();
    held_rx.await.unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let before = model.lock().unwrap().requests.len();
    assert_eq!(before, 2, "killed while the second request was in flight");

    let (mut child, client) = start(&spec, root.path());
    finished(&client, id).await;
    let (_, tasks) = client.get("/v1/tasks?agent=kimi").await;
    assert_eq!(tasks[0]["state"], "done", "{tasks}");
    let projects = root
        .path()
        .join("organizations/acme/teams/qa/users/tester/workspaces/resume-ws/projects/resume.md");
    assert_eq!(std::fs::read_to_string(projects).unwrap(), "resumed\n");

    let requests = model.lock().unwrap().requests.clone();
    let resumed = &requests[before];
    let messages = resumed["messages"].as_array().unwrap();
    let tool_results = messages.iter().filter(|m| m["role"] == "tool").count();
    assert_eq!(
        tool_results, 1,
        "the resumed request goes on after the first call's stored result, not from the start"
    );
    let assistant = messages.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(assistant["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        assistant["reasoning_content"].as_str(),
        Some(reasoning("call_1").as_str()),
        "the reasoning stored with the conversation went out again after the restart"
    );
    assert!(
        requests[before..].iter().all(|r| r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "tool")),
        "no request after the restart started the task over"
    );
    assert_eq!(requests.len(), before + 3);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
}
