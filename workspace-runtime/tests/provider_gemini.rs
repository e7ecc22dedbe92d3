//! The Gemini generateContent adapter against a local server on 127.0.0.1 answering in
//! that wire format: RESOURCE_EXHAUSTED with a RetryInfo first, then a tool-using task;
//! once through `generateContent`, once through `streamGenerateContent?alt=sse`.
//!
//! The server answers as Gemini 3 does: a thought summary part, and a `thoughtSignature`
//! beside each function call; a follow-up whose function-call part lacks its signature, or
//! carries an altered one, is refused with Gemini's 400.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::ProviderState;
use coditect_runtime::agents::gemini::GenerateContent;
use coditect_specs::{Reasoning, ReasoningEffort};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<(String, Value)>,
    limited: bool,
}

/// The signature Gemini put beside the call of `name`.
fn signature(name: &str) -> String {
    format!("CiQB0e2Kb7{name}Xq9z1HkE3nFjR0mTbQ==")
}

/// `functionCall` parts signed as Gemini 3 signs them, after a thought summary.
fn signed(calls: Value) -> Value {
    let mut parts =
        vec![json!({"text": "Thinking about the lock and the write.", "thought": true})];
    for call in calls.as_array().unwrap() {
        let name = call["functionCall"]["name"].as_str().unwrap();
        let mut part = call.clone();
        part["thoughtSignature"] = json!(signature(name));
        parts.push(part);
    }
    json!(parts)
}

/// Gemini 3's rule: each function-call part of a model turn comes back with its
/// `thoughtSignature`, unchanged.
fn refuse_unsigned(body: &Value) -> Option<Response> {
    for (i, content) in body["contents"].as_array()?.iter().enumerate() {
        for part in content["parts"].as_array().into_iter().flatten() {
            let Some(name) = part["functionCall"]["name"].as_str() else {
                continue;
            };
            let message = match part["thoughtSignature"].as_str() {
                None => format!(
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {i}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                ),
                Some(sig) if sig != signature(name) => "Corrupted thought signature.".to_string(),
                Some(_) => continue,
            };
            let err =
                json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}});
            return Some((StatusCode::BAD_REQUEST, Json(err)).into_response());
        }
    }
    None
}

fn candidate(parts: Value) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 250, "candidatesTokenCount": 30, "totalTokenCount": 280},
        "modelVersion": "gemini-3.5-flash"
    })
}

