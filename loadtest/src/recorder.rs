//! What a scenario measures: latencies in an HDR histogram (bounded memory, exact high
//! percentiles) and counts of successes and failures; and the same per second of the run,
//! so a dip (the seconds after a mass start) shows instead of being averaged away.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Seconds of a run the per-second series covers (an hour; later seconds are folded into
/// the last).
pub const SERIES_SECONDS: usize = 3600;

/// One metric's measurements; safe to record from many tasks.
#[derive(Debug)]
pub struct Recorder {
    histogram: Mutex<Histogram<u64>>,
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    /// Per second since `started`: 2 significant figures (1%), which is what a chart shows.
    seconds: Mutex<Vec<Histogram<u64>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            // 1 µs … 10 min at 3 significant figures.
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3)
                    .expect("invariant: valid histogram bounds"),
            ),
            ok: Default::default(),
            failed: Default::default(),
            started: std::time::Instant::now(),
            seconds: Mutex::new(Vec::new()),
        }
    }
}

/// One second of a metric.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    /// Seconds since the metric's recording began.
    pub second: u32,
    /// Successes in it.
    pub count: u64,
    /// Seconds.
    pub p99: f64,
}

/// A summary of one metric.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Successful operations measured.
    pub count: u64,
    /// Failed operations.
    pub failed: u64,
    /// Seconds.
    pub p50: f64,
    /// Seconds.
    pub p95: f64,
    /// Seconds.
    pub p99: f64,
    /// Seconds.
    pub p999: f64,
    /// Seconds.
    pub max: f64,
    /// Seconds.
    pub avg: f64,
    /// Successes / all.
    pub success_rate: f64,
    /// Per second of the run (seconds without a success are left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_second: Vec<Second>,
}

impl Recorder {
    /// Records a success and its latency.
    pub fn ok(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 600_000_000);
        let mut h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(us);
        drop(h);
        let second = (self.started.elapsed().as_secs() as usize).min(SERIES_SECONDS - 1);
        let mut seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        while seconds.len() <= second {
            seconds.push(
                Histogram::new_with_bounds(1, 600_000_000, 2)
                    .expect("invariant: valid histogram bounds"),
            );
        }
        let _ = seconds[second].record(us);
        drop(seconds);
        self.ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records a failure.
    pub fn failed(&self) {
        self.failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The value a percentile-like statistic reads, in seconds.
    pub fn quantile(&self, q: f64) -> f64 {
        let h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1e6
        }
    }

    /// The summary.
    pub fn summary(&self) -> Summary {
        let h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let ok = self.ok.load(std::sync::atomic::Ordering::Relaxed);
        let failed = self.failed.load(std::sync::atomic::Ordering::Relaxed);
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1e6
            }
        };
        Summary {
            count: ok,
            failed,
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1e6
            },
            avg: if h.is_empty() { 0.0 } else { h.mean() / 1e6 },
            success_rate: if ok + failed == 0 {
                1.0
            } else {
                ok as f64 / (ok + failed) as f64
            },
            per_second: self.per_second(),
        }
    }

    fn per_second(&self) -> Vec<Second> {
        let seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        seconds
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(i, h)| Second {
                second: u32::try_from(i).unwrap_or(u32::MAX),
                count: h.len(),
                p99: h.value_at_quantile(0.99) as f64 / 1e6,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_second_has_its_own_p99() {
        let r = Recorder::default();
        r.ok(Duration::from_millis(2));
        r.ok(Duration::from_millis(4));
        let s = r.summary();
        assert_eq!(s.per_second.len(), 1);
        assert_eq!(s.per_second[0].second, 0);
        assert_eq!(s.per_second[0].count, 2);
        assert!(
            (s.per_second[0].p99 - 0.004).abs() < 0.0001,
            "{:?}",
            s.per_second
        );
    }
}
