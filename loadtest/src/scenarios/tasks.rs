//! Task start: a user submits a task to one of a workspace's agents; measured from the
//! submission until the agent's loop has taken it (its `task_started` event, seen on the
//! workspace's live event stream through the gateway).

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

/// Runs the scenario: each workspace's own agents (the offline planner in a load-test
/// workspace) pick the tasks up; a listener per workspace follows its event stream and
/// notes when each task starts.
pub async fn task_start(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
) {
    let board: Board = Arc::default();
    let mut listeners = Vec::new();
    let mut connected = Vec::new();
    for (w, ws) in target.workspaces.iter().enumerate() {
        let (t, ws, board) = (target.clone(), ws.clone(), board.clone());
        let (ready, is_ready) = oneshot::channel::<()>();
        connected.push(is_ready);
        listeners.push(tokio::spawn(async move {
            let base = t.base(&ws);
            let since = match t
                .http
                .get(format!("{base}/v1/health"))
                .bearer_auth(&ws.token)
                .send()
                .await
            {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .map(|v| v["lastSeq"].as_u64().unwrap_or(0))
                    .unwrap_or(0),
                Err(_) => 0,
            };
            let url = format!(
                "{}/v1/events/ws?since={since}&access_token={}",
                base.replacen("http://", "ws://", 1),
                ws.token
            );
            let Ok((mut events, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
                return;
            };
            let _ = ready.send(());
            while let Some(Ok(frame)) = futures_util::StreamExt::next(&mut events).await {
                let Ok(text) = frame.to_text() else { continue };
                let Ok(event) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if event["type"] == "task_started"
                    && let Some(id) = event["data"]["task"].as_i64()
                {
                    board_put(&board, (w, id), Instant::now());
                }
            }
        }));
    }
    // Load starts once every listener follows its workspace, so no start goes unseen.
    for c in connected {
        let _ = c.await;
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
                .json(&json!({"agent": agent, "title": format!("tell {agent}: ping")}))
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
    for l in listeners {
        l.abort();
    }
}
