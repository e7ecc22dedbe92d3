//! Lock acquisition through the gateway: uncontended (each user its own paths) and
//! contended (all users of a workspace on one file, waiting in line).

use std::sync::Arc;

use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::drive::{Load, OpResult, drive};
use crate::recorder::Recorder;
use crate::target::Target;

async fn acquire_release(t: &Target, user: usize, path: String, wait_ms: u64) -> OpResult {
    let ws = &t.workspaces[user % t.workspaces.len()];
    let base = t.base(ws);
    let started = std::time::Instant::now();
    let resp = t
        .http
        .post(format!("{base}/v1/locks"))
        .bearer_auth(&ws.token)
        .json(&json!({"path": path, "mode": "exclusive", "holder": format!("user{user}"), "wait_ms": wait_ms}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let lease: Value = resp.json().await.map_err(|e| e.to_string())?;
    let latency = started.elapsed();
    if !status.is_success() {
        return Err(format!("acquire: HTTP {status}: {lease}"));
    }
    let token = lease["token"].as_u64().ok_or("no token")?;
    let _ = t
        .http
        .delete(format!("{base}/v1/locks/{token}"))
        .bearer_auth(&ws.token)
        .send()
        .await;
    Ok(Some(latency))
}

/// Every acquisition on a fresh path: the lock table's fast path.
pub async fn lock_uncontended(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
) {
    let t = target.clone();
    drive(load, rec, progress, move |user, i| {
        let t = t.clone();
        async move { acquire_release(&t, user, format!("u{user}/f{i}.rs"), 0).await }
    })
    .await;
}

/// Uncontended acquisitions on the serving workspaces while as many new workspaces start
/// at once (one apply, made when the warm-up ends, so the measured window is the first
/// seconds after it): what a mass start — keep-awake windows opening, a migration batch —
/// costs the workspaces already serving. The new ones are deleted afterwards.
pub async fn lock_during_starts(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
) {
    let t = target.clone();
    let starts = tokio::spawn(async move {
        tokio::time::sleep(load.warmup).await;
        let n = t.workspaces.len();
        match t.start_more(n).await {
            Ok(names) => {
                tracing::info!(workspaces = n, "mass start applied");
                names
            }
            Err(e) => {
                tracing::warn!(error = %e, "the mass start was refused");
                Vec::new()
            }
        }
    });
    lock_uncontended(target, load, rec, progress).await;
    let names = starts.await.unwrap_or_default();
    target.remove(&names).await;
}

/// Every user of a workspace on the same file: the latency includes the wait in line.
pub async fn lock_contended(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
) {
    let t = target.clone();
    drive(load, rec, progress, move |user, _| {
        let t = t.clone();
        async move { acquire_release(&t, user, "hot/contended.rs".to_string(), 30_000).await }
    })
    .await;
}
