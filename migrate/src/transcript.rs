//! A v1 transcript line as a v2 event: `user` and `assistant` lines become
//! `agent_message`, `tool` lines `tool_call`, each carrying its v1 provenance — the
//! source id `v1:{user}:{sandbox}:{line}` (an import that meets it again skips it, so a
//! re-run never duplicates) and the original time.

use coditect_runtime::events::{EventDraft, EventType};
use serde_json::json;

use crate::export::TranscriptLine;

/// The id an imported event carries: the same line always gives the same id.
pub fn source_id(user: &str, sandbox: &str, line: usize) -> String {
    format!("v1:{user}:{sandbox}:{line}")
}

/// The event for one transcript line of `agent`'s sandbox.
pub fn event(
    user: &str,
    sandbox: &str,
    agent: &str,
    line: usize,
    l: &TranscriptLine,
) -> EventDraft {
    let v1 = json!({"source": source_id(user, sandbox, line), "ts": l.ts, "sandbox": sandbox, "role": l.role});
    let (kind, data) = match l.role.as_str() {
        "tool" => (
            EventType::ToolCall,
            json!({"tool": l.tool, "path": l.path, "result": l.text, "v1": v1}),
        ),
        _ => (
            EventType::AgentMessage,
            json!({"from": l.role, "text": l.text, "path": l.path, "v1": v1}),
        ),
    };
    EventDraft::new(agent, kind, data)
}

/// One sandbox's transcript, as read.
#[derive(Debug, Clone)]
pub struct SandboxTranscript {
    /// The sandbox.
    pub sandbox: String,
    /// Its agent.
    pub agent: String,
    /// Its lines, numbered from 1.
    pub lines: Vec<(usize, TranscriptLine)>,
}

/// The body of a workspace's `POST /v1/events/import` for a user's transcripts: every
/// sandbox's lines merged in time order (a line's place in its file breaks ties), each
/// with its source id, so sending it again imports nothing twice.
pub fn import_body(user: &str, transcripts: &[SandboxTranscript]) -> serde_json::Value {
    let mut all: Vec<(jiff::Timestamp, &SandboxTranscript, usize, &TranscriptLine)> = transcripts
        .iter()
        .flat_map(|t| {
            t.lines
                .iter()
                .filter_map(move |(n, l)| Some((l.ts.parse::<jiff::Timestamp>().ok()?, t, *n, l)))
        })
        .collect();
    all.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.sandbox.cmp(&b.1.sandbox))
            .then_with(|| a.2.cmp(&b.2))
    });
    let events: Vec<serde_json::Value> = all
        .into_iter()
        .map(|(_, t, n, l)| {
            let e = event(user, &t.sandbox, &t.agent, n, l);
            json!({"source": source_id(user, &t.sandbox, n), "agent": e.agent, "type": e.kind, "data": e.data})
        })
        .collect();
    json!({ "events": events })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lines_keep_their_provenance_and_time() {
        let l = TranscriptLine {
            ts: "2026-03-01T10:00:00Z".into(),
            role: "tool".into(),
            text: "ok".into(),
            tool: Some("write_file".into()),
            path: Some("src/a.rs".into()),
        };
        let e = event("u1", "s1", "claude", 7, &l);
        assert_eq!(e.kind, EventType::ToolCall);
        assert_eq!(e.agent, "claude");
        assert_eq!(e.data["v1"]["source"], "v1:u1:s1:7");
        assert_eq!(e.data["v1"]["ts"], "2026-03-01T10:00:00Z");
        assert_eq!(e.data["tool"], "write_file");
    }

    #[test]
    fn a_users_transcripts_are_imported_in_time_order() {
        let line = |ts: &str, text: &str| TranscriptLine {
            ts: ts.into(),
            role: "assistant".into(),
            text: text.into(),
            tool: None,
            path: None,
        };
        let body = import_body(
            "u1",
            &[
                SandboxTranscript {
                    sandbox: "a".into(),
                    agent: "claude".into(),
                    lines: vec![
                        (1, line("2026-01-01T10:00:02Z", "third")),
                        (2, line("2026-01-01T10:00:00Z", "first")),
                    ],
                },
                SandboxTranscript {
                    sandbox: "b".into(),
                    agent: "kimi".into(),
                    lines: vec![(1, line("2026-01-01T10:00:01Z", "second"))],
                },
            ],
        );
        let texts: Vec<&str> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, vec!["first", "second", "third"]);
        assert_eq!(body["events"][1]["source"], "v1:u1:b:1");
        assert_eq!(body["events"][1]["agent"], "kimi");
        assert_eq!(body["events"][1]["type"], "agent_message");
    }
}
