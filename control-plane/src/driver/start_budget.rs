//! How many instance starts run at once, so that a mass start (a morning's keep-awake
//! windows, a control plane restart, a migration batch) does not starve the workspaces
//! already serving.
//!
//! A start is 10–20 ms of CPU, two thirds of it the kernel making the workspace's files
//! (bench/README.md, issue 13), and a start also waits on its fsyncs. With nobody being
//! served, two starts per core run at once: a cold start of 100 is over soonest. While the
//! gateway is forwarding requests, starts run on half the cores at most and the rest stay
//! for serving. On 2 cores, 100 starts beside 100 serving raised their lock p99 from
//! ~2 ms to 114 ms with 4 starts at once, 8–14 ms with 2 and 6–7 ms with 1; 100 starts
//! alone took 2.4 s at 4 at once, 2.7 s at 2 and 3.3 s at 1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// A request forwarded this recently means workspaces are being served.
pub const SERVING_WINDOW: Duration = Duration::from_secs(2);

/// The starts under way, paced by whether workspaces are being served.
#[derive(Debug)]
pub struct StartBudget {
    /// Starts at once with nobody served: [`at_once`] of the cores, idle.
    starts: Semaphore,
    /// Of those, the ones that may run while workspaces are served.
    beside_serving: Semaphore,
    epoch: Instant,
    /// When the gateway last forwarded a request, in ms since `epoch` plus one (0: never).
    last_forward: AtomicU64,
}

/// Room for one start: held until its instance answers.
#[derive(Debug)]
pub struct StartPermit<'a> {
    _start: SemaphorePermit<'a>,
    _beside_serving: Option<SemaphorePermit<'a>>,
}

impl StartBudget {
    /// A budget for this machine's cores.
    pub fn new() -> Self {
        StartBudget::for_cores(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// A budget for `cores` cores.
    pub fn for_cores(cores: usize) -> Self {
        StartBudget {
            starts: Semaphore::new(at_once(cores, false)),
            beside_serving: Semaphore::new(at_once(cores, true)),
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

    /// Waits for room to start one instance. Whether workspaces are served is asked when
    /// the start's turn comes, not when it joined the queue: a restart's 100 queued
    /// starts slow down as soon as the first workspaces are used. The two semaphores are
    /// always taken in the same order, so no two starts wait on each other.
    pub async fn acquire(&self) -> Option<StartPermit<'_>> {
        let start = self.starts.acquire().await.ok()?;
        let beside_serving = if self.serving(Instant::now()) {
            Some(self.beside_serving.acquire().await.ok()?)
        } else {
            None
        };
        Some(StartPermit {
            _start: start,
            _beside_serving: beside_serving,
        })
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

/// Starts at once on `cores` cores: two per core while nobody is served, half the cores
/// (at least one start) while workspaces are.
pub fn at_once(cores: usize, serving: bool) -> usize {
    let cores = cores.max(1);
    if serving {
        (cores / 2).max(1)
    } else {
        2 * cores
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn starts_use_every_core_when_idle_and_half_while_serving() {
        assert_eq!(at_once(2, false), 4);
        assert_eq!(at_once(2, true), 1);
        assert_eq!(at_once(8, true), 4);
        assert_eq!(at_once(1, true), 1);
        assert_eq!(at_once(0, false), 2);
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

    /// Whether `fut` is still waiting after being polled once (nothing else runs
    /// meanwhile, so "waiting" is exact, not a timing guess).
    async fn waits<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> bool {
        futures_util::poll!(fut).is_pending()
    }

    #[tokio::test]
    async fn idle_four_starts_run_at_once_and_while_serving_one() {
        let b = StartBudget::for_cores(2);
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(b.acquire().await.unwrap());
        }
        let mut fifth = std::pin::pin!(b.acquire());
        assert!(waits(fifth.as_mut()).await, "idle: a fifth start waits");
        drop(idle);
        drop(fifth.await);
        b.forwarded();
        let first = b.acquire().await.unwrap();
        let mut second = std::pin::pin!(b.acquire());
        assert!(
            waits(second.as_mut()).await,
            "serving: a second start waits"
        );
        drop(first);
        assert!(second.await.is_some(), "and goes when the first is done");
    }

    #[tokio::test]
    async fn a_queued_start_asks_about_serving_when_its_turn_comes() {
        let b = StartBudget::for_cores(2);
        let mut running: Vec<_> = (0..4).map(|_| b.starts.try_acquire().unwrap()).collect();
        let mut queued = std::pin::pin!(b.acquire());
        assert!(
            waits(queued.as_mut()).await,
            "nobody served, but every start permit is taken"
        );
        // By its turn workspaces are served, and the one slot beside them is taken.
        b.forwarded();
        let serving_slot = b.beside_serving.try_acquire().unwrap();
        running.pop();
        assert!(
            waits(queued.as_mut()).await,
            "its turn came while serving: it waits for the slot"
        );
        drop(serving_slot);
        assert!(queued.await.is_some());
    }
}
