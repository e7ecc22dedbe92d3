//! The Gemini `generateContent` wire format (`POST {base}/v1beta/models/{model}:generateContent`,
//! header `x-goog-api-key`): `contents` of `user` and `model` turns made of `parts`; tools as
//! `functionDeclarations`; the model's calls as `functionCall` parts (`name`, `args`, and an
//! `id` when the server gives one); results sent back as `functionResponse` parts, which
//! Gemini matches by name. A 429 (`RESOURCE_EXHAUSTED`) becomes a rate limit with the delay
//! from its `RetryInfo` detail.
//!
//! Streamed (the default), the call is `:streamGenerateContent?alt=sse`: each event is a
//! whole `GenerateContentResponse` holding the next parts (text pieces, whole
//! `functionCall`s), the last one with `finishReason` and `usageMetadata`.
//!
//! Thinking models put a `thoughtSignature` on parts (always on a Gemini 3 function
//! call); it must come back unchanged on the same part in the next request, or Gemini 3
//! answers 400 ("Function call is missing a thought_signature"). The model's parts are
//! kept exactly as they came, streamed pieces included (the turn's [`ProviderState`]), and
//! sent back as the model turn. Thought summaries (`thought: true`) are not answer text.
//! `reasoning`: `thinkingConfig.thinkingBudget` for a token budget (Gemini 2.5),
//! `thinkingLevel` for an effort (Gemini 3; `none` asks for `minimal`).

use serde_json::{Value, json};

use super::stream::{self, Assembler};
use super::tools::{SYSTEM_PROMPT, schemas};
use super::{Model, ModelError, ModelTurn, ProviderState, ToolCall, Turn, Usage};
use coditect_specs::{Reasoning, ReasoningEffort};

/// A generateContent endpoint.
#[derive(Debug, Clone)]
pub struct GenerateContent {
    endpoint: super::Endpoint,
    api_key: String,
    reasoning: Option<Reasoning>,
}

impl GenerateContent {
    /// An endpoint at `base_url` (`https://generativelanguage.googleapis.com`).
    pub fn new(base_url: &str, api_key: String, model: &str) -> Self {
        GenerateContent {
            endpoint: super::Endpoint::new(base_url, model),
            api_key,
            reasoning: None,
        }
    }

    /// How much the model thinks (see the module doc for the mapping).
    pub fn reasoning(mut self, reasoning: Option<Reasoning>) -> Self {
        self.reasoning = reasoning;
        self
    }

    /// `generationConfig.thinkingConfig`, when the spec sets one.
    fn thinking_config(&self) -> Option<Value> {
        let r = self.reasoning.as_ref()?;
        if let Some(budget) = r.budget_tokens {
            return Some(json!({"thinkingBudget": budget}));
        }
        let level = match r.effort? {
            ReasoningEffort::None | ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High | ReasoningEffort::Xhigh => "high",
        };
        Some(json!({"thinkingLevel": level}))
    }

    /// Whether to ask for a streamed answer (the default) or one JSON body.
    pub fn streaming(mut self, on: bool) -> Self {
        self.endpoint.streaming = on;
        self
    }

    /// The request body for a conversation.
    pub fn body(&self, conversation: &[Turn], tools: &[&str]) -> Value {
        let mut contents: Vec<Value> = Vec::new();
        let mut names = std::collections::HashMap::new();
        for turn in conversation {
            match turn {
                Turn::User { text } => {
                    contents.push(json!({"role": "user", "parts": [{"text": text}]}))
                }
                Turn::Assistant { text, calls, state } => {
                    for c in calls {
                        names.insert(c.id.clone(), c.name.clone());
                    }
                    if let Some(kept) = ProviderState::of(state.as_ref(), "google") {
                        contents.push(json!({"role": "model", "parts": kept["parts"]}));
                        continue;
                    }
                    let mut parts: Vec<Value> = Vec::new();
                    if !text.is_empty() {
                        parts.push(json!({"text": text}));
                    }
                    for c in calls {
                        parts.push(json!({"functionCall": {"id": c.id, "name": c.name, "args": c.arguments}}));
                    }
                    contents.push(json!({"role": "model", "parts": parts}));
                }
                Turn::ToolResult { id, ok, content } => {
                    let name = names.get(id).cloned().unwrap_or_default();
                    let response = if *ok {
                        json!({"output": content})
                    } else {
                        json!({"error": content})
                    };
                    let part =
                        json!({"functionResponse": {"id": id, "name": name, "response": response}});
                    match contents.last_mut() {
                        Some(last)
                            if last["role"] == "user"
                                && last["parts"][0].get("functionResponse").is_some() =>
                        {
                            if let Some(parts) = last["parts"].as_array_mut() {
                                parts.push(part);
                            }
                        }
                        _ => contents.push(json!({"role": "user", "parts": [part]})),
                    }
                }
            }
        }
        let declarations: Vec<Value> = schemas()
            .into_iter()
            .filter(|(name, _, _)| tools.contains(name))
            .map(|(name, description, parameters)| json!({"name": name, "description": description, "parameters": parameters}))
            .collect();
        let mut body = json!({
            "systemInstruction": {"parts": [{"text": SYSTEM_PROMPT}]},
            "contents": contents,
            "tools": [{"functionDeclarations": declarations}],
        });
        if let Some(thinking) = self.thinking_config() {
            body["generationConfig"] = json!({"thinkingConfig": thinking});
        }
        body
    }
}

