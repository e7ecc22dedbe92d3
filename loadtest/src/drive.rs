//! Drives one scenario's operations, closed loop (each simulated user issues its next
//! request when the previous one answers) or open loop (requests arrive at a fixed rate
//! whatever the answers, latency counted from the scheduled arrival, so a slow system is
//! not flattered by fewer requests). Operations started during the warm-up are not
//! recorded. Every loop is bounded by the scenario's duration.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::time::Instant;

use crate::recorder::Recorder;

/// How much load, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Simulated users (closed loop), or the cap on requests in flight (open loop).
    pub users: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Open loop: arrivals per second across all users.
    pub rate: Option<f64>,
}

/// What an operation reports: success with an optional latency that replaces the
/// measured one (for operations whose end is observed elsewhere), or failure.
pub type OpResult = Result<Option<Duration>, String>;

/// Runs `op(user, iteration)` under `load`, recording into `rec`.
pub async fn drive<F, Fut>(load: Load, rec: Arc<Recorder>, progress: &ProgressBar, op: F)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OpResult> + Send + 'static,
{
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let op = Arc::new(op);
    let ticker = {
        let progress = progress.clone();
        let total = load.warmup + load.duration;
        tokio::spawn(async move {
            progress.set_length(total.as_secs().max(1));
            let mut t = tokio::time::interval(Duration::from_millis(200));
            loop {
                t.tick().await;
                progress.set_position(start.elapsed().as_secs().min(total.as_secs()));
            }
        })
    };
    match load.rate {
        None => {
            let tasks: Vec<_> = (0..load.users.max(1))
                .map(|user| {
                    let (op, rec) = (op.clone(), rec.clone());
                    tokio::spawn(async move {
                        let mut i = 0u64;
                        while Instant::now() < end {
                            let t = Instant::now();
                            let r = op(user, i).await;
                            record(&rec, r, t, measure_from);
                            i += 1;
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        }
        Some(rate) => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let in_flight = Arc::new(tokio::sync::Semaphore::new(load.users.max(1)));
            let mut tasks = Vec::new();
            for i in 0u64.. {
                let scheduled = start + interval.mul_f64(i as f64);
                if scheduled >= end {
                    break;
                }
                tokio::time::sleep_until(scheduled).await;
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (op, rec) = (op.clone(), rec.clone());
                let user = usize::try_from(i).unwrap_or(0) % load.users.max(1);
                tasks.push(tokio::spawn(async move {
                    let r = op(user, i).await;
                    record(&rec, r, scheduled, measure_from);
                    drop(permit);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }
    ticker.abort();
    progress.finish_and_clear();
}

fn record(rec: &Recorder, r: OpResult, started: Instant, measure_from: Instant) {
    if started < measure_from {
        return;
    }
    match r {
        Ok(Some(latency)) => rec.ok(latency),
        Ok(None) => rec.ok(started.elapsed()),
        Err(e) => {
            tracing::debug!(error = %e, "operation failed");
            rec.failed();
        }
    }
}
