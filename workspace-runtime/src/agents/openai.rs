//! The OpenAI Responses wire format (`POST {base}/responses`, Codex models), bearer auth:
//! the conversation as `input` items (`{"role":"user"|"assistant","content":…}` messages,
//! the model's `function_call` items with `call_id`, `name` and `arguments` as a JSON
//! string, and our `function_call_output` items answering them by `call_id`); the system
//! prompt as `instructions`; tools as `{"type":"function", name, description, parameters}`;
//! `store: false`, so every request carries the whole conversation and nothing is kept
//! server-side. The answer's `output` holds `message` items (`output_text` parts) and
//! `function_call` items; usage is `input_tokens` / `output_tokens`. A 429 becomes a rate
//! limit with the server's `retry-after`.
//!
//! Streamed (`"stream": true`, the default): typed events (`response.created`,
//! `response.output_text.delta`, `response.function_call_arguments.delta`, …) ending in
//! `response.completed`, which carries the whole response; `response.failed`,
//! `response.incomplete` and `error` end it with a failure.
//!
//! Reasoning without server-side state: every request asks for
//! `include: ["reasoning.encrypted_content"]`, and the answer's output items (its
//! `reasoning` items with their encrypted content among them) are kept as they came (the
//! turn's [`ProviderState`]) and sent back as input, so a reasoning model carries its
//! thinking across tool calls instead of starting over. (A reasoning item sent by id
//! alone is refused with a 404 when `store` is false.) `reasoning.effort` comes from the
//! agent's spec.

use serde_json::{Value, json};

use super::stream::{self, Assembler};
use super::tools::{SYSTEM_PROMPT, schemas};
use super::{Model, ModelError, ModelTurn, ProviderState, ToolCall, Turn, Usage};
use coditect_specs::Reasoning;

/// A Responses endpoint.
#[derive(Debug, Clone)]
pub struct Responses {
    endpoint: super::Endpoint,
    api_key: String,
    reasoning: Option<Reasoning>,
}

impl Responses {
    /// An endpoint at `base_url` (`https://api.openai.com/v1`).
    pub fn new(base_url: &str, api_key: String, model: &str) -> Self {
        Responses {
            endpoint: super::Endpoint::new(base_url, model),
            api_key,
            reasoning: None,
        }
    }

    /// The reasoning effort to ask for.
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
        let mut input: Vec<Value> = Vec::new();
        for turn in conversation {
            match turn {
                Turn::User { text } => input.push(json!({"role": "user", "content": text})),
                Turn::Assistant { text, calls, state } => {
                    if let Some(output) = ProviderState::of(state.as_ref(), "openai")
                        .and_then(|v| v["output"].as_array())
                    {
                        input.extend(output.iter().cloned());
                        continue;
                    }
                    if !text.is_empty() {
                        input.push(json!({"role": "assistant", "content": text}));
                    }
                    input.extend(calls.iter().map(|c| {
                        json!({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments.to_string()})
                    }));
                }
                Turn::ToolResult { id, ok, content } => {
                    let text = content
                        .as_str()
                        .map_or_else(|| content.to_string(), str::to_string);
                    let output = if *ok { text } else { format!("error: {text}") };
                    input.push(
                        json!({"type": "function_call_output", "call_id": id, "output": output}),
                    );
                }
            }
        }
        let tools: Vec<Value> = schemas()
            .into_iter()
            .filter(|(name, _, _)| tools.contains(name))
            .map(|(name, description, parameters)| {
                json!({"type": "function", "name": name, "description": description, "parameters": parameters})
            })
            .collect();
        let mut body = json!({
            "model": self.endpoint.model,
            "instructions": SYSTEM_PROMPT,
            "input": input,
            "tools": tools,
            "store": false,
            "include": ["reasoning.encrypted_content"],
        });
        if let Some(effort) = self.reasoning.as_ref().and_then(|r| r.effort) {
            body["reasoning"] = json!({"effort": effort.as_str()});
        }
        if self.endpoint.streaming {
            body["stream"] = json!(true);
        }
        body
    }
}

/// Parses a Responses answer (a `response` object).
///
/// # Errors
/// [`ModelError::Failed`] when the response failed or has no output.
pub fn parse(response: &Value) -> Result<ModelTurn, ModelError> {
    if response["status"] == "failed" {
        let why = response["error"]["message"]
            .as_str()
            .unwrap_or("no reason given");
        return Err(ModelError::Failed(format!("the response failed: {why}")));
    }
    let output = response["output"]
        .as_array()
        .ok_or_else(|| ModelError::Failed(format!("no output in the answer: {response}")))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in output {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    if part["type"] == "output_text" {
                        text.push_str(part["text"].as_str().unwrap_or_default());
                    }
                }
            }
            Some("function_call") => calls.push(ToolCall {
                id: item["call_id"].as_str().unwrap_or_default().to_string(),
                name: item["name"].as_str().unwrap_or_default().to_string(),
                arguments: super::arguments(&item["arguments"]),
            }),
            _ => {} // reasoning items and built-in tools: nothing for the loop
        }
    }
    Ok(ModelTurn {
        text,
        calls,
        usage: Usage::read(&response["usage"], "input_tokens", "output_tokens"),
        state: Some(ProviderState::new("openai", json!({"output": output}))),
        model: response["model"].as_str().map(str::to_string),
    })
}

impl Model for Responses {
    fn provider(&self) -> &str {
        "openai"
    }

    async fn next_turn(
        &self,
        conversation: &[Turn],
        tools: &[&str],
    ) -> Result<ModelTurn, ModelError> {
        let req = self
            .endpoint
            .http
            .post(format!("{}/responses", self.endpoint.base_url))
            .bearer_auth(&self.api_key)
            .json(&self.body(conversation, tools));
        super::exchange::<Events>(req, self.endpoint.streaming, &[], |_| None, parse).await
    }
}

/// Assembles a Responses event stream: the answer is the `response.completed` event's
/// response; the deltas before it are progress only.
#[derive(Debug, Default)]
pub(crate) struct Events(Option<ModelTurn>);

impl Assembler for Events {
    fn feed(&mut self, event: &str, data: &str) -> Result<bool, ModelError> {
        let e = stream::data(data)?;
        match e["type"].as_str().unwrap_or(event) {
            "response.completed" => {
                self.0 = Some(parse(&e["response"])?);
                Ok(true)
            }
            "response.failed" | "response.incomplete" => {
                let r = &e["response"];
                let why = r["error"]["message"]
                    .as_str()
                    .or_else(|| r["incomplete_details"]["reason"].as_str())
                    .unwrap_or("no reason given");
                Err(ModelError::Failed(format!(
                    "the response did not complete: {why}"
                )))
            }
            "error" => Err(ModelError::Failed(
                e["message"].as_str().unwrap_or(data).to_string(),
            )),
            _ => Ok(false),
        }
    }

    fn finish(self) -> Result<ModelTurn, ModelError> {
        self.0.ok_or_else(|| {
            ModelError::Failed("the stream ended before the response completed".into())
        })
    }
}
