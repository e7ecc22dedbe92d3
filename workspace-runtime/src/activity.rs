//! What keeps a workspace awake: the facts the auto-sleep rule (in `coditect-ops`) reads.
//!
//! Platforms that count only human connections stop workspaces in the middle of an
//! agent's work. So the instance counts everything that is work: the last client request,
//! open WebSockets, model calls in flight, and a keep-alive a user asked for; tasks and
//! locks are read from their own tables when the facts are taken. The control plane's own
//! probes (`/v1/health`, and requests marked `x-coditect-probe`) are not activity.
//!
//! Counters are atomics (no lock on the request path); guards decrement on drop, so a
//! cancelled request or a panicking model call cannot leave a count behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::clock;

/// The header the control plane's probes carry so they do not count as activity.
pub const PROBE_HEADER: &str = "x-coditect-probe";

/// Live activity counters of one instance.
#[derive(Debug)]
pub struct Activity {
    last_request_ms: AtomicU64,
    connections: AtomicI64,
    model_calls: AtomicI64,
    keep_alive_until_ms: AtomicU64,
}

impl Default for Activity {
    /// An instance that just started counts as active now: a fresh start (a wake) is not
    /// put straight back to sleep.
    fn default() -> Self {
        Activity {
            last_request_ms: AtomicU64::new(clock::now_ms()),
            connections: AtomicI64::new(0),
            model_calls: AtomicI64::new(0),
            keep_alive_until_ms: AtomicU64::new(0),
        }
    }
}

/// Decrements its counter when dropped.
#[derive(Debug)]
pub struct Busy {
    counter: Arc<Activity>,
    which: Which,
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Connection,
    ModelCall,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let c = match self.which {
            Which::Connection => &self.counter.connections,
            Which::ModelCall => &self.counter.model_calls,
        };
        c.fetch_sub(1, Ordering::AcqRel);
        self.counter.touch();
    }
}

impl Activity {
    /// A client request arrived now.
    pub fn touch(&self) {
        self.last_request_ms
            .fetch_max(clock::now_ms(), Ordering::AcqRel);
    }

    /// A WebSocket opened; it counts until the guard drops.
    pub fn connection(self: &Arc<Self>) -> Busy {
        self.connections.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy {
            counter: self.clone(),
            which: Which::Connection,
        }
    }

    /// A model call started; it counts until the guard drops.
    pub fn model_call(self: &Arc<Self>) -> Busy {
        self.model_calls.fetch_add(1, Ordering::AcqRel);
        Busy {
            counter: self.clone(),
            which: Which::ModelCall,
        }
    }

    /// Keeps the workspace awake for `span` from now (a later keep-alive never shortens
    /// an earlier one). Returns until when, in unix ms.
    pub fn keep_alive(&self, span: Duration) -> u64 {
        let until = clock::now_ms() + u64::try_from(span.as_millis()).unwrap_or(u64::MAX / 4);
        self.keep_alive_until_ms.fetch_max(until, Ordering::AcqRel);
        self.touch();
        self.keep_alive_until_ms.load(Ordering::Acquire)
    }

    /// The facts as of now, with the task and lock counts read by the caller.
    pub fn facts(&self, tasks_open: i64, locks_held: usize) -> ActivityFacts {
        let last = self.last_request_ms.load(Ordering::Acquire);
        let keep = self.keep_alive_until_ms.load(Ordering::Acquire);
        let now = clock::now_ms();
        let mut facts = ActivityFacts {
            last_activity_at: clock::rfc3339(last),
            last_activity_ms: last,
            connections: self.connections.load(Ordering::Acquire).max(0),
            tasks_open: tasks_open.max(0),
            model_calls_in_flight: self.model_calls.load(Ordering::Acquire).max(0),
            locks_held: i64::try_from(locks_held).unwrap_or(i64::MAX),
            keep_alive_until: (keep > now).then(|| clock::rfc3339(keep)),
            busy: Vec::new(),
        };
        facts.busy = facts.reasons();
        facts
    }
}

/// What an instance reports about its activity (`status.activity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityFacts {
    /// The last client request (RFC 3339).
    pub last_activity_at: String,
    /// The same, in unix ms.
    pub last_activity_ms: u64,
    /// Open WebSockets.
    pub connections: i64,
    /// Tasks queued or running.
    pub tasks_open: i64,
    /// Model calls waiting for an answer.
    pub model_calls_in_flight: i64,
    /// Leases held.
    pub locks_held: i64,
    /// A keep-alive in force, until when (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_until: Option<String>,
    /// What keeps it busy right now, in words (empty: nothing but recent requests can).
    #[serde(default)]
    pub busy: Vec<String>,
}

impl ActivityFacts {
    /// Each fact that is work in progress, in words.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut say = |n: i64, what: &str| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        say(self.connections, "open WebSocket(s)");
        say(self.tasks_open, "task(s) queued or running");
        say(self.model_calls_in_flight, "model call(s) in flight");
        say(self.locks_held, "lock(s) held");
        if let Some(until) = &self.keep_alive_until {
            out.push(format!("keep-alive until {until}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn guards_count_while_alive_and_release_on_drop() {
        let a = Arc::new(Activity::default());
        let ws = a.connection();
        let call = a.model_call();
        let f = a.facts(2, 1);
        assert_eq!((f.connections, f.model_calls_in_flight), (1, 1));
        assert_eq!(f.busy.len(), 4, "{:?}", f.busy);
        drop(ws);
        drop(call);
        let f = a.facts(0, 0);
        assert_eq!((f.connections, f.model_calls_in_flight), (0, 0));
        assert!(f.busy.is_empty());
    }

    #[test]
    fn a_keep_alive_is_never_shortened() {
        let a = Activity::default();
        let long = a.keep_alive(Duration::from_secs(7200));
        let after_short = a.keep_alive(Duration::from_secs(60));
        assert_eq!(long, after_short);
        assert!(a.facts(0, 0).keep_alive_until.is_some());
    }
}
