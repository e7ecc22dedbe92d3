//! # coditect-loadtest
//!
//! KPI scenarios driven over real HTTP/WebSocket against a control plane (one already
//! running, or one started with `--embedded`), HDR-histogram percentile reports, and the
//! CI gate that fails a build when a threshold is missed (exit code 99, as k6 does).
//!
//! ```text
//!  setup: apply N workspaces ──► startup (apply → Ready, per workspace)
//!  scenarios, each warm-up + duration, closed or open loop, through the gateway:
//!    reconnect · task_start · lock_uncontended · lock_contended · availability (+ chaos)
//!    · wake (open loop at sleeping workspaces; the org's awake count sampled alongside)
//!    · lock_during_starts (uncontended locks while as many workspaces again start at once)
//!  judge(thresholds) ──► table, JSON, JUnit, Markdown ──► exit 0 or 99
//! ```
//!
//! Depends on the control plane and below; nothing but the CLI imports it.

pub mod awake;
pub mod drive;
pub mod recorder;
pub mod report;
pub mod scenarios;
pub mod target;
pub mod thresholds;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::drive::Load;
use crate::recorder::Recorder;
use crate::report::Report;
use crate::target::Target;

/// The exit code of a run whose thresholds failed (k6's).
pub const THRESHOLDS_FAILED: u8 = 99;

