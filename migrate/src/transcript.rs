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
}
