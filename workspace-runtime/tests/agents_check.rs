//! `agents check` against local servers: a Chat Completions server that answers the
//! check's tool call (thinking on, its reasoning required back), one that refuses the
//! key, an address nobody listens on, an offline agent and one whose key is not set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use coditect_runtime::agents::check::{CheckStatus, check_all};
use coditect_specs::AgentSpec;
use serde_json::{Value, json};

async fn completions(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer good-key") {
        let err = json!({"error": {"message": "Invalid Authentication", "type": "invalid_authentication_error"}});
        return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
    }
    let messages = body["messages"].as_array().unwrap();
    let message = match messages.iter().find(|m| m["role"] == "assistant") {
        None => {
            json!({"role": "assistant", "content": null, "reasoning_content": "List first.",
                   "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "list_files", "arguments": "{\"path\":\".\"}"}}]})
        }
        Some(a) if a["reasoning_content"] != "List first." => {
            let err = json!({"error": {"message": "thinking is enabled but reasoning_content is missing in assistant tool call message at index 2", "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, Json(err)).into_response();
        }
        Some(_) => json!({"role": "assistant", "content": "OK"}),
    };
    let answer = json!({"id": "x", "object": "chat.completion", "model": "kimi-k2.6-0905",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1}});
    assert_eq!(
        body["stream"], true,
        "the check calls the model as the agent does"
    );
    common::wire::chat_chunks(&answer)
}

fn agent(spec: Value) -> AgentSpec {
    serde_json::from_value(spec).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_reports_reachability_auth_model_and_a_tool_round_trip() {
    let base =
        common::serve(axum::Router::new().route("/v1/chat/completions", post(completions))).await;
    let secrets = tempfile::tempdir().unwrap();
    for (name, key) in [("good", "good-key"), ("bad", "wrong-key")] {
        std::fs::create_dir_all(secrets.path().join(name)).unwrap();
        std::fs::write(secrets.path().join(name).join("key"), key).unwrap();
    }
    let agents = vec![
        agent(
            json!({"name": "kimi", "provider": "moonshot", "baseUrl": format!("{base}/v1"), "credentials": {"secretRef": {"name": "good", "key": "key"}}}),
        ),
        agent(
            json!({"name": "wrong", "provider": "moonshot", "baseUrl": format!("{base}/v1"), "credentials": {"secretRef": {"name": "bad", "key": "key"}}}),
        ),
        agent(
            json!({"name": "gone", "provider": "openai-compatible", "baseUrl": "http://127.0.0.1:9/v1"}),
        ),
        agent(json!({"name": "planner", "provider": "offline"})),
        agent(
            json!({"name": "claude", "provider": "anthropic", "credentials": {"env": "CODITECT_CHECK_KEY_NEVER_SET"}, "offlineFallback": true}),
        ),
    ];
    let reports = check_all(&agents, secrets.path()).await;
    let by = |n: &str| reports.iter().find(|r| r.agent == n).unwrap();

    let kimi = by("kimi");
    assert_eq!(kimi.status, CheckStatus::Ok, "{kimi:?}");
    assert_eq!(
        (kimi.reachable, kimi.authenticated, kimi.tool_round_trip),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(kimi.answered_by.as_deref(), Some("kimi-k2.6-0905"));

    let wrong = by("wrong");
    assert_eq!(
        (wrong.status, wrong.reachable, wrong.authenticated),
        (CheckStatus::Failed, Some(true), Some(false))
    );
    assert!(
        wrong.detail.contains("Invalid Authentication"),
        "{}",
        wrong.detail
    );

    let gone = by("gone");
    assert_eq!(
        (gone.status, gone.reachable),
        (CheckStatus::Failed, Some(false))
    );

    assert_eq!(by("planner").status, CheckStatus::Offline);
    let claude = by("claude");
    assert_eq!(claude.status, CheckStatus::Skipped);
    assert!(
        claude.detail.contains("CODITECT_CHECK_KEY_NEVER_SET"),
        "{}",
        claude.detail
    );
    for r in &reports {
        assert!(
            !format!("{r:?}").contains("good-key"),
            "a key reached the report: {r:?}"
        );
    }
}
