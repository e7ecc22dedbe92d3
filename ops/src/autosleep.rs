//! The auto-sleeper: every few seconds, asks each awake workspace's instance what keeps
//! it awake, applies the idleness rule ([`crate::idle`]), and asks the control plane to
//! put idle ones to sleep; it also wakes sleeping workspaces ahead of their keep-awake
//! windows, spread out so a window that opens for hundreds of workspaces at 08:00 does
//! not start them all in the same second.
//!
//! It only states wishes (`status.sleep`, through [`coditect_control_plane::sleep`]); the
//! Workspace reconciler carries them out, and refuses to sleep with unsaved work. A pass
//! takes the time as an argument, so tests drive it with a clock they control.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use coditect_control_plane::access::{AuditLog, Entry, Identity, Outcome};
use coditect_control_plane::driver::InstanceTokens;
use coditect_control_plane::resource_store::ResourceStore;
use coditect_control_plane::selector::LabelSelector;
use coditect_control_plane::sleep::{request_sleep, request_wake};
use coditect_control_plane::store::Store;
use coditect_control_plane::up::ControlPlane;
use coditect_runtime::activity::{ActivityFacts, PROBE_HEADER};
use coditect_specs::workspace::AutoSleepPolicy;
use coditect_specs::{Kind, ObjectKey, Resource, Workspace};
use jiff::Timestamp;

use crate::idle::{Verdict, idle};
use crate::schedule::next_opening;

/// Who the auto-sleeper is in the audit trail and in `status.sleep.by`.
pub const AUTO_SLEEP: &str = "auto-sleep";

/// What one pass did to one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Asked it to sleep, for this reason.
    Slept(String),
    /// Left it awake, for this reason.
    Kept(String),
    /// Woke it ahead of its keep-awake window.
    Woke,
}

/// The auto-sleeper of one control plane: the embedded one (its SQLite [`Store`], steps
/// in the audit trail) or the Kubernetes operator (steps as Events on the Workspace).
#[derive(Debug, Clone)]
pub struct AutoSleeper<S: ResourceStore = Store> {
    store: Arc<S>,
    instances: Arc<dyn InstanceTokens>,
    nudge: tokio::sync::mpsc::UnboundedSender<ObjectKey>,
    audit: Option<AuditLog>,
    http: reqwest::Client,
    /// Wakes start this long before a window opens…
    pub lead: Duration,
    /// …spread over this long (by a hash of the workspace's name, stable across passes).
    pub spread: Duration,
}

impl AutoSleeper {
    /// The auto-sleeper of `cp`, waking workspaces 10 minutes ahead of their windows,
    /// spread over 8 minutes, its steps in `cp`'s audit trail.
    pub fn new(cp: &ControlPlane) -> Self {
        let mut sleeper =
            AutoSleeper::over(cp.store.clone(), cp.instances.clone(), cp.nudge.clone());
        sleeper.audit = Some(cp.access.audit.clone());
        sleeper
    }
}

impl<S: ResourceStore> AutoSleeper<S> {
    /// An auto-sleeper over any store (the operator's is the Kubernetes API): `instances`
    /// knows each instance's token, `nudge` asks the reconciler to act on a wish now.
    /// Its steps are recorded as events on the workspace.
    pub fn over(
        store: Arc<S>,
        instances: Arc<dyn InstanceTokens>,
        nudge: tokio::sync::mpsc::UnboundedSender<ObjectKey>,
    ) -> Self {
        AutoSleeper {
            store,
            instances,
            nudge,
            audit: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            lead: Duration::from_secs(600),
            spread: Duration::from_secs(480),
        }
    }

