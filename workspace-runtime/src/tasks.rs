//! Task queues: one per agent, persisted in the sessions database, served by priority
//! (higher first) then age (older first). States: queued → running → done | failed, and
//! cancelled from queued or running. A task's submission, start and end are events; the
//! API answers only once that event is durable.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock;
use crate::db::Databases;
use crate::error::TaskError;
use crate::events::{EventDraft, EventLog, EventType};
use crate::metrics::{AgentLabel, Metrics};

/// A task as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Increasing id.
    pub id: i64,
    /// The agent whose queue holds it.
    pub agent: String,
    /// Short title.
    pub title: String,
    /// What to do.
    pub prompt: String,
    /// Higher runs first.
    pub priority: i64,
    /// queued, running, done, failed or cancelled.
    pub state: String,
    /// Who submitted it.
    pub submitted_by: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When it started running.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// The outcome, as the agent reported it.
    pub result: Option<String>,
}

/// A submission.
#[derive(Debug, Clone, Deserialize)]
pub struct SubmitTask {
    /// The agent to run it; when absent, the least busy agent holding `role` (or any).
    #[serde(default)]
    pub agent: Option<String>,
    /// Route to the least busy agent holding this role.
    #[serde(default)]
    pub role: Option<String>,
    /// Short title.
    pub title: String,
    /// What to do.
    #[serde(default)]
    pub prompt: String,
    /// Higher runs first; 0 by default.
    #[serde(default)]
    pub priority: i64,
    /// Who submits it.
    #[serde(default = "default_submitter")]
    pub submitted_by: String,
}

fn default_submitter() -> String {
    "api".to_string()
}

const COLUMNS: &str = "id, agent, title, prompt, priority, state, submitted_by, created_at, started_at, finished_at, result";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        agent: r.get(1)?,
        title: r.get(2)?,
        prompt: r.get(3)?,
        priority: r.get(4)?,
        state: r.get(5)?,
        submitted_by: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        result: r.get(10)?,
    })
}

/// The queues of every agent of a workspace.
#[derive(Debug)]
pub struct TaskQueues {
    db: Arc<Databases>,
    events: EventLog,
    metrics: Arc<Metrics>,
    agents: BTreeSet<String>,
    roles: HashMap<String, String>,
    wakeups: HashMap<String, Arc<Notify>>,
    submitted: Mutex<HashMap<i64, Instant>>,
}

impl TaskQueues {
    /// Queues for the named agents.
    pub fn new(
        db: Arc<Databases>,
        events: EventLog,
        metrics: Arc<Metrics>,
        agents: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let roles: HashMap<String, String> = agents.into_iter().collect();
        let agents: BTreeSet<String> = roles.keys().cloned().collect();
        let wakeups = agents
            .iter()
            .map(|a| (a.clone(), Arc::new(Notify::new())))
            .collect();
        let queues = TaskQueues {
            db,
            events,
            metrics,
            agents,
            roles,
            wakeups,
            submitted: Mutex::new(HashMap::new()),
        };
        // A task that was running when the instance stopped was interrupted: queue it again.
        let requeued = queues
            .db
            .sessions
            .write(|tx| {
                tx.execute(
                    "UPDATE tasks SET state = 'queued', started_at = NULL WHERE state = 'running'",
                    [],
                )
            })
            .unwrap_or(0);
        if requeued > 0 {
            tracing::info!(requeued, "queued interrupted tasks again");
        }
        for agent in &queues.agents {
            queues.update_depth(agent);
        }
        queues
    }

    fn check_agent(&self, agent: &str) -> Result<&Arc<Notify>, TaskError> {
        self.wakeups
            .get(agent)
            .ok_or_else(|| TaskError::UnknownAgent(agent.to_string()))
    }

    /// Picks the agent for a submission: the one named; else the least busy (fewest tasks
    /// queued or running) holding the role asked for; else the least busy of all. Ties go
    /// to the first name. Returns the agent and how it was chosen.
    ///
    /// # Errors
    /// [`TaskError::UnknownAgent`] when no agent fits.
    fn route(&self, s: &SubmitTask) -> Result<(String, &'static str), TaskError> {
        if let Some(agent) = &s.agent {
            self.check_agent(agent)?;
            return Ok((agent.clone(), "explicit"));
        }
        let candidates: Vec<&String> = self
            .agents
            .iter()
            .filter(|a| {
                s.role
                    .as_ref()
                    .is_none_or(|r| self.roles.get(*a) == Some(r))
            })
            .collect();
        let busy: HashMap<String, i64> = self
            .db
            .sessions
            .read(|c| {
                let mut stmt = c.prepare("SELECT agent, count(*) FROM tasks WHERE state IN ('queued', 'running') GROUP BY agent")?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
            })
            .unwrap_or_default();
        let chosen = candidates
            .into_iter()
            .min_by_key(|a| busy.get(*a).copied().unwrap_or(0))
            .ok_or_else(|| TaskError::NoAgentForRole(s.role.clone().unwrap_or_default()))?;
        Ok((
            chosen.clone(),
            if s.role.is_some() {
                "role"
            } else {
                "least-busy"
            },
        ))
    }

