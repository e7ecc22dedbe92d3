//! The tools an agent may call, run against its workspace. Every file write goes through
//! the lock table: with the fencing token of a lease the agent holds, or, when it names
//! none, under a lease taken and released around the write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::ToolCall;
use crate::bus::SendMessage;
use crate::locks::{LockMode, LockRequest};
use crate::workspace::WorkspaceRuntime;

/// Tool names, as models see them.
pub const TOOLS: [&str; 9] = [
    "list_files",
    "read_file",
    "write_file",
    "edit_file",
    "search",
    "send_message",
    "acquire_lock",
    "release_lock",
    "complete_task",
];

/// Runs tools for one agent.
#[derive(Debug)]
pub struct Toolbox {
    ws: Arc<WorkspaceRuntime>,
    agent: String,
    /// Files the agent has in its current task's conversation: path → sha256.
    seen: Mutex<HashMap<String, String>>,
    /// The run being worked: the leases the tools take belong to it.
    run: Mutex<Option<Run>>,
}

/// One run of a task: the task, and the leases its tools took (kept in `run_locks` too,
/// so a run resumed after a restart knows them).
#[derive(Debug)]
struct Run {
    task: i64,
    tokens: Vec<u64>,
}

fn arg<'a>(call: &'a ToolCall, name: &str) -> Result<&'a str, String> {
    call.arguments[name]
        .as_str()
        .ok_or_else(|| format!("{}: missing string argument {name:?}", call.name))
}

impl Toolbox {
    /// Tools for `agent` in `ws`.
    pub fn new(ws: Arc<WorkspaceRuntime>, agent: &str) -> Self {
        Toolbox {
            ws,
            agent: agent.to_string(),
            seen: Mutex::new(HashMap::new()),
            run: Mutex::new(None),
        }
    }

