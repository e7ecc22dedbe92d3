//! The Anthropic Messages adapter against a local server on 127.0.0.1 answering in that
//! wire format: a rate limit first, then a tool-using task through the agent loop; once
//! answered as JSON bodies, once streamed as Messages events (where the rate limit is an
//! `overloaded_error` event inside a 200 stream, as the API sends it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::anthropic::Messages;
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<Value>,
    limited: bool,
}

fn message(content: Value, stop: &str) -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 300, "output_tokens": 40}
    })
}

async fn messages(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if header("x-api-key").as_deref() != Some("sk-ant-test")
        || header("anthropic-version").as_deref() != Some("2023-06-01")
    {
        let err = json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}});
        return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
    }
    let mut s = seen.lock().unwrap();
    s.requests.push(body.clone());
    if !s.limited && body["stream"] == true {
        s.limited = true;
        let err = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
        return common::sse(vec![(Some("error"), err.to_string())]);
    }
    if !s.limited {
        s.limited = true;
        let err = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your rate limit"}});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(err),
        )
            .into_response();
    }
    let results: Vec<Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user" && m["content"].is_array())
        .flat_map(|m| m["content"].as_array().unwrap().clone())
        .filter(|b| b["type"] == "tool_result")
        .collect();
    let answer = match results.len() {
        0 => message(
            json!([
                {"type": "text", "text": "I'll take the lock first."},
                {"type": "tool_use", "id": "toolu_01", "name": "acquire_lock", "input": {"path": "claude.md"}}
            ]),
            "tool_use",
        ),
        1 => {
            assert_eq!(results[0]["tool_use_id"], "toolu_01");
            assert_eq!(results[0]["is_error"], false);
            let lease: Value =
                serde_json::from_str(results[0]["content"].as_str().unwrap()).unwrap();
            message(
                json!([
                    {"type": "tool_use", "id": "toolu_02", "name": "write_file", "input": {"path": "claude.md", "content": "# by claude\n", "token": lease["token"]}},
                    {"type": "tool_use", "id": "toolu_03", "name": "release_lock", "input": {"token": lease["token"]}}
                ]),
                "tool_use",
            )
        }
        _ => {
            // Both results of the previous turn arrive in one user message.
            let last = body["messages"].as_array().unwrap().last().unwrap();
            assert_eq!(last["content"].as_array().unwrap().len(), 2, "{last}");
            message(
                json!([{"type": "tool_use", "id": "toolu_04", "name": "complete_task", "input": {"ok": true, "summary": "wrote claude.md"}}]),
                "tool_use",
            )
        }
    };
    if body["stream"] == true {
        common::wire::anthropic_events(&answer)
    } else {
        Json(answer).into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_model_carries_a_task_through_tools_under_a_lock() {
    carry(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_messages_model_carries_the_same_task() {
    carry(true).await;
}

async fn carry(streaming: bool) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = common::serve(
        Router::new()
            .route("/v1/messages", post(messages))
            .with_state(seen.clone()),
    )
    .await;
    let model =
        Messages::new(&base, "sk-ant-test".into(), "claude-sonnet-4-5", 4096).streaming(streaming);
    let (ws, task) = common::run_task(model, "write claude.md").await;
    common::assert_never_logged(&ws, "sk-ant-test").await;
    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("claude.md")).unwrap(),
        "# by claude\n"
    );
    assert_eq!(
        (task["state"].as_str(), task["result"].as_str()),
        (Some("done"), Some("wrote claude.md"))
    );
    let (_, events) = ws.client.get("/v1/events?since=0").await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "agent_message"
                && e["data"]["text"] == "I'll take the lock first.")
    );
    assert_eq!(common::metric_sum(&ws, "tokens_out"), 120.0);
    assert_eq!(common::metric_sum(&ws, "rate_limited"), 1.0);
    let s = seen.lock().unwrap();
    assert_eq!(
        s.requests.len(),
        4,
        "one rate-limited request, then three turns"
    );
    let first = &s.requests[1];
    assert_eq!(
        (first["model"].as_str(), first["max_tokens"].as_u64()),
        (Some("claude-sonnet-4-5"), Some(4096))
    );
    assert!(first["system"].as_str().unwrap().contains("acquire_lock"));
    assert!(
        first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "write_file" && t["input_schema"]["type"] == "object")
    );
    let assistant = s.requests[2]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(
        assistant["content"][1]["type"], "tool_use",
        "text and tool_use blocks are sent back as given"
    );
}