    /// Runs a pass every `every` until dropped (abort the task to stop it).
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.pass(Timestamp::now()).await;
        }
    }

    /// One look at every workspace, as of `now`.
    pub async fn pass(&self, now: Timestamp) -> Vec<(ObjectKey, Step)> {
        let Ok(all) = self
            .store
            .list(Some(Kind::Workspace), None, &LabelSelector::default())
            .await
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r in all {
            let Resource::Workspace(ws) = r else { continue };
            if ws.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let key = Resource::Workspace(ws.clone()).key();
            if let Some(step) = self.look(&key, &ws, now).await {
                out.push((key, step));
            }
        }
        out
    }

    async fn look(&self, key: &ObjectKey, ws: &Workspace, now: Timestamp) -> Option<Step> {
        let policy = ws.spec.auto_sleep.clone().unwrap_or_default();
        let status = ws.status.clone().unwrap_or_default();
        if let Some(sleep) = &status.sleep {
            // Only what auto-sleep put to sleep is woken by the schedule; a sleep by hand
            // lasts until a wake by hand or a connection.
            if sleep.by != AUTO_SLEEP || !self.window_is_near(key, &policy, now) {
                return None;
            }
            request_wake(&*self.store, key).await.ok()?;
            let _ = self.nudge.send(key.clone());
            self.record(key, "wake", "ahead of its keep-awake window")
                .await;
            return Some(Step::Woke);
        }
        if status.phase.as_deref() != Some("Running") {
            return None;
        }
        let facts = self.facts(key, status.endpoint.as_deref()?).await?;
        let verdict = idle(&facts, &policy, now)
            .unwrap_or_else(|e| Verdict::Keep(format!("the schedule cannot be read: {e}")));
        match verdict {
            Verdict::Sleep(reason) => {
                request_sleep(&*self.store, key, AUTO_SLEEP, &reason)
                    .await
                    .ok()?;
                let _ = self.nudge.send(key.clone());
                tracing::info!(workspace = %key, %reason, "auto-sleep");
                self.record(key, "sleep", &reason).await;
                Some(Step::Slept(reason))
            }
            Verdict::Keep(why) => {
                if status.awake_because.as_deref() != Some(why.as_str()) {
                    let because = why.clone();
                    let _ = self
                        .store
                        .update(key, move |r| {
                            if let Resource::Workspace(w) = r {
                                w.status.get_or_insert_with(Default::default).awake_because =
                                    Some(because);
                            }
                        })
                        .await;
                }
                Some(Step::Kept(why))
            }
        }
    }

    /// Whether a keep-awake window opens soon enough for this workspace to be woken now:
    /// at `lead` before it opens, plus the workspace's own offset within `spread`.
    fn window_is_near(&self, key: &ObjectKey, policy: &AutoSleepPolicy, now: Timestamp) -> bool {
        let Some(schedule) = policy.schedule.as_ref().filter(|_| policy.enabled) else {
            return false;
        };
        let Ok(Some(opening)) = next_opening(schedule, now) else {
            return false;
        };
        now.as_millisecond() >= wake_at(key, opening, self.lead, self.spread).as_millisecond()
    }

    /// The instance's activity facts, asked as a probe (which is not activity itself).
    async fn facts(&self, key: &ObjectKey, endpoint: &str) -> Option<ActivityFacts> {
        let token = self.instances.token(key)?;
        let status: serde_json::Value = self
            .http
            .get(format!("{endpoint}/v1/status"))
            .bearer_auth(token)
            .header(PROBE_HEADER, "1")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        serde_json::from_value(status["activity"].clone()).ok()
    }

    async fn record(&self, key: &ObjectKey, action: &str, detail: &str) {
        let Some(audit) = &self.audit else {
            let reason = if action == "sleep" {
                "AutoSleep"
            } else {
                "AutoWake"
            };
            self.store.record_event(key, "Normal", reason, detail).await;
            return;
        };
        let who = Identity {
            user: AUTO_SLEEP.into(),
            token_id: String::new(),
            cluster_admin: true,
        };
        let entry = Entry {
            who: &who,
            action,
            objects: vec![key.to_string()],
            outcome: Outcome::Ok,
            detail: Some(detail.to_string()),
        };
        if let Err(e) = audit.record(entry).await {
            tracing::warn!(error = %e, "audit trail: auto-sleep entry not written");
        }
    }
}

/// When `key` is woken for a keep-awake window that opens at `opening`: `lead` before it,
/// plus the workspace's own offset within `spread`, from a hash of its key (the same in
/// every pass), so hundreds of workspaces with the same window do not start in the same
/// second.
pub fn wake_at(key: &ObjectKey, opening: Timestamp, lead: Duration, spread: Duration) -> Timestamp {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    let spread = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX).max(1);
    let offset = i64::try_from(h.finish() % spread).unwrap_or(0);
    let lead = i64::try_from(lead.as_millis()).unwrap_or(i64::MAX);
    let at = opening
        .as_millisecond()
        .saturating_sub(lead)
        .saturating_add(offset);
    Timestamp::from_millisecond(at).unwrap_or(opening)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(n: usize) -> ObjectKey {
        ObjectKey {
            kind: Kind::Workspace,
            organization: Some("acme".into()),
            name: format!("ws-{n}"),
        }
    }

    #[test]
    fn wakes_for_one_window_are_spread_before_it_opens() {
        let opening: Timestamp = "2026-12-07T07:00:00Z".parse().unwrap();
        let (lead, spread) = (Duration::from_secs(600), Duration::from_secs(480));
        let first = opening.as_millisecond() - 600_000;
        let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
        for n in 0..500 {
            let at = wake_at(&key(n), opening, lead, spread);
            assert_eq!(
                at,
                wake_at(&key(n), opening, lead, spread),
                "stable across passes"
            );
            let ms = at.as_millisecond();
            assert!(
                (first..first + 480_000).contains(&ms),
                "{n}: {at} outside the spread"
            );
            assert!(at < opening, "{n} is woken after its window opened");
            *per_second.entry((ms - first) / 1000).or_default() += 1;
        }
        // 500 over 480 s is about one a second; none of the seconds takes a crowd.
        let busiest = per_second.values().max().copied().unwrap();
        assert!(busiest <= 8, "{busiest} wakes in one second");
        assert!(
            per_second.len() > 250,
            "only {} distinct seconds",
            per_second.len()
        );
    }
}
