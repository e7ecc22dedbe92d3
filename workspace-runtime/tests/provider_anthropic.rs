//! The Anthropic Messages adapter against a local server on 127.0.0.1 answering in that
//! wire format: a rate limit first, then a tool-using task through the agent loop; once
//! answered as JSON bodies, once streamed as Messages events (where the rate limit is an
//! `overloaded_error` event inside a 200 stream, as the API sends it).
//!
//! Extended thinking is on: every answer starts with a `thinking` block (signed) or a
//! `redacted_thinking` block, and the server refuses, as the API does, a follow-up whose
//! tool-use turn does not start with those blocks exactly as they were sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::ProviderState;
use coditect_runtime::agents::anthropic::Messages;
use coditect_specs::{Reasoning, ReasoningEffort};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<Value>,
    limited: bool,
}

/// The thinking block of answer `n`: signed text, or (answer 1) redacted data.
fn thinking(n: usize) -> Value {
    if n == 1 {
        return json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"});
    }
    json!({"type": "thinking", "thinking": format!("Step {n}: the lock comes first, then the write."), "signature": format!("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrk{n}")})
}

/// The API's rules for thinking: enabled with a budget under `max_tokens`; each assistant
/// message with a tool_use starts with thinking blocks, each exactly as it was sent.
fn refuse_without_thinking(body: &Value) -> Option<Response> {
    let bad = |message: String| {
        let err = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
        Some((StatusCode::BAD_REQUEST, Json(err)).into_response())
    };
    let budget = body["thinking"]["budget_tokens"].as_u64().unwrap_or(0);
    if body["thinking"]["type"] != "enabled" || budget < 1024 {
        return bad(
            "thinking: this test server expects thinking enabled with budget_tokens >= 1024".into(),
        );
    }
    if body["max_tokens"].as_u64().unwrap_or(0) <= budget {
        return bad("`max_tokens` must be greater than `thinking.budget_tokens`".into());
    }
    for (i, m) in body["messages"].as_array()?.iter().enumerate() {
        let blocks = m["content"].as_array();
        let Some(blocks) = blocks
            .filter(|b| m["role"] == "assistant" && b.iter().any(|b| b["type"] == "tool_use"))
        else {
            continue;
        };
        let first = blocks[0]["type"].as_str().unwrap_or_default();
        if first != "thinking" && first != "redacted_thinking" {
            return bad(format!(
                "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
            ));
        }
        for (j, b) in blocks.iter().enumerate() {
            let kind = b["type"].as_str().unwrap_or_default();
            if (kind == "thinking" || kind == "redacted_thinking")
                && !(0..3).any(|n| &thinking(n) == b)
            {
                return bad(format!(
                    "messages.{i}.content.{j}: Invalid `signature` in `{kind}` block"
                ));
            }
        }
    }
    None
}

fn message(content: Value, stop: &str) -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
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
    if let Some(refusal) = refuse_without_thinking(&body) {
        return refusal;
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
                thinking(0),
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
                    thinking(1),
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
                json!([thinking(2), {"type": "tool_use", "id": "toolu_04", "name": "complete_task", "input": {"ok": true, "summary": "wrote claude.md"}}]),
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
    let model = Messages::new(&base, "sk-ant-test".into(), "claude-sonnet-4-6", 4096)
        .reasoning(Some(Reasoning {
            effort: None,
            budget_tokens: Some(2048),
        }))
        .streaming(streaming);
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
        (Some("claude-sonnet-4-6"), Some(6144)),
        "max_tokens holds the thinking budget and the answer"
    );
    assert_eq!(
        first["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
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
        assistant["content"],
        json!([thinking(0), {"type": "text", "text": "I'll take the lock first."},
            {"type": "tool_use", "id": "toolu_01", "name": "acquire_lock", "input": {"path": "claude.md"}}]),
        "thinking, text and tool_use blocks are sent back as given"
    );
    let last: Vec<&Value> = s.requests[3]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(
        last[1]["content"][0],
        thinking(1),
        "redacted thinking went back whole"
    );
}

/// Follow-ups whose thinking is missing or altered are refused with the API's 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_without_its_thinking_is_refused_as_the_api_refuses_it() {
    let seen = Arc::new(Mutex::new(Seen {
        limited: true,
        ..Seen::default()
    }));
    let base = common::serve(
        Router::new()
            .route("/v1/messages", post(messages))
            .with_state(seen),
    )
    .await;
    let model = Messages::new(&base, "sk-ant-test".into(), "claude-sonnet-4-6", 4096)
        .reasoning(Some(Reasoning {
            effort: Some(ReasoningEffort::Low),
            budget_tokens: None,
        }))
        .streaming(false);
    let tool_use = json!({"type": "tool_use", "id": "toolu_01", "name": "acquire_lock", "input": {"path": "claude.md"}});
    let mut altered = thinking(0);
    altered["thinking"] = json!("Step 0: something else.");
    for (state, expected) in [
        (
            None,
            "Expected `thinking` or `redacted_thinking`, but found `tool_use`",
        ),
        (
            Some(ProviderState::new(
                "anthropic",
                json!({"content": [altered, tool_use]}),
            )),
            "Invalid `signature` in `thinking` block",
        ),
    ] {
        let conversation = common::after_one_call(
            "toolu_01",
            "acquire_lock",
            json!({"path": "claude.md"}),
            state,
        );
        let (status, message) = common::refusal(&model, &conversation).await;
        assert_eq!(status, 400, "{message}");
        assert!(message.contains(expected), "{message}");
    }
}
