//! The Chat Completions adapter (Moonshot, OpenAI-compatible servers) against a local
//! server on 127.0.0.1 answering in that wire format: a rate limit first, then a
//! multi-turn, tool-using task carried through the real agent loop, once answered as one
//! JSON body and once streamed as `chat.completion.chunk` events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::openai_compat::ChatCompletions;
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<Value>,
    rate_limited: bool,
}

fn tool_call(id: &str, name: &str, args: Value) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "kimi-k2.6",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]
        }}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140}
    })
}

async fn completions(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer test-key") {
        let err = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}});
        return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
    }
    let mut s = seen.lock().unwrap();
    s.requests.push(body.clone());
    if !s.rate_limited {
        s.rate_limited = true;
        let err = json!({"error": {"message": "Rate limit reached for requests", "type": "rate_limit_error"}});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(err),
        )
            .into_response();
    }
    let messages = body["messages"].as_array().unwrap();
    let results: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    let answer = match results.len() {
        0 => tool_call(
            "call_1",
            "acquire_lock",
            json!({"path": "kimi.md", "mode": "exclusive"}),
        ),
        1 => {
            assert_eq!(results[0]["tool_call_id"], "call_1");
            let lease: Value =
                serde_json::from_str(results[0]["content"].as_str().unwrap()).unwrap();
            tool_call(
                "call_2",
                "write_file",
                json!({"path": "kimi.md", "content": "written by kimi\n", "token": lease["token"]}),
            )
        }
        2 => {
            let lease: Value =
                serde_json::from_str(results[0]["content"].as_str().unwrap()).unwrap();
            tool_call("call_3", "release_lock", json!({"token": lease["token"]}))
        }
        _ => json!({
            "id": "chatcmpl-4", "object": "chat.completion", "model": "kimi-k2.6",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Wrote kimi.md."}}],
            "usage": {"prompt_tokens": 200, "completion_tokens": 5, "total_tokens": 205}
        }),
    };
    if body["stream"] == true {
        assert_eq!(body["stream_options"]["include_usage"], true);
        common::wire::chat_chunks(&answer)
    } else {
        Json(answer).into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_completions_model_carries_a_task_through_tools_under_a_lock() {
    carry(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_completions_model_carries_the_same_task() {
    carry(true).await;
}

async fn carry(streaming: bool) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(seen.clone());
    let base = format!("{}/v1", common::serve(app).await);

    let model = ChatCompletions::new("moonshot", &base, Some("test-key".into()), "kimi-k2.6")
        .streaming(streaming);
    let (ws, task) = common::run_task(model, "write kimi.md").await;
    common::assert_never_logged(&ws, "test-key").await;

    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("kimi.md")).unwrap(),
        "written by kimi\n"
    );
    assert_eq!(
        (task["state"].as_str(), task["result"].as_str()),
        (Some("done"), Some("Wrote kimi.md."))
    );
    assert_eq!(
        common::metric_sum(&ws, "tokens_in"),
        560.0,
        "token usage of every turn is in agent_metrics"
    );
    let s = seen.lock().unwrap();
    assert_eq!(
        s.requests.len(),
        5,
        "one rate-limited request, then four turns"
    );
    let first = &s.requests[1];
    assert_eq!(first["model"], "kimi-k2.6");
    assert_eq!(first["messages"][0]["role"], "system");
    assert_eq!(first["messages"][1]["role"], "user");
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"write_file") && tools.contains(&"acquire_lock"),
        "{tools:?}"
    );
    assert_eq!(first["tools"][0]["type"], "function");
    // The assistant's tool calls are sent back with their ids, arguments as JSON strings.
    let last = &s.requests[4]["messages"];
    let assistant = last
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(assistant["tool_calls"][0]["id"], "call_1");
    assert!(assistant["tool_calls"][0]["function"]["arguments"].is_string());
}