/// Why a run could not be carried out (as opposed to failing its thresholds).
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// The thresholds file is unusable.
    #[error(transparent)]
    Thresholds(#[from] thresholds::ThresholdError),
    /// The system under test could not be set up.
    #[error("setup: {0}")]
    Setup(String),
    /// An unknown scenario was named.
    #[error("unknown scenario {0:?}: expected one of {all}", all = scenarios::ALL.join(", "))]
    UnknownScenario(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A running control plane; `None` starts an embedded one.
    pub server: Option<String>,
    /// The token for `server` (an embedded control plane's is its admin's).
    pub token: Option<String>,
    /// The control plane's data directory (instances' pids are read from it).
    pub data_dir: Option<PathBuf>,
    /// The binary an embedded control plane runs instances with.
    pub runtime_command: PathBuf,
    /// Simulated users.
    pub users: usize,
    /// Workspaces to create.
    pub workspaces: usize,
    /// Measured time per scenario.
    pub duration: Duration,
    /// Unmeasured time before each scenario.
    pub warmup: Duration,
    /// Open-loop arrivals per second; closed loop when `None`.
    pub rate: Option<f64>,
    /// Scenarios to run (all when empty), each `NAME[:USERS[:DURATION]]` to override the
    /// user count and duration for that scenario (`reconnect:200:5s`).
    pub scenarios: Vec<String>,
    /// The thresholds file.
    pub thresholds: PathBuf,
    /// Kill a random instance this often during the availability scenario (0: never).
    pub chaos_interval: Duration,
    /// Show progress bars.
    pub progress: bool,
}

/// Runs the load test and judges it.
///
/// # Errors
/// [`LoadtestError`] when it cannot run; a failed threshold is a [`Report`] with
/// `pass == false`, not an error.
pub async fn run(opts: &Options) -> Result<Report, LoadtestError> {
    let thresholds = thresholds::load(&opts.thresholds)?;
    let base = Load {
        users: opts.users.max(1),
        duration: opts.duration,
        warmup: opts.warmup,
        rate: opts.rate,
    };
    let plan: Vec<(String, Load)> = if opts.scenarios.is_empty() {
        scenarios::ALL
            .iter()
            .map(|s| (s.to_string(), base))
            .collect()
    } else {
        opts.scenarios
            .iter()
            .map(|s| scenario_load(s, base))
            .collect::<Result<_, _>>()?
    };
    let chosen: Vec<String> = plan.iter().map(|(n, _)| n.clone()).collect();
    let mut target = Target::connect(
        opts.server.as_deref(),
        opts.token.as_deref(),
        opts.data_dir.as_deref(),
        &opts.runtime_command,
    )
    .await?;
    let mut summaries: BTreeMap<String, (recorder::Summary, Option<f64>)> = BTreeMap::new();
    let startup = Arc::new(Recorder::default());
    let bar = |name: &str| {
        if opts.progress {
            let pb = ProgressBar::new(1);
            pb.set_style(
                ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len}s")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_prefix(name.to_string());
            pb
        } else {
            ProgressBar::hidden()
        }
    };
    tracing::info!(workspaces = opts.workspaces, "creating workspaces");
    target
        .create_workspaces(opts.workspaces.max(1), &startup)
        .await?;
    summaries.insert("startup".into(), (startup.summary(), None));
    let target = Arc::new(target);
    // A few events to resume after, in every workspace.
    for ws in &target.workspaces {
        for i in 0..3 {
            let _ = target
                .http
                .post(format!("{}/v1/events", target.base(ws)))
                .bearer_auth(&ws.token)
                .json(
                    &serde_json::json!({"agent": "a0", "type": "agent_message", "data": {"i": i}}),
                )
                .send()
                .await;
        }
    }
    let mut errors = (0u64, 0u64);
    let mut wake = None;
    for (name, load) in &plan {
        let load = *load;
        let rec = Arc::new(Recorder::default());
        let pb = bar(name);
        let mut rate = None;
        match name.as_str() {
            "reconnect" => scenarios::reconnect(&target, load, rec.clone(), &pb).await,
            "task_start" => scenarios::task_start(&target, load, rec.clone(), &pb).await,
            "lock_uncontended" => {
                scenarios::lock_uncontended(&target, load, rec.clone(), &pb).await
            }
            "lock_contended" => scenarios::lock_contended(&target, load, rec.clone(), &pb).await,
            "lock_during_starts" => {
                scenarios::lock_during_starts(&target, load, rec.clone(), &pb).await
            }
            "wake" => wake = Some(scenarios::wake(&target, load, rec.clone(), &pb).await),
            _ => {
                let kills =
                    scenarios::availability(&target, load, rec.clone(), &pb, opts.chaos_interval)
                        .await;
                let ready = target.all_ready(Duration::from_secs(60)).await;
                let total = target.workspaces.len();
                let recovered = Recorder::default();
                rate = Some(rec.summary().success_rate);
                summaries.insert(
                    "recovered".into(),
                    (
                        recovered.summary(),
                        Some(ready as f64 / total.max(1) as f64),
                    ),
                );
                tracing::info!(kills, ready, total, "availability scenario done");
            }
        }
        let s = rec.summary();
        if rate.is_none() {
            errors.0 += s.failed;
            errors.1 += s.count + s.failed;
        }
        summaries.insert(name.clone(), (s, rate));
    }
    let error_rate = if errors.1 == 0 {
        0.0
    } else {
        errors.0 as f64 / errors.1 as f64
    };
    summaries.insert(
        "errors".into(),
        (Recorder::default().summary(), Some(error_rate)),
    );
    let mut parameters = BTreeMap::new();
    parameters.insert("users".into(), opts.users.to_string());
    parameters.insert("workspaces".into(), opts.workspaces.to_string());
    parameters.insert("duration".into(), format!("{:?}", opts.duration));
    parameters.insert("warmup".into(), format!("{:?}", opts.warmup));
    parameters.insert(
        "mode".into(),
        opts.rate
            .map_or("closed loop".into(), |r| format!("open loop, {r}/s")),
    );
    parameters.insert(
        "server".into(),
        opts.server.clone().unwrap_or_else(|| "embedded".into()),
    );
    let skipped: std::collections::BTreeSet<String> = scenarios::ALL
        .iter()
        .filter(|s| !chosen.iter().any(|c| c == *s))
        .map(|s| s.to_string())
        .chain((!chosen.iter().any(|c| c == "availability")).then(|| "recovered".to_string()))
        .collect();
    let mut report = report::judge(
        &thresholds,
        &summaries,
        &skipped,
        &opts.thresholds.display().to_string(),
        parameters,
    );
    report.wake = wake;
    target.finish().await;
    Ok(report)
}

/// Parses `NAME[:USERS[:DURATION]]`.
fn scenario_load(spec: &str, base: Load) -> Result<(String, Load), LoadtestError> {
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default().to_string();
    if !scenarios::ALL.contains(&name.as_str()) {
        return Err(LoadtestError::UnknownScenario(spec.to_string()));
    }
    let mut load = base;
    if let Some(users) = parts.next() {
        load.users = users.parse().map_err(|_| {
            LoadtestError::UnknownScenario(format!("{spec} (users must be a number)"))
        })?;
    }
    if let Some(d) = parts.next() {
        let d: coditect_specs::Duration = d
            .parse()
            .map_err(|_| LoadtestError::UnknownScenario(format!("{spec} (bad duration)")))?;
        load.duration = d.to_std();
    }
    Ok((name, load))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_take_their_own_users_and_duration() {
        let base = Load {
            users: 10,
            duration: Duration::from_secs(5),
            warmup: Duration::ZERO,
            rate: None,
        };
        let (name, load) = scenario_load("reconnect:200:2s", base).unwrap();
        assert_eq!(
            (name.as_str(), load.users, load.duration),
            ("reconnect", 200, Duration::from_secs(2))
        );
        let (_, load) = scenario_load("task_start", base).unwrap();
        assert_eq!(load.users, 10);
        assert!(scenario_load("teleport", base).is_err());
        assert!(scenario_load("reconnect:many", base).is_err());
    }
}
