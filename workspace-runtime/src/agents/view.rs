//! The agents view (`GET /v1/agents`): what each agent is doing, derived on the server
//! from the facts the runtime keeps — its running and queued tasks, the leases it holds
//! and waits for, the tokens its model calls were billed, and its newest event — never
//! from what a model says about itself.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::StorageError;
use crate::events::EventType;
use crate::locks::{Lease, LockWaiter};
use crate::workspace::WorkspaceRuntime;

/// One agent, as the studio and `coditect agents` show it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    /// The agent's name.
    pub name: String,
    /// Its provider (as the spec names it).
    pub provider: String,
    /// Its role.
    pub role: String,
    /// `waiting_for_lock`, `working`, `idle`, or `stopped` (its runner is not running).
    pub state: &'static str,
    /// The task it is running.
    pub task: Option<CurrentTask>,
    /// Tasks in its queue.
    pub queued: i64,
    /// Tokens billed: input and output, summed over its model calls.
    pub tokens: Tokens,
    /// Leases it holds.
    pub locks: Vec<Lease>,
    /// Paths it waits for.
    pub waiting_for: Vec<LockWaiter>,
    /// Its newest event since the instance started.
    pub last_event: Option<LastEvent>,
}

/// The task an agent runs.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentTask {
    /// Task id.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// When it started (unix ms).
    pub started_at: Option<i64>,
}

/// Tokens billed to an agent.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tokens {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

/// An agent's newest event.
#[derive(Debug, Clone, Serialize)]
pub struct LastEvent {
    /// Its seq.
    pub seq: u64,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When.
    pub ts: String,
}

/// Every agent of the workspace, in spec order.
///
/// # Errors
/// When the task or metrics database cannot be read.
pub fn agents(ws: &WorkspaceRuntime) -> Result<Vec<AgentView>, StorageError> {
    let running: HashMap<String, CurrentTask> = ws.db.sessions.read(|c| {
        let mut stmt =
            c.prepare("SELECT agent, id, title, started_at FROM tasks WHERE state = 'running'")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                CurrentTask {
                    id: r.get(1)?,
                    title: r.get(2)?,
                    started_at: r.get(3)?,
                },
            ))
        })?;
        rows.collect()
    })?;
    let queued: HashMap<String, i64> = ws.db.sessions.read(|c| {
        let mut stmt =
            c.prepare("SELECT agent, count(*) FROM tasks WHERE state = 'queued' GROUP BY agent")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })?;
    let mut tokens: HashMap<String, Tokens> = HashMap::new();
    ws.db.agent_metrics.read(|c| {
        let mut stmt = c.prepare(
            "SELECT agent, metric, sum(value) FROM samples
             WHERE metric IN ('tokens_in', 'tokens_out') GROUP BY agent, metric",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (agent, metric, sum): (String, String, f64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let t = tokens.entry(agent).or_default();
            let n = sum.max(0.0).round() as u64;
            if metric == "tokens_in" {
                t.input = n;
            } else {
                t.output = n;
            }
        }
        Ok(())
    })?;
    let leases = ws.locks.list();
    let waiters = ws.locks.waiters();
    Ok(ws
        .spec
        .spec
        .agents
        .iter()
        .map(|a| {
            let locks: Vec<Lease> = leases
                .iter()
                .filter(|l| l.holder == a.name)
                .cloned()
                .collect();
            let waiting_for: Vec<LockWaiter> = waiters
                .iter()
                .filter(|w| w.holder == a.name)
                .cloned()
                .collect();
            let task = running.get(&a.name).cloned();
            let state = if !waiting_for.is_empty() {
                "waiting_for_lock"
            } else if task.is_some() {
                "working"
            } else if ws.agents.get(&a.name).is_none() {
                "stopped"
            } else {
                "idle"
            };
            AgentView {
                name: a.name.clone(),
                provider: a.provider.as_str().to_string(),
                role: a.role.as_str().to_string(),
                state,
                task,
                queued: queued.get(&a.name).copied().unwrap_or(0),
                tokens: tokens.get(&a.name).copied().unwrap_or_default(),
                locks,
                waiting_for,
                last_event: ws.events.last_of(&a.name).map(|e| LastEvent {
                    seq: e.seq,
                    kind: e.kind,
                    ts: e.ts.clone(),
                }),
            }
        })
        .collect())
}
