//! The agent loop: take the agent's next task, show the model the task and the shared
//! workspace context, run the tools it calls, feed the results back, until it completes
//! the task or its step budget runs out. Every step is an event: state changes, tool
//! calls, messages; file edits come from the fenced writes themselves.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::context::BYTES_PER_TOKEN;
use super::tools::{TOOLS, Toolbox};
use super::{AgentNow, Model, ModelError, Turn};
use crate::events::{EventDraft, EventType};
use crate::workspace::WorkspaceRuntime;

/// How long one claim waits for a task before checking for shutdown again.
const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// Runs `agent` with `model` until `shutdown` resolves.
pub async fn run<M: Model>(
    ws: Arc<WorkspaceRuntime>,
    agent: String,
    max_steps: u32,
    model: M,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let tools = Toolbox::new(ws.clone(), &agent);
    state(&ws, &agent, "idle", model.provider(), None);
    let mut last_message = 0;
    loop {
        let task = tokio::select! {
            biased;
            () = &mut shutdown => return,
            t = ws.tasks.claim(&agent, CLAIM_WAIT) => t,
        };
        let task = match task {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(agent = %agent, error = %e, "claiming a task failed");
                return;
            }
        };
        tools.begin_task();
        state(&ws, &agent, "indexing", model.provider(), Some(task.id));
        let briefing = ws.context.brief(&ws, &agent, last_message);
        last_message = briefing.last_message;
        state(&ws, &agent, "analyzing", model.provider(), Some(task.id));
        let (ok, summary) = work(
            &ws,
            &agent,
            &tools,
            &model,
            &task,
            &briefing.text,
            max_steps,
        )
        .await;
        // Digests the agent worked from without reading the file are tokens saved.
        let saved: usize = briefing
            .digests
            .iter()
            .filter(|(path, sha, _, _)| tools.seen(path).as_deref() != Some(sha.as_str()))
            .map(|(_, _, bytes, digest)| bytes.saturating_sub(*digest) / BYTES_PER_TOKEN)
            .sum();
        if saved > 0 {
            sample(&ws, &agent, &[("tokens_saved", saved as f64)]);
        }
        if ws.tasks.state(task.id).as_deref() == Some("cancelled") {
            tracing::info!(agent = %agent, task = task.id, "stopped work on a cancelled task");
        } else if let Err(e) = ws.tasks.finish(task.id, ok, Some(summary)).await {
            tracing::warn!(agent = %agent, task = task.id, error = %e, "finishing a task failed");
        }
        state(&ws, &agent, "idle", model.provider(), None);
    }
}

fn state(ws: &WorkspaceRuntime, agent: &str, state: &str, provider: &str, task: Option<i64>) {
    ws.agents.set(
        agent,
        AgentNow {
            state: state.to_string(),
            provider: provider.to_string(),
            task,
        },
    );
    ws.events.append_nowait(EventDraft::new(
        agent,
        EventType::AgentStateChange,
        json!({"state": state, "provider": provider, "task": task}),
    ));
}

/// Works one task; returns success and a summary.
async fn work<M: Model>(
    ws: &WorkspaceRuntime,
    agent: &str,
    tools: &Toolbox,
    model: &M,
    task: &crate::tasks::Task,
    briefing: &str,
    max_steps: u32,
) -> (bool, String) {
    let instruction = if task.prompt.trim().is_empty() {
        &task.title
    } else {
        &task.prompt
    };
    let mut conversation = vec![Turn::User {
        text: format!(
            "{instruction}\n\n(workspace {}, task {})\n\n{briefing}",
            ws.spec.metadata.name, task.id
        ),
    }];
    for _ in 0..max_steps {
        // A task cancelled while running stops at the next step.
        if ws.tasks.state(task.id).as_deref() == Some("cancelled") {
            return (false, "cancelled".into());
        }
        let asked = std::time::Instant::now();
        let answer = model.next_turn(&conversation, &TOOLS).await;
        let latency_ms = asked.elapsed().as_secs_f64() * 1000.0;
        let turn = match answer {
            Ok(t) => {
                sample(
                    ws,
                    agent,
                    &[
                        ("model_latency_ms", latency_ms),
                        ("tokens_in", t.usage.input as f64),
                        ("tokens_out", t.usage.output as f64),
                    ],
                );
                t
            }
            Err(ModelError::RateLimited { retry_after_secs }) => {
                sample(ws, agent, &[("rate_limited", 1.0)]);
                state(ws, agent, "waiting", model.provider(), Some(task.id));
                tokio::time::sleep(Duration::from_secs(retry_after_secs.min(60))).await;
                continue;
            }
            Err(e) => {
                sample(ws, agent, &[("model_errors", 1.0)]);
                return (false, e.to_string());
            }
        };
        if !turn.text.is_empty() {
            ws.events.append_nowait(EventDraft::new(
                agent,
                EventType::AgentMessage,
                json!({"task": task.id, "text": turn.text}),
            ));
        }
        if turn.calls.is_empty() {
            return (true, turn.text);
        }
        conversation.push(Turn::Assistant {
            text: turn.text.clone(),
            calls: turn.calls.clone(),
        });
        for call in turn.calls {
            ws.events.append_nowait(EventDraft::new(
                agent,
                EventType::ToolCall,
                json!({"task": task.id, "tool": call.name, "arguments": call.arguments}),
            ));
            if call.name == "complete_task" {
                let ok = call.arguments["ok"].as_bool().unwrap_or(true);
                return (
                    ok,
                    call.arguments["summary"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            match call.name.as_str() {
                "write_file" | "edit_file" => {
                    state(ws, agent, "editing", model.provider(), Some(task.id))
                }
                "acquire_lock" => state(ws, agent, "waiting", model.provider(), Some(task.id)),
                _ => {}
            }
            let (ok, content) = match tools.run(&call).await {
                Ok(v) => (true, v),
                Err(why) => (false, Value::String(why)),
            };
            conversation.push(Turn::ToolResult {
                id: call.id,
                ok,
                content,
            });
        }
    }
    (false, format!("the step budget of {max_steps} ran out"))
}

/// Per-agent samples in agent_metrics (tokens, model latency, errors).
pub(crate) fn sample(ws: &WorkspaceRuntime, agent: &str, values: &[(&str, f64)]) {
    let now = crate::clock::now_ms() as i64;
    let result = ws.db.agent_metrics.write(|tx| {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO samples (agent, metric, value, ts) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (metric, value) in values {
            stmt.execute(rusqlite::params![agent, metric, value, now])?;
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!(agent, error = %e, "recording agent metrics failed");
    }
}
