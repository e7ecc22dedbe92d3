//! Start-up and sync work gives way to serving.
//!
//! When many workspaces start at once (a morning's keep-awake windows, a control plane
//! restart, a migration batch), each start creates its folders, six databases and the
//! event log, and then ships its first snapshot. On a shared machine that work queues the
//! requests of the workspaces already serving behind it: 100 starts on 2 cores raised
//! their lock p99 from ~2 ms to over 100 ms (bench/README.md, issue 13). So that work runs
//! on threads of its own at a lower CPU priority, nice [`BACKGROUND_NICE`] (or [`NICE_VARIABLE`]). Idle cores
//! still run it at full speed; busy ones serve first. Nothing is skipped or deferred, so
//! durability is as before: an acknowledged write is on disk before the answer.
//!
//! Nice is per thread on Linux, and an unprivileged thread cannot raise it back. So a
//! lowered thread is never one of the runtime's serving threads:
//! - [`off_serving`] runs one closure on a fresh thread that ends with it;
//! - [`BackgroundRuntime`] runs a future (sync) on a thread of its own with a
//!   current-thread runtime, at the priority it has: sync holds a database's writer while
//!   it snapshots, and its rounds bound what a lost machine loses, so it does not yield
//!   (lowering its uploads let a loaded run lose 1.3 s of acknowledged writes against a
//!   1 s interval, `tests/sync_disaster.rs`).

use std::future::Future;

/// The nice value of start-up and sync work: a thread at 10 gets about a tenth of the
/// CPU of one at 0 when both want it.
pub const BACKGROUND_NICE: i32 = 10;

/// Sets the nice value of start-up and sync work instead (0 turns the lowering off).
pub const NICE_VARIABLE: &str = "CODITECT_BACKGROUND_NICE";

/// The nice value start-up and sync work runs at: [`NICE_VARIABLE`] when it is set to a
/// number from 0 to 19, else [`BACKGROUND_NICE`].
pub fn background_nice() -> i32 {
    nice_from(std::env::var(NICE_VARIABLE).ok().as_deref())
}

fn nice_from(value: Option<&str>) -> i32 {
    value
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|n| (0..=19).contains(n))
        .unwrap_or(BACKGROUND_NICE)
}

/// Why work could not be run off the serving path.
#[derive(Debug, thiserror::Error)]
pub enum PriorityError {
    /// The thread could not be started.
    #[error("start the {name} thread: {source}")]
    Spawn {
        /// The thread's name.
        name: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The work panicked.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

/// Lowers the calling thread to [`background_nice`] (never raises it). Where the system
/// refuses, the work runs at the priority it has, and the debug log says why.
pub fn lower_this_thread() {
    let nice = background_nice();
    let tid = rustix::thread::gettid();
    if rustix::process::getpriority_process(Some(tid)).is_ok_and(|n| n >= nice) {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::debug!(error = %e, "could not lower the priority of start-up work");
    }
}

/// The calling thread's nice value.
pub fn this_thread_nice() -> Option<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok()
}

/// Runs `work` on a fresh thread at [`background_nice`], inside the caller's Tokio
/// runtime (so `work` may spawn tasks; they run on the serving threads), and awaits it.
///
/// # Errors
/// [`PriorityError`] when the thread cannot start or `work` panics.
pub async fn off_serving<T, F>(name: &'static str, work: F) -> Result<T, PriorityError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_this_thread();
            let _inside = handle.enter();
            let _ = tx.send(work());
        })
        .map_err(|source| PriorityError::Spawn { name, source })?;
    rx.await.map_err(|_| PriorityError::Panicked(name))
}

/// A future running on a thread of its own, with its own current-thread runtime (timers,
/// I/O and blocking threads of its own), at the priority of the thread that spawns it:
/// sync's rounds bound what a lost machine loses, so they are not lowered.
#[derive(Debug)]
pub struct BackgroundRuntime<T> {
    name: &'static str,
    done: tokio::sync::oneshot::Receiver<Result<T, PriorityError>>,
}

