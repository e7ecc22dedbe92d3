//! The OpenAI Responses adapter (Codex models) against a local server on 127.0.0.1
//! answering in that wire format: a 429 first, then a multi-turn, tool-using task through
//! the real agent loop; once as JSON bodies, once streamed as typed Responses events.
//!
//! The model reasons: each answer starts with a `reasoning` item whose encrypted content
//! comes only when `include` asks for it. With `store: false`, a reasoning item sent back
//! by id without its content is refused with a 404, and one whose content was altered with
//! a 400, as the API refuses them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::ProviderState;
use coditect_runtime::agents::openai::Responses;
use coditect_specs::{Reasoning, ReasoningEffort};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<Value>,
    limited: bool,
}

fn response(output: Value) -> Value {
    json!({
        "id": "resp_67ccd2bed1ec8190", "object": "response", "created_at": 1741476542,
        "status": "completed", "error": null, "incomplete_details": null,
        "model": "gpt-5.5", "output": output, "parallel_tool_calls": true, "store": false,
        "usage": {"input_tokens": 410, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 25, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 435}
    })
}

/// Reasoning item `n`, with its encrypted content when the request asked for it.
fn reasoning(n: usize, include: bool) -> Value {
    let mut item = json!({"type": "reasoning", "id": format!("rs_{n}"), "summary": []});
    if include {
        item["encrypted_content"] = json!(encrypted(n));
    }
    item
}

fn encrypted(n: usize) -> String {
    format!("gAAAAABoISQ3mK{n}x7v0dF2reasoning-state-{n}==")
}

/// The Responses API's rules for reasoning items sent back with `store: false`.
fn refuse_reasoning(body: &Value) -> Option<Response> {
    for item in body["input"]
        .as_array()?
        .iter()
        .filter(|i| i["type"] == "reasoning")
    {
        let id = item["id"].as_str().unwrap_or_default();
        let (status, err) = match item["encrypted_content"].as_str() {
            None => (
                StatusCode::NOT_FOUND,
                json!({"error": {"message": format!("Item with id '{id}' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input."), "type": "invalid_request_error", "param": "input", "code": null}}),
            ),
            Some(content) if !(1..4).any(|n| content == encrypted(n)) => (
                StatusCode::BAD_REQUEST,
                json!({"error": {"message": format!("The encrypted content for item {id} could not be verified."), "type": "invalid_request_error", "param": null, "code": "invalid_encrypted_content"}}),
            ),
            Some(_) => continue,
        };
        return Some((status, Json(err)).into_response());
    }
    None
}

fn call(call_id: &str, name: &str, args: Value) -> Value {
    json!({"type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id, "name": name,
           "arguments": args.to_string(), "status": "completed"})
}

