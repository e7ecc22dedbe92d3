//! The providers' streaming wire formats, as their APIs send them: each turns a whole
//! (non-streamed) answer into the server-sent events the streamed call would have given,
//! so a test server answers both ways from one script.

use axum::response::Response;
use serde_json::{Value, json};

use super::{halves, sse};

/// A `chat.completion` streamed as the API streams it: role first, text and each call's
/// arguments in pieces, the finish reason, a usage chunk, then `[DONE]`.
pub fn chat_chunks(answer: &Value) -> Response {
    let chunk = |choices: Value| {
        let c = json!({"id": answer["id"], "object": "chat.completion.chunk", "model": answer["model"], "choices": choices});
        (None, c.to_string())
    };
    let message = &answer["choices"][0]["message"];
    let mut events = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    )];
    // Thinking models stream their reasoning before the answer.
    for piece in halves(message["reasoning_content"].as_str().unwrap_or_default()) {
        events.push(chunk(
            json!([{"index": 0, "delta": {"reasoning_content": piece}, "finish_reason": null}]),
        ));
    }
    for piece in halves(message["content"].as_str().unwrap_or_default()) {
        events.push(chunk(
            json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
        ));
    }
    for (i, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        events.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
        ]}}])));
        for piece in halves(call["function"]["arguments"].as_str().unwrap()) {
            events.push(chunk(json!([{"index": 0, "delta": {"tool_calls": [
                {"index": i, "function": {"arguments": piece}}
            ]}}])));
        }
    }
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": answer["choices"][0]["finish_reason"]}]),
    ));
    let mut usage = chunk(json!([]));
    let mut with_usage: Value = serde_json::from_str(&usage.1).unwrap();
    with_usage["usage"] = answer["usage"].clone();
    usage.1 = with_usage.to_string();
    events.push(usage);
    events.push((None, "[DONE]".into()));
    sse(events)
}

/// A message streamed as the API streams it: `message_start`, each block started, its
/// text or input JSON in pieces, stopped; `message_delta` with the stop reason and output
/// tokens; `message_stop`; a `ping` along the way.
pub fn anthropic_events(answer: &Value) -> Response {
    let ev = |name: &'static str, data: Value| (Some(name), data.to_string());
    let mut start = answer.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let mut events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": start}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    for (i, block) in answer["content"].as_array().unwrap().iter().enumerate() {
        if block["type"] == "thinking" {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "thinking", "thinking": ""}})));
            for piece in halves(block["thinking"].as_str().unwrap()) {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": piece}})));
            }
            events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": block["signature"]}})));
        } else if block["type"] == "redacted_thinking" {
            // Redacted thinking arrives whole in its start event.
            events.push(ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block": block}),
            ));
        } else if block["type"] == "text" {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})));
            for piece in halves(block["text"].as_str().unwrap()) {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": piece}})));
            }
        } else {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})));
            for piece in halves(&block["input"].to_string()) {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": piece}})));
            }
        }
        events.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    events.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": answer["stop_reason"], "stop_sequence": null}, "usage": {"output_tokens": answer["usage"]["output_tokens"]}})));
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    sse(events)
}

/// An answer streamed as the API streams it: one `GenerateContentResponse` per piece
/// (text cut in two, each call whole), the last with the finish reason and usage.
pub fn gemini_chunks(answer: &Value) -> Response {
    let candidate = &answer["candidates"][0];
    let mut pieces: Vec<Value> = Vec::new();
    for part in candidate["content"]["parts"].as_array().unwrap() {
        match part["text"].as_str() {
            Some(text) => {
                // Text in pieces, each keeping the part's other fields (`thought`); a
                // signature rides on the last piece only.
                let texts = halves(text);
                let last = texts.len().saturating_sub(1);
                for (i, t) in texts.into_iter().enumerate() {
                    let mut piece = part.clone();
                    piece["text"] = json!(t);
                    if i != last
                        && let Some(p) = piece.as_object_mut()
                    {
                        p.remove("thoughtSignature");
                    }
                    pieces.push(piece);
                }
            }
            None => pieces.push(part.clone()),
        }
    }
    let last = pieces.len() - 1;
    let events = pieces
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let mut chunk = json!({"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}], "modelVersion": answer["modelVersion"]});
            if i == last {
                chunk["candidates"][0]["finishReason"] = candidate["finishReason"].clone();
                chunk["usageMetadata"] = answer["usageMetadata"].clone();
            }
            (None, chunk.to_string())
        })
        .collect();
    sse(events)
}

/// A response streamed as the API streams it: `response.created`, each output item added,
/// its text or arguments in deltas, done; then `response.completed` with the whole response.
pub fn responses_events(answer: &Value) -> Response {
    let mut seq = 0;
    let mut ev = |name: &'static str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        (Some(name), data.to_string())
    };
    let mut created = answer.clone();
    created["status"] = json!("in_progress");
    created["output"] = json!([]);
    let mut events = vec![ev("response.created", json!({"response": created}))];
    for (i, item) in answer["output"].as_array().unwrap().iter().enumerate() {
        // An item's encrypted content may be incomplete when it is added; only the done
        // event and the completed response carry it whole.
        let mut added = item.clone();
        if added["type"] == "reasoning" {
            added["encrypted_content"] = Value::Null;
        }
        events.push(ev(
            "response.output_item.added",
            json!({"output_index": i, "item": added}),
        ));
        if item["type"] == "function_call" {
            for piece in halves(item["arguments"].as_str().unwrap()) {
                events.push(ev(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item["id"], "output_index": i, "delta": piece}),
                ));
            }
            events.push(ev(
                "response.function_call_arguments.done",
                json!({"item_id": item["id"], "output_index": i, "arguments": item["arguments"]}),
            ));
        }
        if item["type"] == "message" {
            let text = item["content"][0]["text"].as_str().unwrap();
            for piece in halves(text) {
                events.push(ev("response.output_text.delta", json!({"item_id": item["id"], "output_index": i, "content_index": 0, "delta": piece})));
            }
        }
        events.push(ev(
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        ));
    }
    events.push(ev("response.completed", json!({"response": answer})));
    sse(events)
}
