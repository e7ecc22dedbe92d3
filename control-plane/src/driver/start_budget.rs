//! How many instance starts run at once, so that a mass start (a morning's keep-awake
//! windows, a control plane restart, a migration batch) does not starve the workspaces
//! already serving.
//!
//! A start is 10–20 ms of CPU, two thirds of it the kernel making the workspace's files
//! (bench/README.md, issue 13), and a start also waits on its fsyncs. With nobody being
//! served, two starts per core run at once: a cold start of 100 is over soonest. While the
//! gateway is forwarding requests, starts run on half the cores at most and the rest stay
//! for serving. On 2 cores, 100 starts
//! beside 100 serving raised their lock p99 from ~2 ms to 114 ms with 4 starts at once,
//! 8–14 ms with 2 and 6–7 ms with 1; 100 starts alone took 2.6 s at 2 at once and 3.2 s
//! at 1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// A request forwarded this recently means workspaces are being served.
pub const SERVING_WINDOW: Duration = Duration::from_secs(2);

/// The starts under way, paced by whether workspaces are being served.
#[derive(Debug)]
pub struct StartBudget {
    cores: u32,
    permits: Semaphore,
    epoch: Instant,
    /// When the gateway last forwarded a request, in ms since `epoch` plus one (0: never).
    last_forward: AtomicU64,
}

impl StartBudget {
    /// A budget for this machine's cores.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        StartBudget::for_cores(cores)
    }

    /// A budget for `cores` cores.
    pub fn for_cores(cores: u32) -> Self {
        let cores = cores.max(1);
        StartBudget {
            cores,
            permits: Semaphore::new(2 * cores as usize),
            epoch: Instant::now(),
            last_forward: AtomicU64::new(0),
        }
    }

    /// The gateway forwards a request to a running instance.
    pub fn forwarded(&self) {
        let now = self.millis(Instant::now());
        self.last_forward.store(now + 1, Ordering::Relaxed);
    }

    /// Whether a request was forwarded within [`SERVING_WINDOW`] before `now`.
    pub fn serving(&self, now: Instant) -> bool {
        match self.last_forward.load(Ordering::Relaxed) {
            0 => false,
            last => (self.millis(now) + 1).saturating_sub(last) <= window_ms(),
        }
    }

    /// Waits for room to start one instance; the start holds the permit until its
    /// instance answers.
    pub async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        let want = permits_per_start(self.cores, self.serving(Instant::now()));
        self.permits.acquire_many(want).await.ok()
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for StartBudget {
    fn default() -> Self {
        StartBudget::new()
    }
}

fn window_ms() -> u64 {
    u64::try_from(SERVING_WINDOW.as_millis()).unwrap_or(u64::MAX)
}

/// The permits (out of two per core) one start takes: one while nobody is served, so
/// two starts per core run at once; while workspaces are served, as many as leave room
/// for starts on half the cores (at least one start).
pub fn permits_per_start(cores: u32, serving: bool) -> u32 {
    let total = 2 * cores.max(1);
    if serving {
        total / (cores / 2).max(1)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn starts_use_every_core_when_idle_and_half_while_serving() {
        // Idle: two per core at once (one permit of 2 × cores each).
        assert_eq!(permits_per_start(2, false), 1);
        // Serving: on 2 cores one at a time (4 of 4), on 8 four at once (4 of 16).
        assert_eq!(permits_per_start(2, true), 4);
        assert_eq!(permits_per_start(8, true), 4);
        // A single core starts one at a time (2 of 2), and so do 3 cores (6 of 6).
        assert_eq!(permits_per_start(1, true), 2);
        assert_eq!(permits_per_start(3, true), 6);
    }

    #[test]
    fn serving_means_a_request_forwarded_within_the_window() {
        let b = StartBudget::for_cores(2);
        let t0 = b.epoch;
        assert!(!b.serving(t0 + Duration::from_secs(60)), "never forwarded");
        b.forwarded();
        let at = b.epoch + Duration::from_millis(b.last_forward.load(Ordering::Relaxed) - 1);
        assert!(b.serving(at));
        assert!(b.serving(at + SERVING_WINDOW));
        assert!(!b.serving(at + SERVING_WINDOW + Duration::from_millis(1)));
    }

    #[tokio::test]
    async fn while_serving_two_cores_start_one_instance_at_a_time() {
        let b = StartBudget::for_cores(2);
        let idle: Vec<_> = (0..4).map(|_| b.permits.try_acquire().unwrap()).collect();
        assert!(
            b.permits.try_acquire().is_err(),
            "idle: four starts at once, not five"
        );
        drop(idle);
        let idle_first = b.acquire().await.unwrap();
        assert_eq!(
            b.permits.available_permits(),
            3,
            "idle: a start takes one permit"
        );
        drop(idle_first);
        b.forwarded();
        let serving_first = b.acquire().await.unwrap();
        assert!(
            b.permits.try_acquire().is_err(),
            "serving: the first start holds every permit"
        );
        drop(serving_first);
        assert_eq!(b.permits.available_permits(), 4);
    }
}