async fn generate(
    State(seen): State<Arc<Mutex<Seen>>>,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some("AIza-test") {
        let err = json!({"error": {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}});
        return (StatusCode::FORBIDDEN, Json(err)).into_response();
    }
    let mut s = seen.lock().unwrap();
    s.requests.push((model.clone(), body.clone()));
    if !s.limited {
        s.limited = true;
        let err = json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0s"}]}});
        return (StatusCode::TOO_MANY_REQUESTS, Json(err)).into_response();
    }
    if let Some(refusal) = refuse_unsigned(&body) {
        return refusal;
    }
    let responses: Vec<Value> = body["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap().clone())
        .filter_map(|p| p.get("functionResponse").cloned())
        .collect();
    let answer = match responses.len() {
        0 => candidate(signed(
            json!([{"functionCall": {"name": "acquire_lock", "args": {"path": "gemini.md", "mode": "exclusive"}}}]),
        )),
        1 => {
            assert_eq!(
                responses[0]["name"], "acquire_lock",
                "responses are matched by name"
            );
            let token = responses[0]["response"]["output"]["token"].clone();
            candidate(signed(
                json!([{"functionCall": {"name": "write_file", "args": {"path": "gemini.md", "content": "from gemini\n", "token": token}}}]),
            ))
        }
        2 => {
            let token = responses[0]["response"]["output"]["token"].clone();
            candidate(signed(
                json!([{"functionCall": {"name": "release_lock", "args": {"token": token}}}]),
            ))
        }
        _ => candidate(
            json!([{"text": "Done."}, {"functionCall": {"name": "complete_task", "args": {"ok": true, "summary": "wrote gemini.md"}}}]),
        ),
    };
    if model.ends_with(":streamGenerateContent") {
        assert_eq!(query.as_deref(), Some("alt=sse"));
        common::wire::gemini_chunks(&answer)
    } else {
        Json(answer).into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_model_carries_a_task_through_tools_under_a_lock() {
    carry(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_gemini_model_carries_the_same_task() {
    carry(true).await;
}

async fn carry(streaming: bool) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    // axum cannot route on the `:generateContent` suffix, so the model segment carries it.
    let app = Router::new()
        .route("/v1beta/models/{model}", post(generate))
        .with_state(seen.clone());
    let base = common::serve(app).await;
    let model = GenerateContent::new(&base, "AIza-test".into(), "gemini-3.5-flash")
        .reasoning(Some(Reasoning {
            effort: Some(ReasoningEffort::High),
            budget_tokens: None,
        }))
        .streaming(streaming);
    let (ws, task) = common::run_task(model, "write gemini.md").await;
    common::assert_never_logged(&ws, "AIza-test").await;
    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("gemini.md")).unwrap(),
        "from gemini\n"
    );
    assert_eq!(
        (task["state"].as_str(), task["result"].as_str()),
        (Some("done"), Some("wrote gemini.md"))
    );
    let (_, events) = ws.client.get("/v1/events?since=0").await;
    assert!(
        !events.to_string().contains("Thinking about the lock"),
        "thought summaries are not logged as the agent's messages"
    );
    let s = seen.lock().unwrap();
    assert_eq!(
        s.requests.len(),
        5,
        "one exhausted request, then four turns"
    );
    let (path_model, first) = &s.requests[1];
    let method = if streaming {
        "streamGenerateContent"
    } else {
        "generateContent"
    };
    assert_eq!(path_model, &format!("gemini-3.5-flash:{method}"));
    assert_eq!(
        first["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "high"})
    );
    assert_eq!(
        common::metric_sum(&ws, "tokens_in"),
        1000.0,
        "the usage of each of the four turns is counted once"
    );
    assert!(
        first["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("acquire_lock")
    );
    let declared: Vec<&str> = first["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(declared.contains(&"edit_file"), "{declared:?}");
    let roles: Vec<&str> = s.requests[4].1["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["user", "model", "user", "model", "user", "model", "user"]
    );
    // Each signed call went back on its part, and the thought summary is not answer text.
    let signatures: Vec<&str> = s.requests[4].1["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .filter_map(|p| p["thoughtSignature"].as_str())
        .collect();
    let expected: Vec<String> = ["acquire_lock", "write_file", "release_lock"]
        .iter()
        .map(|n| signature(n))
        .collect();
    assert_eq!(signatures, expected);
}

/// Follow-ups whose function call lost or changed its signature are refused (400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_without_its_thought_signature_is_refused_as_gemini_refuses_it() {
    let seen = Arc::new(Mutex::new(Seen {
        limited: true,
        ..Seen::default()
    }));
    let app = Router::new()
        .route("/v1beta/models/{model}", post(generate))
        .with_state(seen);
    let base = common::serve(app).await;
    let model =
        GenerateContent::new(&base, "AIza-test".into(), "gemini-3.5-flash").streaming(false);
    let call = json!({"functionCall": {"name": "acquire_lock", "args": {"path": "gemini.md"}}});
    let mut altered = call.clone();
    altered["thoughtSignature"] = json!("CiQBforged==");
    for (state, expected) in [
        (None, "Function call is missing a thought_signature"),
        (
            Some(ProviderState::new("google", json!({"parts": [altered]}))),
            "Corrupted thought signature.",
        ),
    ] {
        let conversation = common::after_one_call(
            "gemini-0",
            "acquire_lock",
            json!({"path": "gemini.md"}),
            state,
        );
        let (status, message) = common::refusal(&model, &conversation).await;
        assert_eq!(status, 400, "{message}");
        assert!(message.contains(expected), "{message}");
    }
}
