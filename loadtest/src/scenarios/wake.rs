//! Wake on connect: users arrive, open loop, each at a sleeping workspace, and make one
//! request through the gateway (`GET /w/{org}/{ws}/v1/status` on a new connection);
//! measured from the arrival to the first byte of the answer, while the gateway wakes the
//! workspace and holds the request until its instance serves.
//!
//! The run's workspaces are put to sleep first (through the API, as the admin), each
//! awaited on the watch until Asleep. A 5 s run over 5 workspaces needs many more wakes
//! than workspaces, so each is woken again and again: after its user is answered, the
//! scenario puts it back to sleep and waits, on the watch, until it is Asleep before it
//! aims another user at it ([`pool`] decides who holds each workspace). Arrivals follow a
//! fixed-rate schedule, one per workspace every [`WAKE_EVERY`], that no answer delays; the
//! rate leaves each workspace most of its second to fall asleep again (a debug build's
//! wake and re-sleep take ~0.1 s each), so `--rate` and the user count do not apply here.
//!
//! An arrival that finds no workspace asleep still goes (the schedule is the schedule),
//! to the one put back to sleep longest ago, and the gateway holds it. It counts as a wake
//! only when that workspace was already Stopping (or Asleep): the user then waits for the
//! rest of the stop as well as the start, a pessimistic sample. One whose instance still
//! ran is answered by it and counted apart (`caught_awake`), and so is one that comes
//! while every workspace is being woken (`joined`: it waits for part of another's wake).
//! A failed answer of any arrival fails `wake`. Meanwhile the organization's awake count
//! is sampled ([`crate::awake`]); at the end every workspace is woken again, so the
//! scenarios after this one find them as they were.

mod pool;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;
use tokio::time::Instant;

use crate::awake::{AwakeSeries, Sampler};
use crate::drive::{Arrival, Load, arrivals};
use crate::recorder::Recorder;
use crate::target::{ORG, Target, Ws, key};
use pool::{Aim, Pool};

/// Each workspace is aimed at about once in this long.
pub const WAKE_EVERY: Duration = Duration::from_secs(1);

/// How often the organization's awake count is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// How long a workspace may take to fall asleep (a final sync round, then the stop) or to
/// be Ready again at the end.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the wake scenario's arrivals met, besides the `wake` latencies.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WakeRun {
    /// Arrivals a second (fixed rate).
    pub rate: f64,
    /// Arrivals in the measured time.
    pub arrivals: u64,
    /// Of them, at a workspace asleep or stopping: the `wake` samples (and failures).
    pub wakes: u64,
    /// At a workspace being put back to sleep whose instance still ran: answered by it.
    pub caught_awake: u64,
    /// While every workspace was being woken: joined a wake in progress.
    pub joined: u64,
    /// Arrivals whose answer failed (any of the above).
    pub failed: u64,
    /// The organization's awake count over the scenario (warm-up included).
    pub awake: AwakeSeries,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the scenario, recording each wake's latency (and every failure) into `rec`.
pub async fn wake(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
) -> WakeRun {
    let pool = Arc::new(Mutex::new(fall_asleep(target).await));
    let rate = lock(&pool).len() as f64 / WAKE_EVERY.as_secs_f64();
    let run = Arc::new(Mutex::new(WakeRun {
        rate,
        ..WakeRun::default()
    }));
    if lock(&pool).is_empty() {
        tracing::error!("wake: no workspace could be put to sleep; nothing measured");
        return lock(&run).clone();
    }
    // A new connection for every arrival: the clock covers connect → first byte.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let sampler = Sampler::start(target.client.clone(), ORG, SAMPLE_EVERY);
    let (t, p, r) = (target.clone(), pool.clone(), run.clone());
    arrivals(rate, load, progress, move |arrival| {
        let (t, pool, run, rec, http) =
            (t.clone(), p.clone(), r.clone(), rec.clone(), http.clone());
        async move { arrive(&t, &pool, &run, &rec, &http, arrival).await }
    })
    .await;
    let awake = sampler.finish().await;
    wake_all(target).await;
    let mut run = lock(&run).clone();
    run.awake = awake;
    tracing::info!(
        arrivals = run.arrivals,
        wakes = run.wakes,
        caught_awake = run.caught_awake,
        joined = run.joined,
        failed = run.failed,
        "wake scenario done"
    );
    run
}

