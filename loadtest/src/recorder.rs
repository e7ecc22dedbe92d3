//! What a scenario measures: latencies in an HDR histogram (bounded memory, exact high
//! percentiles) and counts of successes and failures.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// One metric's measurements; safe to record from many tasks.
#[derive(Debug)]
pub struct Recorder {
    histogram: Mutex<Histogram<u64>>,
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
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
        }
    }
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
}

impl Recorder {
    /// Records a success and its latency.
    pub fn ok(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 600_000_000);
        let mut h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(us);
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
        }
    }
}
