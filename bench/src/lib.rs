//! # coditect-bench
//!
//! Criterion benchmarks of the hot paths, and of the physical floors they are read against
//! (see `bench/README.md`). Criterion estimates the mean; the KPI goals are p99, so each
//! latency bench also records every iteration in an HDR histogram ([`Percentiles`]) and
//! prints p50 / p99 / max when it ends.

pub mod memory;

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Per-iteration latencies of one benchmark, printed as percentiles on drop.
#[derive(Debug)]
pub struct Percentiles {
    name: String,
    histogram: Mutex<Histogram<u64>>,
}

impl Percentiles {
    /// An empty recorder for the benchmark `name`.
    pub fn new(name: &str) -> Self {
        let histogram = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .expect("invariant: 1 ns .. 60 s at 3 significant figures are valid bounds");
        Percentiles {
            name: name.to_string(),
            histogram: Mutex::new(histogram),
        }
    }

    /// Records one iteration.
    pub fn record(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let mut h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let high = h.high();
        let _ = h.record(nanos.min(high));
    }

    /// `name: n=…, p50=…, p99=…, p99.9=…, max=…, mean=…` in microseconds.
    pub fn summary(&self) -> String {
        let h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{}: n={} p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us mean={:.1}us",
            self.name,
            h.len(),
            us(0.5),
            us(0.99),
            us(0.999),
            h.max() as f64 / 1000.0,
            h.mean() / 1000.0
        )
    }
}

impl Drop for Percentiles {
    fn drop(&mut self) {
        eprintln!("PERCENTILES {}", self.summary());
    }
}

/// When this process was started as `<bench> workspace-runtime --spec … --root … --listen
/// … [--bucket …]` (the local driver starts instances that way, and a bench binary cannot
/// name the `coditect` binary), serves that instance through the library call the CLI
/// uses, and returns true once it stops; returns false otherwise.
pub fn serve_instance_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("workspace-runtime") {
        return false;
    }
    trace_if_asked();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_default()
    };
    let opts = coditect_runtime::ServeOptions {
        spec: flag("--spec").into(),
        root: flag("--root").into(),
        listen: flag("--listen")
            .parse()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        bucket: Some(flag("--bucket")).filter(|b| !b.is_empty()),
        mirror: Some(flag("--mirror")).filter(|m| !m.is_empty()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("invariant: a tokio runtime can be built");
    if let Err(e) = rt.block_on(coditect_runtime::serve(opts)) {
        eprintln!("error: {e}");
        std::process::exit(3);
    }
    true
}

/// With `CODITECT_LOG` set (an `EnvFilter`, as the CLI reads it), logs to stderr with the
/// time since start, and each span's busy and idle time when it closes: where the time of
/// a bench run goes. Instances started by a bench inherit the variable, and their stderr
/// goes to the control plane's `logs/` folder. Silent otherwise, so the figures are not
/// paid for logging.
pub fn trace_if_asked() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("CODITECT_LOG") else {
        return;
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

/// Bytes that do not compress (xorshift), for filling databases to a size: each call
/// continues from `seed`.
pub fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}
