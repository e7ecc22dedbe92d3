//! Prometheus metrics of one workspace instance, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-agent series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabel {
    /// The agent's name.
    pub agent: String,
}

/// The instance's metrics; every field is safe to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Seconds from a lock request to its grant.
    pub lock_wait: Histogram,
    /// Seconds a lock was held (grant to release or expiry).
    pub lock_hold: Histogram,
    /// Seconds from a task's submission to its start.
    pub task_start: Histogram,
    /// Seconds from an event append to its durability.
    pub event_append: Histogram,
    /// Tasks queued per agent.
    pub queue_depth: Family<AgentLabel, Gauge>,
    /// Seconds the bucket is behind the workspace (0 when everything is shipped).
    pub sync_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Objects uploaded.
    pub sync_uploads: prometheus_client::metrics::counter::Counter,
    /// Bytes uploaded.
    pub sync_bytes: prometheus_client::metrics::counter::Counter,
    /// Seconds the hot mirror is behind the bucket (0 when it holds the newest manifest).
    pub sync_mirror_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Objects copied to the mirror.
    pub sync_mirror_uploads: prometheus_client::metrics::counter::Counter,
    /// Bytes copied to the mirror.
    pub sync_mirror_bytes: prometheus_client::metrics::counter::Counter,
    /// Writes refused because the disk is full (answered 507).
    pub disk_full: prometheus_client::metrics::counter::Counter,
    /// When a write was last refused for a full disk (unix ms; 0: never).
    pub disk_full_at: Gauge,
    /// Live-query connections reset because their queue overflowed.
    pub live_query_resets: prometheus_client::metrics::counter::Counter,
    /// What keeps the workspace awake, by fact (`connections`, `tasks_open`,
    /// `model_calls_in_flight`, `locks_held`, `keep_alive`), set when metrics are read.
    pub activity: Family<FactLabel, Gauge>,
    /// The last client request (unix seconds).
    pub last_activity: Gauge,
}

/// The label of an activity fact.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct FactLabel {
    /// Which fact.
    pub fact: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        // 10 µs … ~40 s in ×2 steps.
        let buckets = || Histogram::new(exponential_buckets(0.000_01, 2.0, 22));
        let mut m = Metrics {
            registry: Registry::with_prefix("coditect"),
            lock_wait: buckets(),
            lock_hold: buckets(),
            task_start: buckets(),
            event_append: buckets(),
            queue_depth: Family::default(),
            sync_lag: Gauge::default(),
            sync_uploads: Default::default(),
            sync_bytes: Default::default(),
            sync_mirror_lag: Gauge::default(),
            sync_mirror_uploads: Default::default(),
            sync_mirror_bytes: Default::default(),
            disk_full: Default::default(),
            disk_full_at: Gauge::default(),
            live_query_resets: Default::default(),
            activity: Family::default(),
            last_activity: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "lock_wait_seconds",
            "Time from a lock request to its grant",
            m.lock_wait.clone(),
        );
        r.register(
            "lock_hold_seconds",
            "Time a lock was held",
            m.lock_hold.clone(),
        );
        r.register(
            "task_start_seconds",
            "Time from task submission to start",
            m.task_start.clone(),
        );
        r.register(
            "event_append_seconds",
            "Time from event append to durability",
            m.event_append.clone(),
        );
        r.register(
            "task_queue_depth",
            "Tasks queued per agent",
            m.queue_depth.clone(),
        );
        r.register(
            "sync_lag_seconds",
            "Seconds the bucket is behind the workspace (0 when all is shipped)",
            m.sync_lag.clone(),
        );
        r.register(
            "activity",
            "What keeps the workspace awake, by fact (0: not this)",
            m.activity.clone(),
        );
        r.register(
            "last_activity_timestamp_seconds",
            "The last client request, unix seconds",
            m.last_activity.clone(),
        );
        r.register(
            "sync_uploads",
            "Objects uploaded to the bucket",
            m.sync_uploads.clone(),
        );
        r.register(
            "sync_upload_bytes",
            "Bytes uploaded to the bucket",
            m.sync_bytes.clone(),
        );
        r.register(
            "sync_mirror_lag_seconds",
            "Seconds the hot mirror is behind the bucket (0 when it holds the newest manifest)",
            m.sync_mirror_lag.clone(),
        );
        r.register(
            "sync_mirror_uploads",
            "Objects copied to the hot mirror",
            m.sync_mirror_uploads.clone(),
        );
        r.register(
            "sync_mirror_upload_bytes",
            "Bytes copied to the hot mirror",
            m.sync_mirror_bytes.clone(),
        );
        r.register(
            "disk_full_refusals",
            "Writes refused because the workspace's disk is full",
            m.disk_full.clone(),
        );
        r.register(
            "live_query_resets",
            "Live-query connections reset because they read too slowly to keep their queue from filling",
            m.live_query_resets.clone(),
        );
        m
    }
}

impl Metrics {
    /// Sets the activity gauges from `facts`.
    pub fn observe_activity(&self, facts: &crate::activity::ActivityFacts) {
        for (fact, n) in [
            ("connections", facts.connections),
            ("tasks_open", facts.tasks_open),
            ("model_calls_in_flight", facts.model_calls_in_flight),
            ("locks_held", facts.locks_held),
            ("keep_alive", i64::from(facts.keep_alive_until.is_some())),
        ] {
            self.activity.get_or_create(&FactLabel { fact }).set(n);
        }
        self.last_activity
            .set(i64::try_from(facts.last_activity_ms / 1000).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("metrics encoding failed");
        }
        out
    }
}
