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
}
