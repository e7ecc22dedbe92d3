//! The OpenAI Chat Completions wire format (`POST {base}/chat/completions`), spoken by
//! Moonshot (Kimi) and by any OpenAI-compatible server (Ollama, vLLM): tools as
//! `{"type":"function","function":{name, description, parameters}}`, the model's calls in
//! `choices[0].message.tool_calls[]` with `function.arguments` as a JSON string, results
//! sent back as `{"role":"tool","tool_call_id":…}` messages. A 429 becomes
//! [`ModelError::RateLimited`] with the server's `retry-after`.
//!
//! Streamed (`"stream": true`, the default), the answer is `chat.completion.chunk` events:
//! text in `delta.content`, calls in `delta.tool_calls[]` pieces keyed by `index` (id and
//! name first, then argument text), `finish_reason` on the last choice, usage in a final
//! chunk (`stream_options.include_usage`; Moonshot puts it in the choice), then
//! `data: [DONE]`.
//!
//! Thinking models (Kimi K2.6 thinks by default) send their reasoning as
//! `reasoning_content` (`delta.reasoning_content` when streamed). Moonshot requires it back,
//! unchanged and non-empty, on every assistant message that carries tool calls, or refuses
//! the request with a 400; it is kept as the turn's [`ProviderState`] and sent back on that
//! message. `reasoning.effort: none` turns Kimi's thinking off (`thinking: {"type":
//! "disabled"}`); other efforts are sent as `reasoning_effort` to servers that take it.

use serde_json::{Value, json};

use super::stream::{self, Assembler, Pieces};
use super::tools::{SYSTEM_PROMPT, schemas};
use super::{Model, ModelError, ModelTurn, ProviderState, ToolCall, Turn, Usage};
use coditect_specs::{Reasoning, ReasoningEffort};

/// Whose state this adapter keeps: `reasoning_content` belongs to the Chat Completions
/// wire format (Moonshot, and the OpenAI-compatible servers that serve thinking models),
/// not to one provider of it.
pub const WIRE: &str = "chat-completions";

/// A Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct ChatCompletions {
    endpoint: super::Endpoint,
    provider: &'static str,
    api_key: Option<String>,
    reasoning: Option<Reasoning>,
}

impl ChatCompletions {
    /// An endpoint at `base_url` (ending in `/v1` or the server's equivalent).
    pub fn new(
        provider: &'static str,
        base_url: &str,
        api_key: Option<String>,
        model: &str,
    ) -> Self {
        ChatCompletions {
            endpoint: super::Endpoint::new(base_url, model),
            provider,
            api_key,
            reasoning: None,
        }
    }

    /// How much the model thinks (see the module doc for the mapping).
    pub fn reasoning(mut self, reasoning: Option<Reasoning>) -> Self {
        self.reasoning = reasoning;
        self
    }

    /// Whether to ask for a streamed answer (the default) or one JSON body.
    pub fn streaming(mut self, on: bool) -> Self {
        self.endpoint.streaming = on;
        self
    }

