//! Task start: a user submits a task to an agent whose worker long-polls for work; measured
//! from the submission until the worker holds the task as running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::drive::{Load, drive};
use crate::recorder::Recorder;
use crate::target::{AGENTS, Target};

/// Either side of the hand-off may come first.
enum Slot {
    Waiting(oneshot::Sender<Instant>),
    Claimed(Instant),
}

type Board = Arc<Mutex<HashMap<(usize, i64), Slot>>>;

fn board_put(board: &Board, key: (usize, i64), at: Instant) {
    let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
    match b.remove(&key) {
        Some(Slot::Waiting(tx)) => {
            let _ = tx.send(at);
        }
        _ => {
            b.insert(key, Slot::Claimed(at));
        }
    }
}

/// Runs the scenario with one worker per agent per workspace.
pub async fn task_start(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
) {
    let board: Board = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for (w, ws) in target.workspaces.iter().enumerate() {
        for a in 0..AGENTS {
            let (t, ws, board, stop) = (target.clone(), ws.clone(), board.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                let base = t.base(&ws);
                loop {
                    let claim = t
                        .http
                        .post(format!("{base}/v1/tasks/claim"))
                        .bearer_auth(&ws.token)
                        .json(&json!({"agent": format!("a{a}"), "wait_ms": 2000}))
                        .send();
                    let resp = tokio::select! {
                        r = claim => r,
                        () = stop.notified() => return,
                    };
                    let Ok(resp) = resp else { continue };
                    let at = Instant::now();
                    let Ok(task) = resp.json::<Value>().await else {
                        continue;
                    };
                    let Some(id) = task["id"].as_i64() else {
                        continue;
                    };
                    board_put(&board, (w, id), at);
                    let _ = t
                        .http
                        .post(format!("{base}/v1/tasks/{id}/finish"))
                        .bearer_auth(&ws.token)
                        .json(&json!({"ok": true}))
                        .send()
                        .await;
                }
            }));
        }
    }
    let t = target.clone();
    drive(load, rec, progress, move |user, i| {
        let (t, board) = (t.clone(), board.clone());
        async move {
            let w = user % t.workspaces.len();
            let ws = &t.workspaces[w];
            let agent = format!("a{}", (user + usize::try_from(i).unwrap_or(0)) % AGENTS);
            let submitted = Instant::now();
            let resp = t
                .http
                .post(format!("{}/v1/tasks", t.base(ws)))
                .bearer_auth(&ws.token)
                .json(&json!({"agent": agent, "title": "loadtest"}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("submit: HTTP {}", resp.status()));
            }
            let task: Value = resp.json().await.map_err(|e| e.to_string())?;
            let id = task["id"].as_i64().ok_or("no task id")?;
            let rx = {
                let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
                match b.remove(&(w, id)) {
                    Some(Slot::Claimed(at)) => return Ok(Some(at.duration_since(submitted))),
                    _ => {
                        let (tx, rx) = oneshot::channel();
                        b.insert((w, id), Slot::Waiting(tx));
                        rx
                    }
                }
            };
            match tokio::time::timeout(Duration::from_secs(30), rx).await {
                Ok(Ok(at)) => Ok(Some(at.duration_since(submitted))),
                _ => Err(format!("task {id} was not started within 30 s")),
            }
        }
    })
    .await;
    stop.notify_waiters();
    for w in workers {
        w.abort();
    }
}
