//! Agents: the loop that takes an agent's tasks and works on them through tools, and the
//! model behind it.
//!
//! ```text
//!  TaskQueues::claim ─► AgentRunner ─► Model::next_turn(conversation, tools)
//!                            ▲                 │ tool calls
//!                            └── tool results ◄─ Toolbox (locks, fenced writes, bus, …)
//! ```
//!
//! A [`Model`] sees the conversation so far (the task, then each turn's tool calls and
//! their results) and answers with text and tool calls. This module holds the loop, the
//! tools and the `offline` model; the network providers' wire formats come in their own
//! modules and implement the same trait.

pub mod anthropic;
pub mod check;
pub mod context;
pub mod conversation;
pub mod gemini;
pub mod models;
pub mod offline;
pub mod openai;
pub mod openai_compat;
pub mod runner;
mod stream;
pub mod tools;
pub mod view;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What each agent is doing now, for the API (`/v1/status`); the event log has the history.
#[derive(Debug, Default)]
pub struct AgentBoard(Mutex<HashMap<String, AgentNow>>);

/// One agent's present state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentNow {
    /// idle, indexing, analyzing, editing, waiting.
    pub state: String,
    /// The provider driving it (`offline` when it stands in for another).
    pub provider: String,
    /// The task it works on.
    pub task: Option<i64>,
}

impl AgentBoard {
    /// Records `agent`'s state.
    pub fn set(&self, agent: &str, now: AgentNow) {
        if let Ok(mut board) = self.0.lock() {
            board.insert(agent.to_string(), now);
        }
    }

    /// `agent`'s state, if its loop runs.
    pub fn get(&self, agent: &str) -> Option<AgentNow> {
        self.0.lock().ok()?.get(agent).cloned()
    }
}

/// A tool call a model asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Correlates the result with the call.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments.
    pub arguments: Value,
}

/// What a provider handed back with a turn that it requires again on the next request of
/// the same conversation, kept exactly as it came: Kimi's `reasoning_content`, Gemini's
/// parts with their `thoughtSignature`s, OpenAI's `reasoning` items with their encrypted
/// content, Claude's `thinking` and `redacted_thinking` blocks with their signatures.
///
/// Only the adapter that made it reads it (another adapter's state is ignored, so a spec
/// that changes an agent's provider mid-task still works); it is stored
/// with the conversation, so a task resumed after a restart sends it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderState {
    /// The adapter that made it: `anthropic`, `google`, `openai`, or `chat-completions`
    /// (the wire format Moonshot and OpenAI-compatible servers share).
    pub provider: String,
    /// The provider's own values, as they came.
    pub value: Value,
}

impl ProviderState {
    /// `provider`'s `value`.
    pub fn new(provider: &str, value: Value) -> Self {
        ProviderState {
            provider: provider.to_string(),
            value,
        }
    }

    /// The value, when `state` was made by `provider`.
    pub fn of<'a>(state: Option<&'a ProviderState>, provider: &str) -> Option<&'a Value> {
        state.filter(|s| s.provider == provider).map(|s| &s.value)
    }
}

/// One entry of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Turn {
    /// The task, as the user put it, with the shared workspace context.
    User {
        /// The text.
        text: String,
    },
    /// What the model said and asked for.
    Assistant {
        /// Its text.
        text: String,
        /// Its tool calls.
        calls: Vec<ToolCall>,
        /// What the provider requires back with this turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<ProviderState>,
    },
    /// The result of one tool call.
    ToolResult {
        /// The call's id.
        id: String,
        /// Whether the tool succeeded.
        ok: bool,
        /// What it returned (or why it failed).
        content: Value,
    },
}

/// Tokens used by one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

impl Usage {
    /// Reads a provider's usage object, whose two counts go by `input` and `output`.
    pub(crate) fn read(usage: &Value, input: &str, output: &str) -> Usage {
        Usage {
            input: usage[input].as_u64().unwrap_or(0),
            output: usage[output].as_u64().unwrap_or(0),
        }
    }
}