    /// Starts (or resumes) the run of `task`: the agent's conversation holds no file yet;
    /// the leases an earlier run of the task took are its own.
    pub fn begin_task(&self, task: i64) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.clear();
        }
        let tokens = self
            .ws
            .db
            .workspace_idx
            .read(|c| {
                let mut stmt = c.prepare_cached("SELECT token FROM run_locks WHERE task = ?1")?;
                let rows = stmt.query_map([task], |r| r.get::<_, i64>(0))?;
                rows.collect::<Result<Vec<i64>, _>>()
            })
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| u64::try_from(t).ok())
            .collect();
        if let Ok(mut run) = self.run.lock() {
            *run = Some(Run { task, tokens });
        }
    }

    /// Ends the run of the current task, however it ended (done, failed, cancelled, out of
    /// budget, panicked): every lease it still holds is released at once, so the next
    /// tasks on those paths do not wait out the lease.
    pub fn end_task(&self) {
        let Some(run) = self.run.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        for token in run.tokens {
            // Already released or expired: nothing to do.
            let _ = self.ws.locks.release(token);
        }
        let forget = self
            .ws
            .db
            .workspace_idx
            .write(|tx| tx.execute("DELETE FROM run_locks WHERE task = ?1", [run.task]));
        if let Err(e) = forget {
            tracing::warn!(agent = %self.agent, task = run.task, error = %e, "forgetting a run's leases failed");
        }
    }

    /// A live lease on `path` this agent's run of the current task already holds (taken
    /// before a restart, say): a re-run never waits on its own lease.
    fn own_lease(&self, path: &str) -> Option<crate::locks::Lease> {
        let (path, _) = crate::locks::normalize(path).ok()?;
        let tokens = self.run.lock().ok()?.as_ref()?.tokens.clone();
        if tokens.is_empty() {
            return None;
        }
        let lease = self
            .ws
            .locks
            .list()
            .into_iter()
            .find(|l| tokens.contains(&l.token) && l.path == path && l.holder == self.agent)?;
        self.ws.locks.renew(lease.token, None).ok()
    }

    /// Records that the current task's run holds `token`.
    fn keep(&self, token: u64) {
        let Some(task) = self.run.lock().ok().and_then(|mut r| {
            let run = r.as_mut()?;
            run.tokens.push(token);
            Some(run.task)
        }) else {
            return;
        };
        let kept = self.ws.db.workspace_idx.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO run_locks (task, token) VALUES (?1, ?2)",
                rusqlite::params![task, token as i64],
            )
        });
        if let Err(e) = kept {
            tracing::warn!(agent = %self.agent, task, token, error = %e, "recording a run's lease failed");
        }
    }

    /// What the step `step` wrote, if it already did (before a restart).
    fn written_by(&self, step: &str) -> Option<Value> {
        self.ws
            .db
            .artifacts
            .read(|c| {
                c.query_row(
                    "SELECT path, sha256, size, fencing_token FROM artifacts WHERE step = ?1 ORDER BY id DESC LIMIT 1",
                    [step],
                    |r| {
                        Ok(json!({"path": r.get::<_, String>(0)?, "sha256": r.get::<_, String>(1)?,
                            "size": r.get::<_, i64>(2)?, "token": r.get::<_, i64>(3)?,
                            "note": "this step's write was already done before the workspace restarted; it was not repeated"}))
                    },
                )
            })
            .ok()
    }

    /// The sha256 of `path` as the agent has it in this task's conversation.
    pub fn seen(&self, path: &str) -> Option<String> {
        self.seen.lock().ok()?.get(path).cloned()
    }

    fn saw(&self, path: &str, sha256: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(path.to_string(), sha256.to_string());
        }
    }

    /// Runs one call (not `complete_task`, which the loop handles): `Ok(result)` or
    /// `Err(reason)`, both fed back to the model. `step` names the call within its task
    /// (task, turn, call id): a write already made by that step is not made again.
    pub async fn run(&self, call: &ToolCall, step: &str) -> Result<Value, String> {
        let ws = &self.ws;
        match call.name.as_str() {
            "acquire_lock" => {
                let mode = if call.arguments["mode"] == "shared" {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                let path = arg(call, "path")?;
                if let Some(lease) = self.own_lease(path) {
                    return serde_json::to_value(lease).map_err(|e| e.to_string());
                }
                let req = LockRequest {
                    path: path.into(),
                    mode,
                    holder: self.agent.clone(),
                    ttl_ms: None,
                    wait_ms: None,
                };
                let lease = ws.locks.acquire(req).await.map_err(|e| e.to_string())?;
                self.keep(lease.token);
                serde_json::to_value(lease).map_err(|e| e.to_string())
            }
            "release_lock" => {
                let token = call.arguments["token"]
                    .as_u64()
                    .ok_or("release_lock: missing token")?;
                ws.locks.release(token).map_err(|e| e.to_string())?;
                Ok(json!({"released": token}))
            }
            "read_file" => {
                use sha2::Digest as _;
                let path = arg(call, "path")?;
                let bytes = ws.files.read(path).await.map_err(|e| e.to_string())?;
                let sha = hex::encode(sha2::Sha256::digest(&bytes));
                if self.seen(path).as_deref() == Some(sha.as_str()) {
                    let saved = bytes.len() / super::context::BYTES_PER_TOKEN;
                    super::runner::sample(ws, &self.agent, &[("tokens_saved", saved as f64)]);
                    return Ok(json!({"unchanged": true, "sha256": sha,
                        "note": "unchanged since you last read or wrote it in this task; its content is above"}));
                }
                self.saw(path, &sha);
                ws.context.note_read(&self.agent, path, &bytes);
                Ok(json!({"content": String::from_utf8_lossy(&bytes)}))
            }
            "write_file" => {
                self.write(
                    arg(call, "path")?,
                    arg(call, "content")?.as_bytes(),
                    call.arguments["token"].as_u64(),
                    step,
                )
                .await
            }
            "edit_file" => {
                if let Some(done) = self.written_by(step) {
                    return Ok(done);
                }
                let path = arg(call, "path")?;
                let (search, replace) = (arg(call, "search")?, arg(call, "replace")?);
                let bytes = ws.files.read(path).await.map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&bytes);
                if !text.contains(search) {
                    return Err(format!("edit_file: {search:?} does not occur in {path}"));
                }
                let edited = text.replacen(search, replace, 1);
                self.write(
                    path,
                    edited.as_bytes(),
                    call.arguments["token"].as_u64(),
                    step,
                )
                .await
            }
            "list_files" => {
                let files: Vec<String> = crate::files::list_tree(ws.files.root(), 1000)
                    .into_iter()
                    .map(|(path, _)| path)
                    .collect();
                Ok(json!({"files": files}))
            }
            "search" => {
                let pattern = arg(call, "pattern")?;
                let listing = Box::pin(self.run(
                    &ToolCall {
                        id: call.id.clone(),
                        name: "list_files".into(),
                        arguments: json!({}),
                    },
                    step,
                ))
                .await?;
                let mut hits = Vec::new();
                for f in listing["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let Ok(bytes) = ws.files.read(f).await else {
                        continue;
                    };
                    for (n, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
                        if line.contains(pattern) && hits.len() < 100 {
                            hits.push(json!({"file": f, "line": n + 1, "text": line}));
                        }
                    }
                }
                Ok(json!({"matches": hits}))
            }
            "send_message" => {
                let text = arg(call, "text")?;
                let to = call.arguments["to"].as_str().map(str::to_string);
                let topic = call.arguments["topic"].as_str().map(str::to_string);
                let m = ws
                    .bus
                    .send(SendMessage {
                        from: self.agent.clone(),
                        to,
                        topic,
                        body: json!({"text": text}),
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(json!({"message": m.id}))
            }
            other => Err(format!(
                "unknown tool {other:?}; tools: {}",
                TOOLS.join(", ")
            )),
        }
    }

    /// A fenced write: with `token`, or under a lease taken for it; not made again when
    /// `step` already made it.
    async fn write(
        &self,
        path: &str,
        content: &[u8],
        token: Option<u64>,
        step: &str,
    ) -> Result<Value, String> {
        if let Some(done) = self.written_by(step) {
            return Ok(done);
        }
        let files = &self.ws.files;
        let result = match token {
            Some(token) => {
                files
                    .write(&self.agent, token, path, content, Some(step))
                    .await
            }
            None => {
                let req = LockRequest {
                    path: path.into(),
                    mode: LockMode::Exclusive,
                    holder: self.agent.clone(),
                    ttl_ms: None,
                    wait_ms: None,
                };
                let lease = self
                    .ws
                    .locks
                    .acquire(req)
                    .await
                    .map_err(|e| e.to_string())?;
                let r = files
                    .write(&self.agent, lease.token, path, content, Some(step))
                    .await;
                let _ = self.ws.locks.release(lease.token);
                r
            }
        };
        let w = result.map_err(|e| e.to_string())?;
        let summary = w.diff["summary"].as_str().unwrap_or_default();
        self.ws
            .context
            .note_edit(&self.agent, &w.path, &w.sha256, summary);
        self.saw(&w.path, &w.sha256);
        serde_json::to_value(w).map_err(|e| e.to_string())
    }
}

