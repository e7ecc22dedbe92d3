//! The agent loop: take the agent's next task, show the model the task and the shared
//! workspace context, run the tools it calls, feed the results back, until it completes
//! the task or its step budget runs out. Every step is an event: state changes, tool
//! calls, messages; file edits come from the fenced writes themselves.
//!
//! The conversation is stored turn by turn ([`Conversation`]): a task that was running when
//! the instance died is queued again at the next start, and its agent resumes it from the
//! stored turns (provider state included) instead of starting over; a call whose result
//! was not stored yet is answered before the model is asked again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::{Value, json};

use super::context::BYTES_PER_TOKEN;
use super::conversation::Conversation;
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
        tools.begin_task(task.id);
        state(&ws, &agent, "indexing", model.provider(), Some(task.id));
        let briefing = ws.context.brief(&ws, &agent, last_message);
        last_message = briefing.last_message;
        state(&ws, &agent, "analyzing", model.provider(), Some(task.id));
        let worked = std::panic::AssertUnwindSafe(work(
            &ws,
            &agent,
            &tools,
            &model,
            &task,
            &briefing.text,
            max_steps,
        ))
        .catch_unwind()
        .await;
        let (ok, summary) = worked.unwrap_or_else(|_| {
            tracing::error!(agent = %agent, task = task.id, "an agent step panicked; the task fails");
            (false, "the agent's step panicked".to_string())
        });
        // However the run ended, its leases end with it.
        tools.end_task();
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

/// One run of one task: what every step needs.
struct TaskRun<'a, M> {
    ws: &'a WorkspaceRuntime,
    agent: &'a str,
    tools: &'a Toolbox,
    model: &'a M,
    task: &'a crate::tasks::Task,
}

/// Why a task fails when its conversation cannot be stored or read.
fn unstored(e: &crate::error::StorageError) -> (bool, String) {
    (false, format!("the task's stored conversation failed: {e}"))
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
    let run = TaskRun {
        ws,
        agent,
        tools,
        model,
        task,
    };
    let mut conversation = match Conversation::load(ws.db.clone(), task.id, agent) {
        Ok(c) => c,
        Err(e) => return unstored(&e),
    };
    if conversation.is_empty() {
        let instruction = if task.prompt.trim().is_empty() {
            &task.title
        } else {
            &task.prompt
        };
        let first = Turn::User {
            text: format!(
                "{instruction}\n\n(workspace {}, task {})\n\n{briefing}",
                ws.spec.metadata.name, task.id
            ),
        };
        if let Err(e) = conversation.push(first) {
            return unstored(&e);
        }
    } else {
        tracing::info!(
            agent,
            task = task.id,
            turns = conversation.turns().len(),
            "resuming a task from its stored conversation"
        );
    }
    // The step budget is the task's, not the run's: answers stored before a restart count.
    let mut steps = conversation.answers();
    loop {
        // A task cancelled while running stops at the next step.
        if ws.tasks.state(task.id).as_deref() == Some("cancelled") {
            return (false, "cancelled".into());
        }
        let mut calls = conversation.unanswered();
        if calls.is_empty() {
            if steps >= max_steps as usize {
                return (false, format!("the step budget of {max_steps} ran out"));
            }
            steps += 1;
            let turn = match run.ask(&conversation).await {
                None => continue,
                Some(Err(why)) => return (false, why),
                Some(Ok(t)) if t.calls.is_empty() => return (true, t.text),
                Some(Ok(t)) => t,
            };
            calls = turn.calls.clone();
            let answer = Turn::Assistant {
                text: turn.text,
                calls: turn.calls,
                state: turn.state,
            };
            if let Err(e) = conversation.push(answer) {
                return unstored(&e);
            }
        }
        for call in calls {
            if let Some(end) = run.call(&mut conversation, call).await {
                return end;
            }
        }
    }
}

impl<M: Model> TaskRun<'_, M> {
    fn state(&self, state_name: &str) {
        state(
            self.ws,
            self.agent,
            state_name,
            self.model.provider(),
            Some(self.task.id),
        );
    }

    /// One model call: the answer (its text logged), `Err` with why the task fails, or
    /// `None` after a rate limit was waited out (ask again).
    async fn ask(&self, conversation: &Conversation) -> Option<Result<super::ModelTurn, String>> {
        let (ws, agent) = (self.ws, self.agent);
        let asked = std::time::Instant::now();
        let in_flight = ws.activity.model_call();
        let answer = self.model.next_turn(conversation.turns(), &TOOLS).await;
        drop(in_flight);
        let latency_ms = asked.elapsed().as_secs_f64() * 1000.0;
        let turn = match answer {
            Ok(t) => t,
            Err(ModelError::RateLimited { retry_after_secs }) => {
                sample(ws, agent, &[("rate_limited", 1.0)]);
                self.state("waiting");
                // The provider's own retry-after, not a test wait.
                tokio::time::sleep(Duration::from_secs(retry_after_secs.min(60))).await;
                return None;
            }
            Err(e) => {
                sample(ws, agent, &[("model_errors", 1.0)]);
                return Some(Err(e.to_string()));
            }
        };
        sample(
            ws,
            agent,
            &[
                ("model_latency_ms", latency_ms),
                ("tokens_in", turn.usage.input as f64),
                ("tokens_out", turn.usage.output as f64),
            ],
        );
        if !turn.text.is_empty() {
            ws.events.append_nowait(EventDraft::new(
                agent,
                EventType::AgentMessage,
                json!({"task": self.task.id, "text": turn.text}),
            ));
        }
        Some(Ok(turn))
    }

    /// Runs one tool call and stores its result; `Some` with the task's end when the call
    /// completes the task or its result cannot be stored.
    async fn call(
        &self,
        conversation: &mut Conversation,
        call: super::ToolCall,
    ) -> Option<(bool, String)> {
        self.ws.events.append_nowait(EventDraft::new(
            self.agent,
            EventType::ToolCall,
            json!({"task": self.task.id, "call": call.id, "tool": call.name, "arguments": call.arguments}),
        ));
        match call.name.as_str() {
            "complete_task" => {
                let ok = call.arguments["ok"].as_bool().unwrap_or(true);
                let summary = call.arguments["summary"].as_str().unwrap_or_default();
                return Some((ok, summary.to_string()));
            }
            "write_file" | "edit_file" => self.state("editing"),
            "acquire_lock" => self.state("waiting"),
            _ => {}
        }
        let step = conversation.step_key(&call.id);
        let (ok, content) = match self.tools.run(&call, &step).await {
            Ok(v) => (true, v),
            Err(why) => (false, Value::String(why)),
        };
        self.ws.events.append_nowait(EventDraft::new(
            self.agent,
            EventType::ToolResult,
            json!({"task": self.task.id, "call": call.id, "tool": call.name, "ok": ok,
                "result": result_excerpt(&content)}),
        ));
        let result = Turn::ToolResult {
            id: call.id,
            ok,
            content,
        };
        conversation.push(result).err().map(|e| unstored(&e))
    }
}

/// The most characters of a tool's result a `tool_result` event carries (the whole result
/// is in the task's conversation).
const RESULT_EXCERPT: usize = 300;

fn result_excerpt(content: &Value) -> String {
    let text = match content {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(RESULT_EXCERPT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
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