/// What every network adapter holds: the HTTP client, the provider's address, the model,
/// and whether to ask for streamed answers (the default).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub http: reqwest::Client,
    pub base_url: String,
    pub model: String,
    pub streaming: bool,
}

impl Endpoint {
    /// An endpoint at `base_url` for `model`, streaming.
    pub fn new(base_url: &str, model: &str) -> Self {
        Endpoint {
            http: http_client(),
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            streaming: true,
        }
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelTurn {
    /// Text for the log.
    pub text: String,
    /// Tools to run; none means the model is done talking.
    pub calls: Vec<ToolCall>,
    /// Tokens used.
    pub usage: Usage,
    /// What the provider requires back with this turn (see [`ProviderState`]).
    pub state: Option<ProviderState>,
    /// The model that answered, as the provider names it (when it says).
    pub model: Option<String>,
}

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The provider is rate limiting; try again after this many seconds.
    #[error("rate limited; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The provider answered with an error status and its own message.
    #[error("model call failed: HTTP {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider could not be reached.
    #[error("model call failed: {0}")]
    Unreachable(String),
    /// The provider failed the request, or its answer could not be read.
    #[error("model call failed: {0}")]
    Failed(String),
}

/// A model that drives an agent.
pub trait Model: Send + Sync {
    /// The provider's name, for status and events.
    fn provider(&self) -> &str;

    /// The next turn, given the conversation and the tool names available.
    fn next_turn(
        &self,
        conversation: &[Turn],
        tools: &[&str],
    ) -> impl Future<Output = Result<ModelTurn, ModelError>> + Send;
}

/// Accepts a provider's HTTP answer: the response itself on success (its body is then read
/// as JSON or as a stream); a rate limit for 429 and the provider's own `busy` statuses,
/// waiting the `retry-after` header or what `delay` finds in the body; otherwise a failure
/// with the provider's error message.
pub(crate) async fn accept(
    resp: reqwest::Response,
    busy: &[u16],
    delay: impl Fn(&Value) -> Option<u64>,
) -> Result<reqwest::Response, ModelError> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let retry_after: Option<u64> = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status == 429 || busy.contains(&status) {
        return Err(ModelError::RateLimited {
            retry_after_secs: retry_after.or_else(|| delay(&body)).unwrap_or(1),
        });
    }
    let message = body["error"]["message"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_string);
    Err(ModelError::Refused { status, message })
}

/// Sends a model request and reads the answer: streamed into an `A`, or one JSON body
/// read by `parse`; errors and rate limits as [`accept`] reads them.
pub(crate) async fn exchange<A: stream::Assembler + Default>(
    req: reqwest::RequestBuilder,
    streaming: bool,
    busy: &[u16],
    delay: impl Fn(&Value) -> Option<u64>,
    parse: fn(&Value) -> Result<ModelTurn, ModelError>,
) -> Result<ModelTurn, ModelError> {
    let resp = req
        .send()
        .await
        .map_err(|e| ModelError::Unreachable(error_chain(&e)))?;
    let resp = accept(resp, busy, delay).await?;
    if streaming {
        stream::assemble(resp, A::default()).await
    } else {
        parse(&json_body(resp).await?)
    }
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The JSON body of an accepted answer.
pub(crate) async fn json_body(resp: reqwest::Response) -> Result<Value, ModelError> {
    resp.json()
        .await
        .map_err(|e| ModelError::Failed(format!("the answer is not JSON: {e}")))
}

/// A tool call's arguments: a JSON string by the OpenAI formats' spec, though some servers
/// send an object; text that is not JSON is kept for the tool to refuse.
pub(crate) fn arguments(raw: &Value) -> Value {
    match raw {
        Value::String(s) if s.trim().is_empty() => Value::Object(Default::default()),
        Value::String(s) => {
            serde_json::from_str(s).unwrap_or_else(|_| serde_json::json!({"_unparsed": s}))
        }
        other => other.clone(),
    }
}

/// Connects to a provider: the HTTP client every adapter uses (rustls, the platform's
/// roots; no overall timeout, since a streamed answer may take minutes, but a connect
/// timeout so a dead address fails fast).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}