/// Each tool's description and JSON Schema of its arguments, as models are told.
pub fn schemas() -> Vec<(&'static str, &'static str, Value)> {
    let path =
        json!({"type": "string", "description": "workspace-relative path, e.g. src/main.rs"});
    let token = json!({"type": "integer", "description": "fencing token of a lease you hold on the path (from acquire_lock)"});
    vec![
        (
            "list_files",
            "List the workspace's project files.",
            json!({"type": "object", "properties": {}}),
        ),
        (
            "read_file",
            "Read a file.",
            json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
        ),
        (
            "write_file",
            "Write a whole file. Pass the token of a lease on the path, or none to take one for this write.",
            json!({"type": "object", "properties": {"path": path, "content": {"type": "string"}, "token": token}, "required": ["path", "content"]}),
        ),
        (
            "edit_file",
            "Replace the first occurrence of `search` with `replace` in a file.",
            json!({"type": "object", "properties": {"path": path, "search": {"type": "string"}, "replace": {"type": "string"}, "token": token}, "required": ["path", "search", "replace"]}),
        ),
        (
            "search",
            "Find lines containing a string in the project files.",
            json!({"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]}),
        ),
        (
            "send_message",
            "Send a message to another agent (`to`) or a topic.",
            json!({"type": "object", "properties": {"to": {"type": "string"}, "topic": {"type": "string"}, "text": {"type": "string"}}, "required": ["text"]}),
        ),
        (
            "acquire_lock",
            "Take a lease on a path (a folder covers what is under it); waits in line. Returns its fencing token.",
            json!({"type": "object", "properties": {"path": path, "mode": {"type": "string", "enum": ["exclusive", "shared"]}}, "required": ["path"]}),
        ),
        (
            "release_lock",
            "Release a lease.",
            json!({"type": "object", "properties": {"token": token}, "required": ["token"]}),
        ),
        (
            "complete_task",
            "Finish the task, saying whether it succeeded and what was done.",
            json!({"type": "object", "properties": {"ok": {"type": "boolean"}, "summary": {"type": "string"}}, "required": ["summary"]}),
        ),
    ]
}

/// What every model is told about working in a shared workspace.
pub const SYSTEM_PROMPT: &str = "You are one of several coding agents working on one shared workspace. \
Use the tools to read and change files. Before changing a file, take its lock with acquire_lock and pass the \
returned token to write_file or edit_file; release the lock when done. When the task is finished, call \
complete_task with a short summary.";
