//! The Gemini generateContent adapter against a local server on 127.0.0.1 answering in
//! that wire format: RESOURCE_EXHAUSTED with a RetryInfo first, then a tool-using task;
//! once through `generateContent`, once through `streamGenerateContent?alt=sse`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::gemini::GenerateContent;
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    requests: Vec<(String, Value)>,
    limited: bool,
}

fn candidate(parts: Value) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 250, "candidatesTokenCount": 30, "totalTokenCount": 280},
        "modelVersion": "gemini-2.5-pro"
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
    let responses: Vec<Value> = body["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap().clone())
        .filter_map(|p| p.get("functionResponse").cloned())
        .collect();
    let answer = match responses.len() {
        0 => candidate(
            json!([{"functionCall": {"name": "acquire_lock", "args": {"path": "gemini.md", "mode": "exclusive"}}}]),
        ),
        1 => {
            assert_eq!(
                responses[0]["name"], "acquire_lock",
                "responses are matched by name"
            );
            let token = responses[0]["response"]["output"]["token"].clone();
            candidate(
                json!([{"functionCall": {"name": "write_file", "args": {"path": "gemini.md", "content": "from gemini\n", "token": token}}}]),
            )
        }
        2 => {
            let token = responses[0]["response"]["output"]["token"].clone();
            candidate(json!([{"functionCall": {"name": "release_lock", "args": {"token": token}}}]))
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
    let model =
        GenerateContent::new(&base, "AIza-test".into(), "gemini-2.5-pro").streaming(streaming);
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
    assert_eq!(path_model, &format!("gemini-2.5-pro:{method}"));
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
}
