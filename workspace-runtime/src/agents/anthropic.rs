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

use serde_json::{Value, json};

use super::stream::{self, Assembler, Pieces};
use super::tools::{SYSTEM_PROMPT, schemas};
use super::{Model, ModelError, ModelTurn, ToolCall, Turn, Usage};

/// The API version this adapter speaks.
pub const API_VERSION: &str = "2023-06-01";

/// A Messages endpoint.
#[derive(Debug, Clone)]
pub struct Messages {
    endpoint: super::Endpoint,
    api_key: String,
    max_tokens: u64,
}

impl Messages {
    /// An endpoint at `base_url` (`https://api.anthropic.com`).
    pub fn new(base_url: &str, api_key: String, model: &str, max_tokens: u64) -> Self {
        Messages {
            endpoint: super::Endpoint::new(base_url, model),
            api_key,
            max_tokens,
        }
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
                Turn::Assistant { text, calls } => {
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

/// Assembles a Messages event stream.
#[derive(Debug, Default)]
pub(crate) struct Events(Pieces);

impl Assembler for Events {
    fn feed(&mut self, event: &str, data: &str) -> Result<bool, ModelError> {
        if event == "ping" {
            return Ok(false);
        }
        let e = stream::data(data)?;
        match e["type"].as_str().unwrap_or(event) {
            "message_start" => {
                self.0.usage.input = e["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let block = &e["content_block"];
                let call = self.0.call(e["index"].as_u64().unwrap_or(0) as usize);
                if block["type"] == "tool_use" {
                    call.0 = block["id"].as_str().unwrap_or_default().to_string();
                    call.1 = block["name"].as_str().unwrap_or_default().to_string();
                } else if let Some(text) = block["text"].as_str() {
                    self.0.text.push_str(text);
                }
            }
            "content_block_delta" => {
                let delta = &e["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => self
                        .0
                        .text
                        .push_str(delta["text"].as_str().unwrap_or_default()),
                    Some("input_json_delta") => {
                        let call = self.0.call(e["index"].as_u64().unwrap_or(0) as usize);
                        call.2
                            .push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(output) = e["usage"]["output_tokens"].as_u64() {
                    self.0.usage.output = output;
                }
            }
            "message_stop" => {
                self.0.complete = true;
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

    fn finish(self) -> Result<ModelTurn, ModelError> {
        self.0.turn()
    }
}
