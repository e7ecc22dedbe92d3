//! The `offline` provider: a small deterministic planner that needs no network. It drives
//! the same agent loop through the same tools as a real model, for the embedded default,
//! demos without API keys, and tests. It understands these task forms (the task's prompt,
//! or its title when the prompt is empty):
//!
//! * `create file PATH with TEXT`
//! * `append TEXT to PATH`
//! * `rename OLD to NEW in PATH`
//! * `tell AGENT: TEXT`
//!
//! Each file task takes the path's lock first, writes with the lock's fencing token, and
//! releases it; an unknown form completes the task as failed, naming the forms.

use serde_json::{Value, json};

use super::{Model, ModelError, ModelTurn, ToolCall, Turn};

/// The forms the planner understands, for its failure message.
pub const FORMS: &str = "create file PATH with TEXT | append TEXT to PATH | rename OLD to NEW in PATH | tell AGENT: TEXT";

/// The offline planner.
#[derive(Debug, Clone, Default)]
pub struct OfflinePlanner;

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Create {
        path: String,
        text: String,
    },
    Append {
        path: String,
        text: String,
    },
    Rename {
        path: String,
        old: String,
        new: String,
    },
    Tell {
        to: String,
        text: String,
    },
    Unknown,
}

fn parse(task: &str) -> Plan {
    let t = task.trim();
    if let Some(rest) = t.strip_prefix("create file ")
        && let Some((path, text)) = rest.split_once(" with ")
    {
        return Plan::Create {
            path: path.trim().into(),
            text: text.into(),
        };
    }
    if let Some(rest) = t.strip_prefix("append ")
        && let Some((text, path)) = rest.rsplit_once(" to ")
    {
        return Plan::Append {
            path: path.trim().into(),
            text: text.into(),
        };
    }
    if let Some(rest) = t.strip_prefix("rename ")
        && let Some((names, path)) = rest.rsplit_once(" in ")
        && let Some((old, new)) = names.split_once(" to ")
    {
        return Plan::Rename {
            path: path.trim().into(),
            old: old.trim().into(),
            new: new.trim().into(),
        };
    }
    if let Some(rest) = t.strip_prefix("tell ")
        && let Some((to, text)) = rest.split_once(':')
    {
        return Plan::Tell {
            to: to.trim().into(),
            text: text.trim().into(),
        };
    }
    Plan::Unknown
}

fn call(step: usize, name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: format!("offline-{step}"),
        name: name.into(),
        arguments,
    }
}

