//! The reconcile work queue: keyed by object, deduplicated, never running one key twice
//! at once (a key that changes while it is being reconciled runs again afterwards), with
//! delayed requeues for backoff and resync.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coditect_specs::ObjectKey;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<ObjectKey>,
    queued: HashSet<ObjectKey>,
    running: HashSet<ObjectKey>,
    dirty: HashSet<ObjectKey>,
    /// Keys [`WorkQueue::add_soon`] will queue when their delay ends.
    soon: HashSet<ObjectKey>,
}

/// A shared work queue.
#[derive(Debug, Clone, Default)]
pub struct WorkQueue {
    state: Arc<Mutex<State>>,
    ready: Arc<Notify>,
}

impl WorkQueue {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` now (once, however often it is added before it runs).
    pub fn add(&self, key: ObjectKey) {
        let mut st = self.state();
        if st.running.contains(&key) {
            st.dirty.insert(key);
            return;
        }
        if st.queued.insert(key.clone()) {
            st.queue.push_back(key);
            drop(st);
            self.ready.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: ObjectKey, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` once `delay` has passed, unless it is waiting for that already: a
    /// stream of adds within the delay queues it once (a roll-up over every workspace of
    /// an organization, asked for by each of its workspaces' changes, runs at most once
    /// per `delay` however many change).
    pub fn add_soon(&self, key: ObjectKey, delay: Duration) {
        if !self.state().soon.insert(key.clone()) {
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.state().soon.remove(&key);
            q.add(key);
        });
    }

    /// The next key to reconcile; marks it running.
    pub async fn next(&self) -> ObjectKey {
        loop {
            let notified = self.ready.notified();
            {
                let mut st = self.state();
                if let Some(key) = st.queue.pop_front() {
                    st.queued.remove(&key);
                    st.running.insert(key.clone());
                    if !st.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` done; it runs again if it changed meanwhile.
    pub fn done(&self, key: &ObjectKey) {
        let again = {
            let mut st = self.state();
            st.running.remove(key);
            st.dirty.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }

    /// Keys waiting (not running).
    pub fn len(&self) -> usize {
        self.state().queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coditect_specs::Kind;

    fn key(n: &str) -> ObjectKey {
        ObjectKey {
            kind: Kind::Workspace,
            organization: Some("o".into()),
            name: n.into(),
        }
    }

    #[tokio::test]
    async fn dedupes_and_reruns_keys_that_change_while_running() {
        let q = WorkQueue::default();
        q.add(key("a"));
        q.add(key("a"));
        q.add(key("b"));
        assert_eq!(q.len(), 2);
        let a = q.next().await;
        assert_eq!(a, key("a"));
        q.add(key("a")); // changed while running
        assert_eq!(q.len(), 1, "not queued twice while running");
        q.done(&a);
        assert_eq!(q.next().await, key("b"));
        assert_eq!(q.next().await, key("a"), "re-run after the change");
    }

    #[tokio::test(start_paused = true)]
    async fn adds_soon_within_the_delay_queue_the_key_once() {
        let q = WorkQueue::default();
        let delay = Duration::from_millis(250);
        for _ in 0..100 {
            q.add_soon(key("org"), delay);
        }
        assert_eq!(q.len(), 0, "not before the delay");
        tokio::time::sleep(delay).await;
        tokio::task::yield_now().await;
        assert_eq!(q.len(), 1, "once for the hundred adds");
        assert_eq!(q.next().await, key("org"));
        q.done(&key("org"));
        // After it ran, the next add waits its own delay.
        q.add_soon(key("org"), delay);
        assert_eq!(q.len(), 0);
        tokio::time::sleep(delay).await;
        tokio::task::yield_now().await;
        assert_eq!(q.len(), 1);
    }
}
