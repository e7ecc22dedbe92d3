//! The Chat Completions adapter (Moonshot, OpenAI-compatible servers) against a local
//! server on 127.0.0.1 answering in that wire format: a rate limit first, then a
//! multi-turn, tool-using task carried through the real agent loop, once answered as one
//! JSON body and once streamed as `chat.completion.chunk` events.
//!
//! The server thinks as Kimi K2.6 does (on by default): each answer carries
//! `reasoning_content`, and a follow-up whose assistant tool-call message lacks the
//! reasoning it came with (or carries other text) is refused with Moonshot's 400.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::ProviderState;
use coditect_runtime::agents::openai_compat::{self, ChatCompletions};
use coditect_specs::{Reasoning, ReasoningEffort};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<Value>,
    rate_limited: bool,
}

/// What the model thought before calling `id`.
fn reasoning(id: &str) -> String {
    format!("The task needs {id} next; thinking it through step by step.")
}

fn tool_call(id: &str, name: &str, args: Value) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "kimi-k2.6",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null, "reasoning_content": reasoning(id),
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]
        }}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140}
    })
}

/// Moonshot's rule for thinking models: every assistant message with tool calls carries
/// its `reasoning_content`, non-empty (this server also checks it is the text it sent).
fn refuse_missing_reasoning(body: &Value) -> Option<Response> {
    if body["thinking"]["type"] == "disabled" {
        return None;
    }
    for (i, m) in body["messages"].as_array()?.iter().enumerate() {
        let Some(calls) = m["tool_calls"].as_array() else {
            continue;
        };
        let id = calls[0]["id"].as_str().unwrap_or_default();
        if m["role"] == "assistant" && m["reasoning_content"].as_str() != Some(&reasoning(id)) {
            let err = json!({"error": {"message": format!("thinking is enabled but reasoning_content is missing in assistant tool call message at index {i}"), "type": "invalid_request_error"}});
            return Some((StatusCode::BAD_REQUEST, Json(err)).into_response());
        }
    }
    None
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
    if let Some(refusal) = refuse_missing_reasoning(&body) {
        return refusal;
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
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Wrote kimi.md.", "reasoning_content": "All three steps are done."}}],
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
        .reasoning(Some(Reasoning {
            effort: Some(ReasoningEffort::High),
            budget_tokens: None,
        }))
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
    assert_eq!(first["thinking"]["type"], "enabled");
    // Every assistant tool-call message went back with its reasoning (the server refuses
    // otherwise, and the task would have failed).
    let sent: Vec<&str> = last
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["reasoning_content"].as_str())
        .collect();
    assert_eq!(
        sent,
        [
            reasoning("call_1"),
            reasoning("call_2"),
            reasoning("call_3")
        ]
    );
}

/// A follow-up whose tool-call message lacks the reasoning, or carries other text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_without_its_reasoning_is_refused_as_moonshot_refuses_it() {
    let seen = Arc::new(Mutex::new(Seen {
        rate_limited: true,
        ..Seen::default()
    }));
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(seen);
    let base = format!("{}/v1", common::serve(app).await);
    let model = ChatCompletions::new("moonshot", &base, Some("test-key".into()), "kimi-k2.6")
        .streaming(false);
    for state in [
        None,
        Some(ProviderState::new(
            openai_compat::WIRE,
            json!({"reasoning_content": ""}),
        )),
        Some(ProviderState::new(
            openai_compat::WIRE,
            json!({"reasoning_content": "something else"}),
        )),
        // Another provider's state is not Kimi's reasoning.
        Some(ProviderState::new(
            "google",
            json!({"reasoning_content": reasoning("call_1")}),
        )),
    ] {
        let conversation =
            common::after_one_call("call_1", "acquire_lock", json!({"path": "kimi.md"}), state);
        let (status, message) = common::refusal(&model, &conversation).await;
        assert_eq!(status, 400, "{message}");
        assert!(
            message.contains("reasoning_content is missing in assistant tool call message"),
            "{message}"
        );
    }
}
