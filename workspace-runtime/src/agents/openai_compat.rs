//! The OpenAI Chat Completions wire format (`POST {base}/chat/completions`), spoken by
//! Moonshot (Kimi) and by any OpenAI-compatible server (Ollama, vLLM): tools as
//! `{"type":"function","function":{name, description, parameters}}`, the model's calls in
//! `choices[0].message.tool_calls[]` with `function.arguments` as a JSON string, results
//! sent back as `{"role":"tool","tool_call_id":…}` messages. A 429 becomes
//! [`ModelError::RateLimited`] with the server's `retry-after`.

use serde_json::{Value, json};

use super::tools::{SYSTEM_PROMPT, schemas};
use super::{Model, ModelError, ModelTurn, ToolCall, Turn, Usage};

/// A Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct ChatCompletions {
    http: reqwest::Client,
    provider: &'static str,
    base_url: String,
    api_key: Option<String>,
    model: String,
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
            http: reqwest::Client::new(),
            provider,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            model: model.to_string(),
        }
    }

    /// The request body for a conversation.
    pub fn body(&self, conversation: &[Turn], tools: &[&str]) -> Value {
        let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
        for turn in conversation {
            messages.push(match turn {
                Turn::User { text } => json!({"role": "user", "content": text}),
                Turn::Assistant { text, calls } => {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}}))
                        .collect();
                    let content = if text.is_empty() { Value::Null } else { json!(text) };
                    if calls.is_empty() {
                        json!({"role": "assistant", "content": content})
                    } else {
                        json!({"role": "assistant", "content": content, "tool_calls": calls})
                    }
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
        json!({"model": self.model, "messages": messages, "tools": tools})
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
            let raw = &c["function"]["arguments"];
            // Arguments are a JSON string by the spec; some servers send an object.
            let arguments = match raw {
                Value::String(s) => {
                    serde_json::from_str(s).unwrap_or_else(|_| json!({"_unparsed": s}))
                }
                other => other.clone(),
            };
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
        usage: Usage {
            input: body["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            output: body["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        },
    })
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
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&self.body(conversation, tools));
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ModelError::Failed(e.to_string()))?;
        let body = super::read_answer(resp, &[], |_| None).await?;
        parse(&body)
    }
}
