//! Each provider's documented error body, answered by a local server on 127.0.0.1: the
//! task fails with the provider's own message, and the error is counted in agent_metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use coditect_runtime::agents::anthropic::Messages;
use coditect_runtime::agents::gemini::GenerateContent;
use coditect_runtime::agents::openai::Responses;
use coditect_runtime::agents::openai_compat::ChatCompletions;
use serde_json::{Value, json};

fn error(
    status: StatusCode,
    body: Value,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone {
    move || std::future::ready((status, Json(body.clone())).into_response())
}

async fn server() -> String {
    let app = Router::new()
        .route(
            "/v1/messages",
            post(error(StatusCode::BAD_REQUEST, json!({"type": "error", "error": {"type": "invalid_request_error", "message": "messages: roles must alternate"}}))),
        )
        .route(
            "/v1beta/models/{model}",
            post(error(StatusCode::BAD_REQUEST, json!({"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}}))),
        )
        .route(
            "/v1/responses",
            post(error(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "code": null}}))),
        )
        .route(
            "/v1/chat/completions",
            post(error(StatusCode::BAD_REQUEST, json!({"error": {"message": "Invalid request: context length exceeded", "type": "invalid_request_error"}}))),
        );
    common::serve(app).await
}

async fn fails_with<M: coditect_runtime::agents::Model + 'static>(model: M, message: &str) {
    let (ws, task) = common::run_task(model, "anything").await;
    assert_eq!(task["state"], "failed", "{task}");
    let result = task["result"].as_str().unwrap();
    assert!(
        result.contains(message) && result.contains("HTTP"),
        "{result}"
    );
    assert_eq!(common::metric_sum(&ws, "model_errors"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_error_fails_the_task_with_the_providers_message() {
    let base = server().await;
    fails_with(
        Messages::new(&base, "k".into(), "claude-sonnet-4-5", 1024),
        "roles must alternate",
    )
    .await;
    fails_with(
        GenerateContent::new(&base, "k".into(), "gemini-2.5-pro"),
        "Invalid JSON payload",
    )
    .await;
    fails_with(
        Responses::new(&format!("{base}/v1"), "k".into(), "gpt-5-codex"),
        "server had an error",
    )
    .await;
    fails_with(
        ChatCompletions::new(
            "moonshot",
            &format!("{base}/v1"),
            Some("k".into()),
            "kimi-k2.6",
        ),
        "context length exceeded",
    )
    .await;
}
