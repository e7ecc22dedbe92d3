//! The Anthropic Messages wire format (`POST {base}/v1/messages`, Claude): headers
//! `x-api-key` and `anthropic-version`; tools as `{name, description, input_schema}`; the
//! model's calls as `tool_use` content blocks (`id`, `name`, `input`) with
//! `stop_reason: "tool_use"`; results sent back as `tool_result` blocks, all results of one
//! turn in one user message. A 429 (or 529, overloaded) becomes a rate limit with the
//! server's `retry-after`.
//!
//! Streamed (`"stream": true`, the default): `message_start` (input tokens),
//! `content_block_start` per block (a `tool_use` block names its id and tool),
//! `content_block_delta`s (`text_delta`, or `input_json_delta` pieces of the call's input),
//! `message_delta` (stop reason, output tokens), `message_stop`; an `error` event inside
//! the stream (`overloaded_error` is a rate limit).
//!
//! Extended thinking (`reasoning` in the agent's spec: `thinking: {type: "enabled",
//! budget_tokens}`, `max_tokens` raised to hold the budget): the answer then starts with
//! `thinking` blocks (text and `signature`; streamed as `thinking_delta` and
//! `signature_delta`) or `redacted_thinking` blocks (`data`), which must go back unchanged
//! in the assistant message of a tool-use turn. Every answer's content blocks are kept as
//! they came (the turn's [`ProviderState`]) and sent back as the assistant message.

use serde_json::{Value, json};

use super::stream::{self, Assembler};
use super::tools::{SYSTEM_PROMPT, schemas};
use super::{Model, ModelError, ModelTurn, ProviderState, ToolCall, Turn, Usage};
use coditect_specs::{Reasoning, ReasoningEffort};

/// What `max_tokens` leaves for the answer beyond the thinking budget.
const ANSWER_TOKENS: u64 = 4096;

/// The API version this adapter speaks.
pub const API_VERSION: &str = "2023-06-01";

/// A Messages endpoint.
#[derive(Debug, Clone)]
pub struct Messages {
    endpoint: super::Endpoint,
    api_key: String,
    max_tokens: u64,
    thinking_budget: Option<u64>,
}

impl Messages {
    /// An endpoint at `base_url` (`https://api.anthropic.com`).
    pub fn new(base_url: &str, api_key: String, model: &str, max_tokens: u64) -> Self {
        Messages {
            endpoint: super::Endpoint::new(base_url, model),
            api_key,
            max_tokens,
            thinking_budget: None,
        }
    }

    /// Extended thinking: a budget in tokens (`budgetTokens`, or one for the effort);
    /// `effort: none` or no setting leaves it off.
    pub fn reasoning(mut self, reasoning: Option<Reasoning>) -> Self {
        self.thinking_budget = reasoning.and_then(|r| match (r.budget_tokens, r.effort) {
            (Some(b), _) => Some(b),
            (None, Some(ReasoningEffort::None) | None) => None,
            (None, Some(effort)) => Some(effort.budget_tokens()),
        });
        self
    }

    /// Whether to ask for a streamed answer (the default) or one JSON body.
    pub fn streaming(mut self, on: bool) -> Self {
        self.endpoint.streaming = on;
        self
    }

    /// The request body for a conversation.
    pub fn body(&self, conversation: &[Turn], tools: &[&str]) -> Value {
        let mut messages: Vec<Value> = Vec::new();
        for turn in conversation {
            match turn {
                Turn::User { text } => messages.push(json!({"role": "user", "content": text})),
                Turn::Assistant { text, calls, state } => {
                    if let Some(blocks) = ProviderState::of(state.as_ref(), "anthropic") {
                        messages.push(json!({"role": "assistant", "content": blocks["content"]}));
                        continue;
                    }
                    let mut content: Vec<Value> = Vec::new();
                    if !text.is_empty() {
                        content.push(json!({"type": "text", "text": text}));
                    }
                    content.extend(calls.iter().map(|c| json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments})));
                    messages.push(json!({"role": "assistant", "content": content}));
                }
                Turn::ToolResult { id, ok, content } => {
                    let text = content
                        .as_str()
                        .map_or_else(|| content.to_string(), str::to_string);
                    let block = json!({"type": "tool_result", "tool_use_id": id, "content": text, "is_error": !ok});
                    // Results of one turn share one user message.
                    match messages.last_mut() {
                        Some(last) if last["role"] == "user" && last["content"].is_array() => {
                            if let Some(blocks) = last["content"].as_array_mut() {
                                blocks.push(block);
                            }
                        }
                        _ => messages.push(json!({"role": "user", "content": [block]})),
                    }
                }
            }
        }
        let tools: Vec<Value> = schemas()
            .into_iter()
            .filter(|(name, _, _)| tools.contains(name))
            .map(|(name, description, schema)| json!({"name": name, "description": description, "input_schema": schema}))
            .collect();
        let mut body = json!({"model": self.endpoint.model, "max_tokens": self.max_tokens, "system": SYSTEM_PROMPT, "messages": messages, "tools": tools});
        if let Some(budget) = self.thinking_budget {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
            body["max_tokens"] = json!(self.max_tokens.max(budget + ANSWER_TOKENS));
        }
        if self.endpoint.streaming {
            body["stream"] = json!(true);
        }
        body
    }
}