async fn responses(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sk-test") {
        let err = json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}});
        return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
    }
    let mut s = seen.lock().unwrap();
    s.requests.push(body.clone());
    if !s.limited {
        s.limited = true;
        let err = json!({"error": {"message": "Rate limit reached for gpt-5.5 on requests per min (RPM)", "type": "requests", "code": "rate_limit_exceeded"}});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(err),
        )
            .into_response();
    }
    if let Some(refusal) = refuse_reasoning(&body) {
        return refusal;
    }
    let include = body["include"]
        .as_array()
        .is_some_and(|i| i.contains(&json!("reasoning.encrypted_content")));
    let outputs: Vec<&Value> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .collect();
    let answer = match outputs.len() {
        0 => response(json!([
            reasoning(1, include),
            call("call_a", "acquire_lock", json!({"path": "codex.md"}))
        ])),
        1 => {
            assert_eq!(outputs[0]["call_id"], "call_a");
            let lease: Value =
                serde_json::from_str(outputs[0]["output"].as_str().unwrap()).unwrap();
            response(json!([
                reasoning(2, include),
                call(
                    "call_b",
                    "write_file",
                    json!({"path": "codex.md", "content": "by codex\n", "token": lease["token"]})
                ),
                call("call_c", "release_lock", json!({"token": lease["token"]}))
            ]))
        }
        _ => response(json!([reasoning(3, include), {
            "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Wrote codex.md.", "annotations": []}]
        }])),
    };
    if body["stream"] == true {
        common::wire::responses_events(&answer)
    } else {
        Json(answer).into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_model_carries_a_task_through_tools_under_a_lock() {
    carry(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_responses_model_carries_the_same_task() {
    carry(true).await;
}

async fn carry(streaming: bool) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/v1/responses", post(responses))
        .with_state(seen.clone());
    let base = format!("{}/v1", common::serve(app).await);
    let model = Responses::new(&base, "sk-test".into(), "gpt-5.5")
        .reasoning(Some(Reasoning {
            effort: Some(ReasoningEffort::High),
            budget_tokens: None,
        }))
        .streaming(streaming);
    let (ws, task) = common::run_task(model, "write codex.md").await;
    common::assert_never_logged(&ws, "sk-test").await;

    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("codex.md")).unwrap(),
        "by codex\n"
    );
    assert_eq!(
        (task["state"].as_str(), task["result"].as_str()),
        (Some("done"), Some("Wrote codex.md."))
    );
    assert_eq!(common::metric_sum(&ws, "tokens_in"), 3.0 * 410.0);
    assert_eq!(common::metric_sum(&ws, "rate_limited"), 1.0);

    let s = seen.lock().unwrap();
    assert_eq!(
        s.requests.len(),
        4,
        "one rate-limited request, then three turns"
    );
    let first = &s.requests[1];
    assert_eq!(
        (
            first["model"].as_str(),
            first["store"].as_bool(),
            first["stream"].as_bool()
        ),
        (Some("gpt-5.5"), Some(false), streaming.then_some(true))
    );
    assert_eq!(first["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(first["reasoning"], json!({"effort": "high"}));
    assert!(
        first["instructions"]
            .as_str()
            .unwrap()
            .contains("acquire_lock")
    );
    assert_eq!(first["input"][0]["role"], "user");
    assert!(
        first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["type"] == "function"
                && t["name"] == "write_file"
                && t["parameters"]["type"] == "object"),
        "tools are flat function definitions"
    );
    // The last request carries the whole conversation: the calls (arguments as JSON
    // strings) and their outputs, each answered by call_id.
    let input = s.requests[3]["input"].as_array().unwrap();
    let kinds: Vec<&str> = input
        .iter()
        .map(|i| i["type"].as_str().or(i["role"].as_str()).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "user",
            "reasoning",
            "function_call",
            "function_call_output",
            "reasoning",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output"
        ]
    );
    assert!(input[2]["arguments"].is_string());
    assert_eq!(input[8]["call_id"], "call_c");
    // The reasoning went back whole, so the model did not start its thinking over.
    assert_eq!(input[1], reasoning(1, true));
    assert_eq!(input[4], reasoning(2, true));
}

/// A reasoning item sent back by id alone (404) or with altered content (400) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasoning_item_without_its_encrypted_content_is_refused_as_the_api_refuses_it() {
    let seen = Arc::new(Mutex::new(Seen {
        limited: true,
        ..Seen::default()
    }));
    let app = Router::new()
        .route("/v1/responses", post(responses))
        .with_state(seen);
    let base = format!("{}/v1", common::serve(app).await);
    let model = Responses::new(&base, "sk-test".into(), "gpt-5.5").streaming(false);
    let fc = call("call_a", "acquire_lock", json!({"path": "codex.md"}));
    let mut altered = reasoning(1, true);
    altered["encrypted_content"] = json!("gAAAAforged==");
    for (item, status, expected) in [
        (reasoning(1, false), 404, "Item with id 'rs_1' not found"),
        (altered, 400, "could not be verified"),
    ] {
        let state = Some(ProviderState::new(
            "openai",
            json!({"output": [item, fc.clone()]}),
        ));
        let conversation =
            common::after_one_call("call_a", "acquire_lock", json!({"path": "codex.md"}), state);
        let (got, message) = common::refusal(&model, &conversation).await;
        assert_eq!(got, status, "{message}");
        assert!(message.contains(expected), "{message}");
    }
}
