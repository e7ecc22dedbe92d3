//! Drives one scenario's operations, closed loop (each simulated user issues its next
//! request when the previous one answers) or open loop (requests arrive at a fixed rate
//! whatever the answers, latency counted from the scheduled arrival, so a slow system is
//! not flattered by fewer requests). Operations started during the warm-up are not
//! recorded. Every loop is bounded by the scenario's duration. [`drive`] caps the
//! requests in flight at the user count; [`arrivals`] has no cap, for scenarios whose
//! arrivals must never wait for earlier answers (wake on connect).

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
    let ticker = ticker(progress, start, load.warmup + load.duration);
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

/// One arrival of an open loop's schedule.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Its number, from 0.
    pub n: u64,
    /// When it was due: a latency counts from here, not from when the request left.
    pub due: Instant,
    /// Whether it falls in the measured time (not the warm-up).
    pub measured: bool,
}

/// Open loop without a cap on requests in flight: `op` is spawned at each arrival of a
/// fixed-rate schedule (`rate` a second) over the warm-up and the duration, whether or not
/// the earlier ones have been answered, so a slow answer never delays the next arrival.
/// `op` records what it measures itself (an arrival may count in one metric or another).
/// Returns once every spawned `op` has finished.
pub async fn arrivals<F, Fut>(rate: f64, load: Load, progress: &ProgressBar, op: F)
where
    F: Fn(Arrival) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let ticker = ticker(progress, start, load.warmup + load.duration);
    let mut tasks = Vec::new();
    for n in 0u64.. {
        let due = start + every.mul_f64(n as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        tasks.push(tokio::spawn(op(Arrival {
            n,
            due,
            measured: due >= measure_from,
        })));
    }
    for t in tasks {
        let _ = t.await;
    }
    ticker.abort();
    progress.finish_and_clear();
}

/// Moves `progress` along with the clock until aborted.
fn ticker(progress: &ProgressBar, start: Instant, total: Duration) -> tokio::task::JoinHandle<()> {
    let progress = progress.clone();
    tokio::spawn(async move {
        progress.set_length(total.as_secs().max(1));
        let mut t = tokio::time::interval(Duration::from_millis(200));
        loop {
            t.tick().await;
            progress.set_position(start.elapsed().as_secs().min(total.as_secs()));
        }
    })
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn arrivals_keep_their_schedule_however_slow_the_answers() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let load = Load {
            users: 1,
            duration: Duration::from_millis(400),
            warmup: Duration::from_millis(100),
            rate: None,
        };
        let s = seen.clone();
        arrivals(10.0, load, &ProgressBar::hidden(), move |a| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((a, Instant::now()));
                // Far slower than the schedule: the next arrival must not wait for it.
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
        .await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5, "one every 100 ms over 500 ms");
        let first = seen[0].0.due;
        for (a, started) in seen.iter() {
            assert_eq!(*started, a.due, "arrival {} started on time", a.n);
            assert_eq!(a.due - first, Duration::from_millis(100) * a.n as u32);
            assert_eq!(a.measured, a.n >= 1, "the first falls in the warm-up");
        }
    }
}