/// Parses a Messages answer.
///
/// # Errors
/// [`ModelError::Failed`] when it has no content.
pub fn parse(body: &Value) -> Result<ModelTurn, ModelError> {
    let blocks = body["content"]
        .as_array()
        .ok_or_else(|| ModelError::Failed(format!("no content in the answer: {body}")))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("tool_use") => calls.push(ToolCall {
                id: b["id"].as_str().unwrap_or_default().to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                arguments: b["input"].clone(),
            }),
            _ => {}
        }
    }
    Ok(ModelTurn {
        text,
        calls,
        usage: Usage::read(&body["usage"], "input_tokens", "output_tokens"),
        state: Some(ProviderState::new(
            "anthropic",
            json!({"content": body["content"]}),
        )),
        model: body["model"].as_str().map(str::to_string),
    })
}

impl Model for Messages {
    fn provider(&self) -> &str {
        "anthropic"
    }

    async fn next_turn(
        &self,
        conversation: &[Turn],
        tools: &[&str],
    ) -> Result<ModelTurn, ModelError> {
        let req = self
            .endpoint
            .http
            .post(format!("{}/v1/messages", self.endpoint.base_url))
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
            .json(&self.body(conversation, tools));
        super::exchange::<Events>(req, self.endpoint.streaming, &[529], |_| None, parse).await
    }
}

/// Assembles a Messages event stream into the message it streams: every content block as
/// it came (thinking text and signature, text, a tool call's input from its JSON pieces),
/// then read by [`parse`] like a whole answer.
#[derive(Debug, Default)]
pub(crate) struct Events {
    /// The message so far: `model`, `usage` and `content`.
    message: Value,
    /// Each block's input JSON text, by block index (for `tool_use` blocks).
    inputs: Vec<String>,
    complete: bool,
}

impl Events {
    /// The block at `index`, created empty when first seen.
    fn block(&mut self, index: usize) -> &mut Value {
        if !self.message["content"].is_array() {
            self.message["content"] = json!([]);
        }
        let blocks = self.message["content"]
            .as_array_mut()
            .expect("invariant: content was just made an array");
        if blocks.len() <= index {
            blocks.resize(index + 1, json!({}));
        }
        &mut blocks[index]
    }
}

/// Appends `piece` to the string field `key` of `block`.
fn append(block: &mut Value, key: &str, piece: &str) {
    let mut text = block[key].as_str().unwrap_or_default().to_string();
    text.push_str(piece);
    block[key] = json!(text);
}

impl Assembler for Events {
    fn feed(&mut self, event: &str, data: &str) -> Result<bool, ModelError> {
        if event == "ping" {
            return Ok(false);
        }
        let e = stream::data(data)?;
        let index = e["index"].as_u64().unwrap_or(0) as usize;
        match e["type"].as_str().unwrap_or(event) {
            "message_start" => {
                self.message["model"] = e["message"]["model"].clone();
                self.message["usage"] = e["message"]["usage"].clone();
            }
            "content_block_start" => *self.block(index) = e["content_block"].clone(),
            "content_block_delta" => {
                let delta = &e["delta"];
                let (key, piece) = match delta["type"].as_str() {
                    Some("text_delta") => ("text", &delta["text"]),
                    Some("thinking_delta") => ("thinking", &delta["thinking"]),
                    Some("signature_delta") => ("signature", &delta["signature"]),
                    Some("input_json_delta") => {
                        if self.inputs.len() <= index {
                            self.inputs.resize(index + 1, String::new());
                        }
                        self.inputs[index]
                            .push_str(delta["partial_json"].as_str().unwrap_or_default());
                        return Ok(false);
                    }
                    _ => return Ok(false),
                };
                append(self.block(index), key, piece.as_str().unwrap_or_default());
            }
            "message_delta" => {
                if let Some(output) = e["usage"]["output_tokens"].as_u64() {
                    self.message["usage"]["output_tokens"] = json!(output);
                }
            }
            "message_stop" => {
                self.complete = true;
                return Ok(true);
            }
            "error" => {
                return Err(match e["error"]["type"].as_str() {
                    Some("overloaded_error" | "rate_limit_error") => ModelError::RateLimited {
                        retry_after_secs: 1,
                    },
                    _ => ModelError::Failed(
                        e["error"]["message"].as_str().unwrap_or(data).to_string(),
                    ),
                });
            }
            _ => {}
        }
        Ok(false)
    }

    fn finish(mut self) -> Result<ModelTurn, ModelError> {
        if !self.complete {
            return Err(ModelError::Failed(
                "the stream ended before the answer was complete".into(),
            ));
        }
        // A tool_use block's input came as JSON text in pieces: put the whole input back.
        let inputs = std::mem::take(&mut self.inputs);
        for (index, input) in inputs.into_iter().enumerate() {
            let block = self.block(index);
            if block["type"] == "tool_use" {
                block["input"] = super::arguments(&Value::String(input));
            }
        }
        if !self.message["content"].is_array() {
            self.message["content"] = json!([]);
        }
        parse(&self.message)
    }
}