impl OfflinePlanner {
    /// The next tool call for the conversation so far (one per turn).
    fn next(conversation: &[Turn]) -> ToolCall {
        let task = conversation
            .iter()
            .find_map(|t| match t {
                Turn::User { text } => Some(text.lines().next().unwrap_or_default().to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let results: Vec<(bool, &Value)> = conversation
            .iter()
            .filter_map(|t| match t {
                Turn::ToolResult { ok, content, .. } => Some((*ok, content)),
                _ => None,
            })
            .collect();
        let step = results.len();
        if let Some((false, why)) = results.last() {
            return call(
                step,
                "complete_task",
                json!({"ok": false, "summary": format!("a step failed: {why}")}),
            );
        }
        let token = results.first().and_then(|(_, r)| r["token"].as_u64());
        let done = |summary: String| {
            call(
                step,
                "complete_task",
                json!({"ok": true, "summary": summary}),
            )
        };
        match parse(&task) {
            Plan::Create { path, text } => {
                under_lock(step, &path, token, 1, format!("created {path}"), |_| {
                    call(
                        step,
                        "write_file",
                        json!({"path": path, "content": text, "token": token}),
                    )
                })
            }
            Plan::Append { path, text } => {
                under_lock(step, &path, token, 2, format!("appended to {path}"), |s| {
                    if s == 1 {
                        return call(step, "read_file", json!({"path": path}));
                    }
                    let old = results[1].1["content"].as_str().unwrap_or_default();
                    let sep = if old.is_empty() || old.ends_with('\n') {
                        ""
                    } else {
                        "\n"
                    };
                    call(
                        step,
                        "write_file",
                        json!({"path": path, "content": format!("{old}{sep}{text}\n"), "token": token}),
                    )
                })
            }
            Plan::Rename { path, old, new } => under_lock(
                step,
                &path,
                token,
                1,
                format!("renamed {old} to {new} in {path}"),
                |_| {
                    call(
                        step,
                        "edit_file",
                        json!({"path": path, "search": old, "replace": new, "token": token}),
                    )
                },
            ),
            Plan::Tell { to, text } => match step {
                0 => call(step, "send_message", json!({"to": to, "text": text})),
                _ => done(format!("told {to}")),
            },
            Plan::Unknown => call(
                step,
                "complete_task",
                json!({"ok": false, "summary": format!("the offline planner understands: {FORMS}")}),
            ),
        }
    }
}

/// A file task's shape: take the path's lock (step 0), make `edits` edits (steps
/// 1..=edits, built by `edit`), release the lock, then complete the task.
fn under_lock(
    step: usize,
    path: &str,
    token: Option<u64>,
    edits: usize,
    summary: String,
    edit: impl FnOnce(usize) -> ToolCall,
) -> ToolCall {
    match step {
        0 => call(
            step,
            "acquire_lock",
            json!({"path": path, "mode": "exclusive"}),
        ),
        s if s <= edits => edit(s),
        s if s == edits + 1 => call(step, "release_lock", json!({"token": token})),
        _ => call(
            step,
            "complete_task",
            json!({"ok": true, "summary": summary}),
        ),
    }
}

impl Model for OfflinePlanner {
    fn provider(&self) -> &str {
        "offline"
    }

    async fn next_turn(
        &self,
        conversation: &[Turn],
        _tools: &[&str],
    ) -> Result<ModelTurn, ModelError> {
        let next = Self::next(conversation);
        Ok(ModelTurn {
            calls: vec![next],
            model: Some("offline-planner".into()),
            ..ModelTurn::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn understands_the_documented_forms() {
        assert_eq!(
            parse("create file a/b.md with Hello world"),
            Plan::Create {
                path: "a/b.md".into(),
                text: "Hello world".into()
            }
        );
        assert_eq!(
            parse("append - item 2 to notes.md"),
            Plan::Append {
                path: "notes.md".into(),
                text: "- item 2".into()
            }
        );
        assert_eq!(
            parse("rename foo to bar in src/lib.rs"),
            Plan::Rename {
                path: "src/lib.rs".into(),
                old: "foo".into(),
                new: "bar".into()
            }
        );
        assert_eq!(
            parse("tell gemini: review please"),
            Plan::Tell {
                to: "gemini".into(),
                text: "review please".into()
            }
        );
        assert_eq!(parse("make it better"), Plan::Unknown);
    }

    #[test]
    fn plans_one_tool_call_per_turn_carrying_the_fencing_token() {
        let mut conv = vec![Turn::User {
            text: "create file x.md with hi".into(),
        }];
        let first = OfflinePlanner::next(&conv);
        assert_eq!(first.name, "acquire_lock");
        conv.push(Turn::Assistant {
            text: String::new(),
            calls: vec![first],
            state: None,
        });
        conv.push(Turn::ToolResult {
            id: "offline-0".into(),
            ok: true,
            content: json!({"token": 42}),
        });
        let write = OfflinePlanner::next(&conv);
        assert_eq!(
            (write.name.as_str(), write.arguments["token"].as_u64()),
            ("write_file", Some(42))
        );
        conv.push(Turn::ToolResult {
            id: "offline-1".into(),
            ok: false,
            content: json!("stale fencing token"),
        });
        let end = OfflinePlanner::next(&conv);
        assert_eq!(
            (end.name.as_str(), end.arguments["ok"].as_bool()),
            ("complete_task", Some(false))
        );
    }
}