impl<T: Send + 'static> BackgroundRuntime<T> {
    /// Starts `make()`'s future on the `name` thread. `make` runs on that thread, so the
    /// future itself need not be `Send`. Its blocking threads are named `{name}-blocking`.
    ///
    /// # Errors
    /// [`PriorityError::Spawn`] when the thread cannot start; a runtime that cannot be
    /// built is the same error, from [`BackgroundRuntime::join`].
    pub fn spawn<F, M>(name: &'static str, make: M) -> Result<Self, PriorityError>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future<Output = T>,
    {
        let (tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // Built here, not on the caller's thread: a runtime dropped inside the
                // caller's async context (the thread failing to start) would panic.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name(format!("{name}-blocking"))
                    .build();
                let out = match runtime {
                    Ok(runtime) => Ok(runtime.block_on(make())),
                    Err(source) => Err(PriorityError::Spawn { name, source }),
                };
                let _ = tx.send(out);
            })
            .map_err(|source| PriorityError::Spawn { name, source })?;
        Ok(BackgroundRuntime { name, done })
    }

    /// Waits for the future's output.
    ///
    /// # Errors
    /// [`PriorityError::Panicked`] when it panicked, [`PriorityError::Spawn`] when its
    /// runtime could not be built.
    pub async fn join(self) -> Result<T, PriorityError> {
        self.done
            .await
            .map_err(|_| PriorityError::Panicked(self.name))?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn start_up_work_runs_lowered_and_the_serving_thread_keeps_its_priority() {
        let before = this_thread_nice().unwrap();
        let (nice, spawned_nice) = off_serving("start-up", || {
            let nice = this_thread_nice();
            // A task spawned from the lowered thread runs on the runtime's own threads.
            let spawned = tokio::spawn(async { this_thread_nice() });
            (nice, spawned)
        })
        .await
        .unwrap();
        assert_eq!(nice, Some(background_nice().max(before)));
        assert_eq!(spawned_nice.await.unwrap(), Some(before));
        assert_eq!(this_thread_nice(), Some(before));
    }

    #[tokio::test]
    async fn a_background_runtime_lowers_its_blocking_threads_not_its_driver() {
        let before = this_thread_nice().unwrap();
        let bg = BackgroundRuntime::spawn("sync", || async {
            let own = this_thread_nice();
            let blocking = tokio::task::spawn_blocking(|| {
                (
                    std::thread::current().name().map(str::to_string),
                    this_thread_nice(),
                )
            })
            .await
            .unwrap();
            (own, blocking)
        })
        .unwrap();
        let (own, (name, blocking)) = bg.join().await.unwrap();
        assert_eq!(
            own,
            Some(before),
            "the thread holding database writers is not lowered"
        );
        assert_eq!(name.as_deref(), Some("sync-blocking"));
        // Sync keeps serving priority throughout: its rounds bound the data a lost
        // machine loses (tests/sync_disaster.rs), so they do not yield.
        assert_eq!(blocking, Some(before));
        assert_eq!(this_thread_nice(), Some(before));
    }

    #[test]
    fn the_nice_value_can_be_set_or_turned_off_but_not_raised_above_serving() {
        assert_eq!(nice_from(None), BACKGROUND_NICE);
        assert_eq!(nice_from(Some("0")), 0);
        assert_eq!(nice_from(Some(" 19 ")), 19);
        // A negative value would ask for more than serving has: ignored, as is nonsense.
        assert_eq!(nice_from(Some("-5")), BACKGROUND_NICE);
        assert_eq!(nice_from(Some("20")), BACKGROUND_NICE);
        assert_eq!(nice_from(Some("low")), BACKGROUND_NICE);
    }

    #[tokio::test]
    async fn a_panic_in_start_up_work_is_an_error_not_a_hang() {
        let out = off_serving("start-up", || -> u8 { panic!("boom") }).await;
        assert!(matches!(out, Err(PriorityError::Panicked("start-up"))));
    }
}