/// One user: aimed by the pool, one request, counted; then, if it holds the workspace,
/// puts it back to sleep.
async fn arrive(
    t: &Target,
    pool: &Mutex<Pool>,
    run: &Mutex<WakeRun>,
    rec: &Recorder,
    http: &reqwest::Client,
    arrival: Arrival,
) {
    let Some(aim) = lock(pool).take(arrival.n) else {
        // No workspace left in the rotation (none could be put back to sleep).
        if arrival.measured {
            let mut run = lock(run);
            run.arrivals += 1;
            run.failed += 1;
            rec.failed();
        }
        return;
    };
    let ws = &t.workspaces[aim.workspace()];
    let answered = first_byte(t, http, ws).await;
    if arrival.measured {
        let mut run = lock(run);
        run.arrivals += 1;
        match aim {
            _ if aim.is_wake() => run.wakes += 1,
            Aim::Joined(_) => run.joined += 1,
            _ => run.caught_awake += 1,
        }
        match &answered {
            Ok(at) if aim.is_wake() => rec.ok(at.duration_since(arrival.due)),
            Ok(_) => {}
            Err(e) => {
                run.failed += 1;
                rec.failed();
                tracing::debug!(workspace = %ws.name, error = %e, "wake: request failed");
            }
        }
    }
    if aim.holds() {
        resleep(t, pool, aim.workspace()).await;
    }
}

/// `GET …/v1/status` through the gateway; when its first byte (the status line and
/// headers) arrived, once the whole answer is read and is a success.
async fn first_byte(t: &Target, http: &reqwest::Client, ws: &Ws) -> Result<Instant, String> {
    let resp = http
        .get(format!("{}/v1/status", t.base(ws)))
        .bearer_auth(&ws.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let at = Instant::now();
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(at)
    } else {
        Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
    }
}

/// Whether a workspace's status says it is asleep by a recorded wish (not merely stopped
/// on the way to a wake that overtook the sleep).
fn asleep(status: &serde_json::Value) -> bool {
    status["phase"] == "Asleep" && status["sleep"]["asleepSince"].is_string()
}

/// Follows `ws`'s phases on the watch, once its sleep has been asked, until it is asleep
/// or the wish is gone (an arrival woke it meanwhile); `seen` hears every phase. Whether
/// it fell asleep.
async fn watch_asleep(t: &Target, ws: &Ws, seen: impl Fn(&str)) -> Result<bool, String> {
    let last = t
        .client
        .watch_until(&key(&ws.name), SETTLE_TIMEOUT, |r| {
            let status = r.status_json();
            seen(status["phase"].as_str().unwrap_or_default());
            asleep(&status) || status["sleep"].is_null()
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(asleep(&last.status_json()))
}

/// Puts every workspace of the run to sleep at once; a pool of those that fell asleep.
async fn fall_asleep(t: &Arc<Target>) -> Pool {
    let sleeps: Vec<_> = (0..t.workspaces.len())
        .map(|w| {
            let t = t.clone();
            tokio::spawn(async move {
                let ws = &t.workspaces[w];
                t.request_sleep(ws).await.map_err(|e| e.to_string())?;
                watch_asleep(&t, ws, |_| {}).await
            })
        })
        .collect();
    let mut asleep = Vec::new();
    for (w, s) in sleeps.into_iter().enumerate() {
        match s.await {
            Ok(Ok(true)) => asleep.push(w),
            other => {
                tracing::warn!(workspace = %t.workspaces[w].name, outcome = ?other, "wake: could not put to sleep; left out")
            }
        }
    }
    Pool::new(t.workspaces.len(), &asleep, Instant::now())
}

/// Puts `w` back to sleep after its wake; the pool hears what the watch sees.
async fn resleep(t: &Target, pool: &Mutex<Pool>, w: usize) {
    let ws = &t.workspaces[w];
    if let Err(e) = t.request_sleep(ws).await {
        tracing::warn!(workspace = %ws.name, error = %e, "wake: could not put back to sleep; left out");
        lock(pool).retire(w);
        return;
    }
    let epoch = lock(pool).settling(w, Instant::now());
    match watch_asleep(t, ws, |phase| lock(pool).seen(w, epoch, phase)).await {
        Ok(true) => lock(pool).settled(w, epoch, Instant::now()),
        Ok(false) => {} // an arrival took it on the way; it puts it back to sleep itself
        Err(e) => tracing::warn!(workspace = %ws.name, error = %e, "wake: did not fall asleep"),
    }
}

/// Wakes every workspace of the run and waits until each is Ready again.
async fn wake_all(t: &Arc<Target>) {
    for ws in &t.workspaces {
        if let Err(e) = t.request_wake(ws).await {
            tracing::warn!(workspace = %ws.name, error = %e, "wake: could not wake at the end");
        }
    }
    let ready = t.all_ready(SETTLE_TIMEOUT).await;
    if ready < t.workspaces.len() {
        tracing::warn!(
            ready,
            total = t.workspaces.len(),
            "wake: not every workspace is Ready again"
        );
    }
}