    /// The request body for a conversation.
    pub fn body(&self, conversation: &[Turn], tools: &[&str]) -> Value {
        let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
        for turn in conversation {
            messages.push(match turn {
                Turn::User { text } => json!({"role": "user", "content": text}),
                Turn::Assistant { text, calls, state } => {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}}))
                        .collect();
                    let content = if text.is_empty() { Value::Null } else { json!(text) };
                    let mut message = json!({"role": "assistant", "content": content});
                    if !calls.is_empty() {
                        message["tool_calls"] = json!(calls);
                    }
                    if let Some(reasoning) = ProviderState::of(state.as_ref(), WIRE)
                        .and_then(|v| v.get("reasoning_content"))
                    {
                        message["reasoning_content"] = reasoning.clone();
                    }
                    message
                }
                Turn::ToolResult { id, ok, content } => {
                    let text = if *ok { content.to_string() } else { format!("error: {}", content.as_str().unwrap_or(&content.to_string())) };
                    json!({"role": "tool", "tool_call_id": id, "content": text})
                }
            });
        }
        let tools: Vec<Value> = schemas()
            .into_iter()
            .filter(|(name, _, _)| tools.contains(name))
            .map(|(name, description, parameters)| json!({"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}))
            .collect();
        let mut body = json!({"model": self.endpoint.model, "messages": messages, "tools": tools});
        match self.reasoning.as_ref().and_then(|r| r.effort) {
            Some(ReasoningEffort::None) if self.provider == "moonshot" => {
                body["thinking"] = json!({"type": "disabled"});
            }
            Some(ReasoningEffort::None) | None => {}
            // Kimi has no levels: thinking is on or off.
            Some(_) if self.provider == "moonshot" => body["thinking"] = json!({"type": "enabled"}),
            Some(effort) => body["reasoning_effort"] = json!(effort.as_str()),
        }
        if self.endpoint.streaming {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }
}

/// Parses a Chat Completions answer.
///
/// # Errors
/// [`ModelError::Failed`] when it has no choice.
pub fn parse(body: &Value) -> Result<ModelTurn, ModelError> {
    let message = &body["choices"][0]["message"];
    if message.is_null() {
        return Err(ModelError::Failed(format!(
            "no choices in the answer: {body}"
        )));
    }
    let calls = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let arguments = super::arguments(&c["function"]["arguments"]);
            ToolCall {
                id: c["id"]
                    .as_str()
                    .map_or_else(|| format!("call-{i}"), str::to_string),
                name: c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                arguments,
            }
        })
        .collect();
    Ok(ModelTurn {
        text: message["content"].as_str().unwrap_or_default().to_string(),
        calls,
        usage: Usage::read(&body["usage"], "prompt_tokens", "completion_tokens"),
        state: reasoning_state(message["reasoning_content"].as_str()),
        model: body["model"].as_str().map(str::to_string),
    })
}

/// The reasoning to send back, when the model gave any.
fn reasoning_state(reasoning: Option<&str>) -> Option<ProviderState> {
    reasoning
        .filter(|r| !r.is_empty())
        .map(|r| ProviderState::new(WIRE, json!({"reasoning_content": r})))
}

impl Model for ChatCompletions {
    fn provider(&self) -> &str {
        self.provider
    }

    async fn next_turn(
        &self,
        conversation: &[Turn],
        tools: &[&str],
    ) -> Result<ModelTurn, ModelError> {
        let mut req = self
            .endpoint
            .http
            .post(format!("{}/chat/completions", self.endpoint.base_url))
            .json(&self.body(conversation, tools));
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        super::exchange::<Chunks>(req, self.endpoint.streaming, &[], |_| None, parse).await
    }
}

/// Assembles `chat.completion.chunk` events.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    pieces: Pieces,
    reasoning: String,
    model: Option<String>,
}

impl Assembler for Chunks {
    fn feed(&mut self, _event: &str, data: &str) -> Result<bool, ModelError> {
        if data.trim() == "[DONE]" {
            self.pieces.complete = true;
            return Ok(true);
        }
        let chunk = stream::data(data)?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            return Err(ModelError::Failed(message.to_string()));
        }
        let usage = if chunk["usage"].is_object() {
            &chunk["usage"]
        } else {
            &chunk["choices"][0]["usage"]
        };
        if usage["prompt_tokens"].is_u64() {
            self.pieces.usage = Usage::read(usage, "prompt_tokens", "completion_tokens");
        }
        let delta = &chunk["choices"][0]["delta"];
        if let Some(reasoning) = delta["reasoning_content"].as_str() {
            self.reasoning.push_str(reasoning);
        }
        if self.model.is_none() {
            self.model = chunk["model"].as_str().map(str::to_string);
        }
        if let Some(text) = delta["content"].as_str() {
            self.pieces.text.push_str(text);
        }
        for piece in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = piece["index"].as_u64().unwrap_or(0) as usize;
            let call = self.pieces.call(index);
            if let Some(id) = piece["id"].as_str() {
                call.0 = id.to_string();
            }
            if let Some(name) = piece["function"]["name"].as_str() {
                call.1.push_str(name);
            }
            if let Some(args) = piece["function"]["arguments"].as_str() {
                call.2.push_str(args);
            }
        }
        Ok(false)
    }

    fn finish(self) -> Result<ModelTurn, ModelError> {
        let mut turn = self.pieces.turn()?;
        turn.state = reasoning_state(Some(&self.reasoning));
        turn.model = self.model;
        Ok(turn)
    }
}