    /// Queues a task; returns it once its `task_queued` event is durable.
    ///
    /// # Errors
    /// [`TaskError::UnknownAgent`]; storage failures.
    pub async fn submit(&self, s: SubmitTask) -> Result<Task, TaskError> {
        let (agent, routed) = self.route(&s)?;
        let s = SubmitTask {
            agent: Some(agent.clone()),
            ..s
        };
        let wake = self.check_agent(&agent)?.clone();
        let now = clock::now_ms() as i64;
        let task = self.db.sessions.write(|tx| {
            tx.query_row(
                &format!("INSERT INTO tasks (agent, title, prompt, priority, state, submitted_by, created_at) VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6) RETURNING {COLUMNS}"),
                rusqlite::params![agent, s.title, s.prompt, s.priority, s.submitted_by, now],
                row,
            )
        })?;
        self.submitted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.id, Instant::now());
        self.events
            .append(EventDraft::new(&s.submitted_by, EventType::TaskQueued, json!({"task": task.id, "agent": task.agent, "title": task.title, "priority": task.priority, "routed": routed})))
            .await?;
        self.update_depth(&task.agent);
        wake.notify_one();
        Ok(task)
    }

    /// Takes the agent's next task (highest priority, then oldest) and marks it running,
    /// waiting up to `wait` for one to arrive. `None` when none came.
    ///
    /// # Errors
    /// [`TaskError::UnknownAgent`]; storage failures.
    pub async fn claim(&self, agent: &str, wait: Duration) -> Result<Option<Task>, TaskError> {
        let wake = self.check_agent(agent)?.clone();
        let deadline = Instant::now() + wait;
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(task) = self.try_claim(agent).await? {
                return Ok(Some(task));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn try_claim(&self, agent: &str) -> Result<Option<Task>, TaskError> {
        let now = clock::now_ms() as i64;
        let task = self.db.sessions.write(|tx| {
            tx.query_row(
                &format!("UPDATE tasks SET state = 'running', started_at = ?2 WHERE id = (SELECT id FROM tasks WHERE agent = ?1 AND state = 'queued' ORDER BY priority DESC, id LIMIT 1) RETURNING {COLUMNS}"),
                rusqlite::params![agent, now],
                row,
            )
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        })?;
        let Some(task) = task else { return Ok(None) };
        let submitted = self
            .submitted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task.id);
        self.events
            .append(EventDraft::new(
                agent,
                EventType::TaskStarted,
                json!({"task": task.id, "title": task.title}),
            ))
            .await?;
        let latency = submitted.map_or_else(
            || Duration::from_millis(u64::try_from(now - task.created_at).unwrap_or(0)),
            |t| t.elapsed(),
        );
        self.metrics.task_start.observe(latency.as_secs_f64());
        self.update_depth(agent);
        Ok(Some(task))
    }

    /// Ends a running task as done (`ok`) or failed.
    ///
    /// # Errors
    /// [`TaskError::NotFound`]; [`TaskError::InvalidTransition`] unless it is running.
    pub async fn finish(
        &self,
        id: i64,
        ok: bool,
        result: Option<String>,
    ) -> Result<Task, TaskError> {
        let state = if ok { "done" } else { "failed" };
        self.transition(id, &["running"], state, "finish", result)
            .await
    }

    /// Cancels a queued or running task.
    ///
    /// # Errors
    /// [`TaskError::NotFound`]; [`TaskError::InvalidTransition`] when it already ended.
    pub async fn cancel(&self, id: i64) -> Result<Task, TaskError> {
        self.transition(id, &["queued", "running"], "cancelled", "cancel", None)
            .await
    }

    async fn transition(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        action: &'static str,
        result: Option<String>,
    ) -> Result<Task, TaskError> {
        let now = clock::now_ms() as i64;
        let task = self.db.sessions.write(|tx| {
            let current = tx.query_row(&format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"), [id], row).map(Some).or_else(|e| {
                if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) }
            })?;
            let Some(current) = current else { return Ok(Err(TaskError::NotFound(id))) };
            if !from.contains(&current.state.as_str()) {
                return Ok(Err(TaskError::InvalidTransition { id, state: current.state, action }));
            }
            let updated = tx.query_row(
                &format!("UPDATE tasks SET state = ?2, finished_at = ?3, result = ?4 WHERE id = ?1 RETURNING {COLUMNS}"),
                rusqlite::params![id, to, now, result],
                row,
            )?;
            Ok(Ok(updated))
        })??;
        self.events
            .append(EventDraft::new(
                &task.agent,
                EventType::TaskFinished,
                json!({"task": id, "state": to}),
            ))
            .await?;
        self.update_depth(&task.agent);
        Ok(task)
    }

    /// Tasks, newest first, optionally of one agent and/or state, older than `before`.
    ///
    /// # Errors
    /// Storage failures.
    pub fn list(
        &self,
        agent: Option<&str>,
        state: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Task>, TaskError> {
        Ok(self.db.sessions.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tasks WHERE (?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
            ))?;
            stmt.query_map(rusqlite::params![agent, state, before, limit], row)?.collect()
        })?)
    }

    /// A task's state (`queued`, `running`, `done`, `failed`, `cancelled`).
    pub fn state(&self, id: i64) -> Option<String> {
        self.db
            .sessions
            .read(|c| c.query_row("SELECT state FROM tasks WHERE id = ?1", [id], |r| r.get(0)))
            .ok()
    }

    /// Queued tasks of an agent.
    pub fn depth(&self, agent: &str) -> i64 {
        self.db
            .sessions
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM tasks WHERE agent = ?1 AND state = 'queued'",
                    [agent],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    }

    fn update_depth(&self, agent: &str) {
        let depth = self.depth(agent);
        self.metrics
            .queue_depth
            .get_or_create(&AgentLabel {
                agent: agent.to_string(),
            })
            .set(depth);
    }

    /// Tasks queued or running across all agents (for idleness).
    pub fn active(&self) -> i64 {
        self.db
            .sessions
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM tasks WHERE state IN ('queued', 'running')",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    }
}
