//! What the bucket is asked to do, counted as the bill counts it: every call through a
//! [`super::Bucket`] is tallied by GCS operation class (uploads and lists are class A,
//! reads class B, deletes free) with the bytes read back, and the instance's log volume is
//! tallied beside it. The replicator folds the tallies into the manifest's per-day usage
//! record at every publish, so the counts survive restarts and a freed local disk, and the
//! cost report reads measured operations instead of assuming them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Objects a GCS list returns per page (each page is one class A operation).
pub const LIST_PAGE: u64 = 1000;

/// Bytes the process has written to its log (stderr), for the log volume.
static LOG_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts `n` bytes written to the process's log.
pub fn count_log_bytes(n: usize) {
    LOG_BYTES.fetch_add(n as u64, Ordering::Relaxed);
}

/// A bucket's operation tally since the last [`OpMeter::take`].
#[derive(Debug, Default)]
pub struct OpMeter {
    class_a: AtomicU64,
    class_b: AtomicU64,
    free: AtomicU64,
    read_bytes: AtomicU64,
    log_bytes_taken: AtomicU64,
}

/// Operations and bytes over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayUsage {
    /// Uploads, lists and other writes (class A).
    #[serde(default)]
    pub class_a: u64,
    /// Reads and metadata gets (class B).
    #[serde(default)]
    pub class_b: u64,
    /// Deletes (free).
    #[serde(default)]
    pub free: u64,
    /// Bytes read back from the bucket (restores).
    #[serde(default)]
    pub read_bytes: u64,
    /// Bytes the instance logged.
    #[serde(default)]
    pub log_bytes: u64,
    /// Bytes of the objects the manifest kept, at the day's last publish.
    #[serde(default)]
    pub stored_bytes: u64,
}

impl DayUsage {
    /// Adds the counters of `other` (not `stored_bytes`, a level, not a flow).
    pub fn add_flows(&mut self, other: &DayUsage) {
        self.class_a += other.class_a;
        self.class_b += other.class_b;
        self.free += other.free;
        self.read_bytes += other.read_bytes;
        self.log_bytes += other.log_bytes;
    }
}

/// Per UTC day (`YYYY-MM-DD`), what the workspace's instances did.
pub type UsageRecord = BTreeMap<String, DayUsage>;

/// Days of usage the manifest keeps (about 13 months: a year and its month of comparison).
pub const KEEP_DAYS: usize = 400;

impl OpMeter {
    /// An upload or a write (class A).
    pub fn class_a(&self, n: u64) {
        self.class_a.fetch_add(n, Ordering::Relaxed);
    }

    /// A read of `bytes` bytes (class B).
    pub fn read(&self, bytes: u64) {
        self.class_b.fetch_add(1, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A list that returned `objects` objects (class A per page).
    pub fn list(&self, objects: usize) {
        self.class_a(((objects as u64).div_ceil(LIST_PAGE)).max(1));
    }

    /// A delete (free).
    pub fn delete(&self) {
        self.free.fetch_add(1, Ordering::Relaxed);
    }

    /// Operations (of any class) since the last take.
    pub fn pending(&self) -> u64 {
        self.class_a.load(Ordering::Relaxed)
            + self.class_b.load(Ordering::Relaxed)
            + self.free.load(Ordering::Relaxed)
    }

    /// The tally since the last take (log bytes included), and a fresh start.
    pub fn take(&self) -> DayUsage {
        let logged = LOG_BYTES.load(Ordering::Relaxed);
        let before = self.log_bytes_taken.swap(logged, Ordering::Relaxed);
        DayUsage {
            class_a: self.class_a.swap(0, Ordering::Relaxed),
            class_b: self.class_b.swap(0, Ordering::Relaxed),
            free: self.free.swap(0, Ordering::Relaxed),
            read_bytes: self.read_bytes.swap(0, Ordering::Relaxed),
            log_bytes: logged.saturating_sub(before),
            stored_bytes: 0,
        }
    }
}

/// The UTC day of `ms` since the epoch, `YYYY-MM-DD`.
pub fn day_of(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d")
        .to_string()
}

/// Adds `delta` to `day` in `record`, sets the day's stored bytes, and drops days beyond
/// [`KEEP_DAYS`].
pub fn fold(record: &mut UsageRecord, day: String, delta: &DayUsage, stored_bytes: u64) {
    let entry = record.entry(day).or_default();
    entry.add_flows(delta);
    entry.stored_bytes = stored_bytes;
    while record.len() > KEEP_DAYS {
        record.pop_first();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn operations_are_classed_as_gcs_bills_them() {
        let m = OpMeter::default();
        m.class_a(2);
        m.list(0);
        m.list(2500); // three pages
        m.read(100);
        m.read(50);
        m.delete();
        let t = m.take();
        assert_eq!((t.class_a, t.class_b, t.free, t.read_bytes), (6, 2, 1, 150));
        assert_eq!(m.take().class_a, 0, "a take starts afresh");
    }

    #[test]
    fn a_fold_adds_flows_sets_the_level_and_keeps_a_bounded_history() {
        let mut r = UsageRecord::new();
        let d = DayUsage {
            class_a: 3,
            class_b: 1,
            ..DayUsage::default()
        };
        fold(&mut r, day_of(0), &d, 10);
        fold(&mut r, day_of(1000), &d, 7);
        assert_eq!(r["1970-01-01"].class_a, 6);
        assert_eq!(r["1970-01-01"].stored_bytes, 7);
        for i in 0..(KEEP_DAYS as u64 + 5) {
            fold(&mut r, day_of(i * 86_400_000), &d, 1);
        }
        assert_eq!(r.len(), KEEP_DAYS);
        assert!(!r.contains_key("1970-01-01"));
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_of(1_764_633_600_000), "2025-12-02");
        assert_eq!(day_of(1_764_633_599_999), "2025-12-01");
    }
}