/// Parses a generateContent answer.
///
/// # Errors
/// [`ModelError::Failed`] when it has no candidate.
pub fn parse(body: &Value) -> Result<ModelTurn, ModelError> {
    let parts = body["candidates"][0]["content"]["parts"]
        .as_array()
        .ok_or_else(|| ModelError::Failed(format!("no candidate in the answer: {body}")))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if let Some(t) = p["text"].as_str()
            && p["thought"] != true
        {
            text.push_str(t);
        }
        let f = &p["functionCall"];
        if !f.is_null() {
            calls.push(ToolCall {
                id: f["id"]
                    .as_str()
                    .map_or_else(|| format!("gemini-{i}"), str::to_string),
                name: f["name"].as_str().unwrap_or_default().to_string(),
                arguments: f["args"].clone(),
            });
        }
    }
    Ok(ModelTurn {
        text,
        calls,
        usage: usage(body),
        state: Some(ProviderState::new("google", json!({"parts": parts}))),
        model: body["modelVersion"].as_str().map(str::to_string),
    })
}

/// Tokens from `usageMetadata`.
fn usage(body: &Value) -> Usage {
    Usage::read(
        &body["usageMetadata"],
        "promptTokenCount",
        "candidatesTokenCount",
    )
}

/// Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "12s"`).
fn retry_delay(body: &Value) -> Option<u64> {
    body["error"]["details"].as_array()?.iter().find_map(|d| {
        let delay = d["retryDelay"].as_str()?;
        delay
            .trim_end_matches('s')
            .parse::<f64>()
            .ok()
            .map(|s| s.ceil() as u64)
    })
}

impl Model for GenerateContent {
    fn provider(&self) -> &str {
        "google"
    }

    async fn next_turn(
        &self,
        conversation: &[Turn],
        tools: &[&str],
    ) -> Result<ModelTurn, ModelError> {
        let url = if self.endpoint.streaming {
            format!(
                "{}/v1beta/models/{}:streamGenerateContent?alt=sse",
                self.endpoint.base_url, self.endpoint.model
            )
        } else {
            format!(
                "{}/v1beta/models/{}:generateContent",
                self.endpoint.base_url, self.endpoint.model
            )
        };
        let req = self
            .endpoint
            .http
            .post(url)
            .header("x-goog-api-key", &self.api_key)
            .json(&self.body(conversation, tools));
        super::exchange::<Chunks>(req, self.endpoint.streaming, &[], retry_delay, parse).await
    }
}

/// Assembles streamed `GenerateContentResponse`s: each is parsed like a whole answer and
/// its parts appended.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    turn: Option<ModelTurn>,
    finished: bool,
}

impl Assembler for Chunks {
    fn feed(&mut self, _event: &str, data: &str) -> Result<bool, ModelError> {
        let chunk = stream::data(data)?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            return Err(ModelError::Failed(message.to_string()));
        }
        // The last event may carry only the finish reason and usage.
        let next = if chunk["candidates"][0]["content"]["parts"].is_array() {
            parse(&chunk)?
        } else {
            ModelTurn {
                usage: usage(&chunk),
                ..ModelTurn::default()
            }
        };
        let turn = self.turn.get_or_insert_with(ModelTurn::default);
        turn.text.push_str(&next.text);
        // Every streamed part is kept as it came, in order: a signature may ride on a
        // part of its own.
        if let Some(new) = next
            .state
            .as_ref()
            .and_then(|s| s.value["parts"].as_array())
        {
            let state = turn
                .state
                .get_or_insert_with(|| ProviderState::new("google", json!({"parts": []})));
            if let Some(parts) = state.value["parts"].as_array_mut() {
                parts.extend(new.iter().cloned());
            }
        }
        if turn.model.is_none() {
            turn.model = next.model.clone();
        }
        let offset = turn.calls.len();
        turn.calls.extend(next.calls.into_iter().map(|mut c| {
            if c.id.starts_with("gemini-") {
                c.id = format!("gemini-{offset}-{}", &c.id["gemini-".len()..]);
            }
            c
        }));
        if next.usage != Usage::default() {
            turn.usage = next.usage;
        }
        self.finished |= chunk["candidates"][0]["finishReason"].is_string();
        Ok(false)
    }

    fn finish(self) -> Result<ModelTurn, ModelError> {
        match self.turn {
            Some(turn) if self.finished => Ok(turn),
            _ => Err(ModelError::Failed(
                "the stream ended before the answer was complete".into(),
            )),
        }
    }
}
