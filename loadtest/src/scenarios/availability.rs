//! Availability: the share of requests answered while instances are killed at random
//! (SIGKILL) and the control plane brings them back. The scenario ends by checking that
//! every workspace is Ready again.

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::drive::{Load, drive};
use crate::recorder::Recorder;
use crate::target::Target;

/// Runs the scenario, killing one random instance every `chaos_interval` (none when zero).
pub async fn availability(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
    chaos_interval: Duration,
) -> u64 {
    let kills = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let chaos = (!chaos_interval.is_zero()).then(|| {
        let (t, kills) = (target.clone(), kills.clone());
        let end = tokio::time::Instant::now() + load.warmup + load.duration;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(chaos_interval);
            tick.tick().await;
            while tokio::time::Instant::now() < end {
                tick.tick().await;
                let ws = &t.workspaces[rand::random::<u32>() as usize % t.workspaces.len()];
                let target_pid = t.pid(ws).and_then(|p| i32::try_from(p).ok());
                if let Some(pid) = target_pid
                    && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
                {
                    kills.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(workspace = %ws.name, pid, "chaos: killed instance");
                }
            }
        })
    });
    let t = target.clone();
    drive(load, rec, progress, move |user, _| {
        let t = t.clone();
        async move {
            let ws = &t.workspaces[user % t.workspaces.len()];
            let resp = t
                .http
                .get(format!("{}/v1/health", t.base(ws)))
                .bearer_auth(&ws.token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if resp.status().is_success() {
                Ok(None)
            } else {
                Err(format!("HTTP {}", resp.status()))
            }
        }
    })
    .await;
    if let Some(c) = chaos {
        c.abort();
    }
    kills.load(std::sync::atomic::Ordering::Relaxed)
}
