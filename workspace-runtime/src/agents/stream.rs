//! Streamed answers: every provider that streams does so as server-sent events, each
//! provider with its own event shapes. This module reads the events off the response and
//! hands them to the provider's [`Assembler`], which builds the same [`ModelTurn`] a
//! non-streamed answer gives, so the agent loop never knows the difference.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;

use super::{ModelError, ModelTurn, ToolCall, Usage};

/// Builds a turn from a provider's stream of events.
pub(crate) trait Assembler {
    /// Takes one event (`event` is `message` when the server named none); returns `true`
    /// once the answer is complete.
    ///
    /// # Errors
    /// When the event reports an error, or cannot be read.
    fn feed(&mut self, event: &str, data: &str) -> Result<bool, ModelError>;

    /// The turn, once the stream has ended.
    ///
    /// # Errors
    /// When the stream ended before the answer was complete.
    fn finish(self) -> Result<ModelTurn, ModelError>;
}

/// Reads `resp` as server-sent events into `assembler`.
///
/// # Errors
/// When the connection breaks, or the provider reports an error inside the stream.
pub(crate) async fn assemble<A: Assembler>(
    resp: reqwest::Response,
    mut assembler: A,
) -> Result<ModelTurn, ModelError> {
    let mut events = resp.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| ModelError::Failed(format!("the stream broke: {e}")))?;
        if assembler.feed(&event.event, &event.data)? {
            break;
        }
    }
    assembler.finish()
}

/// Parses one event's data as JSON.
///
/// # Errors
/// When it is not JSON.
pub(crate) fn data(data: &str) -> Result<serde_json::Value, ModelError> {
    serde_json::from_str(data)
        .map_err(|e| ModelError::Failed(format!("a streamed event is not JSON ({e}): {data}")))
}

/// Text and tool calls arriving in pieces: text deltas appended, each call's arguments
/// appended as JSON text until the call is complete (Chat Completions streams calls this
/// way).
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    /// The text so far.
    pub text: String,
    /// Calls by position: id, name, argument text.
    pub calls: Vec<(String, String, String)>,
    /// Tokens used.
    pub usage: Usage,
    /// Whether the provider said the answer is complete.
    pub complete: bool,
}

impl Pieces {
    /// The call at `index`, created when first seen.
    pub fn call(&mut self, index: usize) -> &mut (String, String, String) {
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, Default::default);
        }
        &mut self.calls[index]
    }

    /// The turn.
    ///
    /// # Errors
    /// When the stream ended before the provider said the answer was complete.
    pub fn turn(self) -> Result<ModelTurn, ModelError> {
        if !self.complete {
            return Err(ModelError::Failed(
                "the stream ended before the answer was complete".into(),
            ));
        }
        let calls = self
            .calls
            .into_iter()
            .filter(|(_, name, _)| !name.is_empty())
            .map(|(id, name, args)| ToolCall {
                id,
                name,
                arguments: super::arguments(&serde_json::Value::String(args)),
            })
            .collect();
        Ok(ModelTurn {
            text: self.text,
            calls,
            usage: self.usage,
            ..ModelTurn::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Assembler;
    use crate::agents::ModelError;
    use crate::agents::{anthropic, gemini, openai, openai_compat};

    #[test]
    fn a_stream_cut_before_its_end_is_a_failure_not_a_short_answer() {
        let mut chat = openai_compat::Chunks::default();
        let piece = r#"{"choices":[{"index":0,"delta":{"content":"Hal"}}]}"#;
        assert!(!chat.feed("message", piece).unwrap());
        assert!(matches!(chat.finish(), Err(ModelError::Failed(_))));

        let mut claude = anthropic::Events::default();
        let start = r#"{"type":"message_start","message":{"usage":{"input_tokens":3}}}"#;
        claude.feed("message_start", start).unwrap();
        assert!(claude.finish().is_err());

        assert!(gemini::Chunks::default().finish().is_err());
        assert!(openai::Events::default().finish().is_err());
    }

    #[test]
    fn errors_inside_a_stream_are_reported_as_the_provider_meant_them() {
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            anthropic::Events::default().feed("error", overloaded),
            Err(ModelError::RateLimited { .. })
        ));
        let failed = r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"The model crashed"}}}"#;
        match openai::Events::default().feed("response.failed", failed) {
            Err(ModelError::Failed(why)) => assert!(why.contains("The model crashed"), "{why}"),
            other => panic!("{other:?}"),
        }
        let chat_error = r#"{"error":{"message":"context length exceeded"}}"#;
        assert!(
            openai_compat::Chunks::default()
                .feed("message", chat_error)
                .is_err()
        );
    }
}
