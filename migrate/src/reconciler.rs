//! The Migration's reconciler, plugged into the embedded control plane
//! ([`coditect_control_plane::delegated`]). One reconcile is one round over the
//! migration's users:
//!
//! 1. read the export's `users.jsonl`; a newly selected user gets a Pending record;
//! 2. act on what people asked (`promote`, `cutover`, `rollback`, `complete`), then drop
//!    each wish — after the record that says it was done is written;
//! 3. take one step for up to `concurrency` users at once (Pending users are taken on
//!    while fewer than `batchSize` are in flight), each step ending with its record
//!    written;
//! 4. write the status: every selected user counted in exactly one phase, the bytes, the
//!    cutover pauses, and what a person should do next.
//!
//! Then it looks again at once while steps remain, soon while a workspace starts, and
//! every half minute while users wait (for promotion, or for their rollback window to
//! end). Everything it knows is in the store, so a control plane killed at any point
//! carries on where each user was.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use coditect_control_plane::conditions;
use coditect_control_plane::delegated::{
    DelegatedFactory, DelegatedReconciler, Plane, Reconciling,
};
use coditect_control_plane::error::ReconcileError;
use coditect_control_plane::reconcile::Action;
use coditect_specs::{
    ConditionStatus, Kind, Migration, MigrationStatus, ObjectKey, Resource, UserCounts, UserPhase,
};
use futures_util::StreamExt as _;

use crate::error::{MigrateError, Problem};
use crate::export::V1Export;
use crate::record::UserRecord;
use crate::steps::{self, StepContext, Stepped};
#[cfg(test)]
use crate::verify::Grade;

/// How often users who wait (for promotion, for the rollback window) are looked at.
const WAITING: Duration = Duration::from_secs(30);
/// How soon a migration looks again while a workspace it made is starting.
const STARTING: Duration = Duration::from_millis(200);

/// What time it is; a test's clock can be set.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// The Migration reconciler.
pub struct MigrationReconciler {
    plane: Plane,
    http: reqwest::Client,
    clock: Clock,
}

impl std::fmt::Debug for MigrationReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationReconciler")
            .finish_non_exhaustive()
    }
}

impl MigrationReconciler {
    /// What `coditect up` plugs in: the reconciler on the wall clock.
    pub fn factory() -> DelegatedFactory {
        Self::factory_with_clock(Arc::new(jiff::Timestamp::now))
    }

    /// [`MigrationReconciler::factory`] on `clock`.
    pub fn factory_with_clock(clock: Clock) -> DelegatedFactory {
        DelegatedFactory(Arc::new(move |plane: &Plane| {
            Arc::new(MigrationReconciler {
                plane: plane.clone(),
                http: reqwest::Client::new(),
                clock: clock.clone(),
            }) as Arc<dyn DelegatedReconciler>
        }))
    }
}

impl DelegatedReconciler for MigrationReconciler {
    fn kind(&self) -> Kind {
        Kind::Migration
    }

    fn reconcile<'a>(&'a self, key: &'a ObjectKey) -> Reconciling<'a> {
        Box::pin(async move {
            self.round(key)
                .await
                .map_err(|e| ReconcileError::Delegated(e.to_string()))
        })
    }
}

/// The records of `name`, by login.
///
/// # Errors
/// The store did not answer, or a record is not one.
pub fn records(
    store: &coditect_control_plane::store::Store,
    name: &str,
) -> Result<BTreeMap<String, UserRecord>, MigrateError> {
    store
        .migration_users(name)
        .map_err(MigrateError::store)?
        .into_iter()
        .map(|(login, v)| {
            serde_json::from_value(v)
                .map(|r| (login.clone(), r))
                .map_err(|e| MigrateError::store(format!("record of {login}: {e}")))
        })
        .collect()
}

impl MigrationReconciler {
    fn now(&self) -> String {
        (self.clock)().to_string()
    }

    async fn round(&self, key: &ObjectKey) -> Result<Action, MigrateError> {
        let store = &self.plane.store;
        let Some(Resource::Migration(m)) = store.get(key).map_err(MigrateError::store)? else {
            return Ok(Action::AwaitChange);
        };
        let m = Arc::new(m);
        let name = m.metadata.name.clone();
        let export = match V1Export::open(&m.spec.source.export).await {
            Ok(e) => e,
            Err(e) => return self.cannot_read(key, &m, &e).await,
        };
        let (users, problems) = match export.users().await {
            Ok(u) => u,
            Err(e) => return self.cannot_read(key, &m, &e).await,
        };
        let mut records = records(store, &name)?;
        let cx = StepContext {
            plane: self.plane.clone(),
            http: self.http.clone(),
            migration: m.clone(),
            export,
            now: self.now(),
        };
        for user in users
            .into_iter()
            .filter(|u| crate::spec::selects(&m.spec.users, u))
        {
            if records.contains_key(&user.login) {
                continue;
            }
            let (org, team, workspace) = crate::spec::landing(&m, &user);
            let workspace = ObjectKey {
                kind: Kind::Workspace,
                organization: Some(org),
                name: workspace,
            };
            let mut r = UserRecord::pending(user, workspace, team, &cx.now);
            steps::save(&cx, &mut r)?;
            records.insert(r.login.clone(), r);
        }
        let mut waiting = self.act_on_wishes(&cx, &mut records).await?;
        let in_flight = records
            .values()
            .filter(|r| !r.phase.is_final() && r.phase != UserPhase::Pending && !idle(&m, r))
            .count();
        let room = (m.spec.users.batch_size as usize).saturating_sub(in_flight);
        let taken: Vec<UserRecord> = records
            .values()
            .filter(|r| due(&m, r, &cx.now))
            .filter(|r| r.phase != UserPhase::Pending)
            .chain(
                records
                    .values()
                    .filter(|r| r.phase == UserPhase::Pending)
                    .take(room),
            )
            .cloned()
            .collect();
        let concurrency = (m.spec.users.concurrency as usize).max(1);
        let stepped: Vec<(UserRecord, Result<Stepped, MigrateError>)> =
            futures_util::stream::iter(taken.into_iter().map(|mut r| {
                let cx = cx.clone();
                async move {
                    let out = step(&cx, &mut r).await;
                    if let Err(e) = &out {
                        r.reasons = vec![format!("{} step failed, taken again: {e}", r.phase)];
                    }
                    // Each user's record is written as soon as their step ends, not when
                    // the round's slowest step does.
                    let out = steps::save(&cx, &mut r).and(out);
                    (r, out)
                }
            }))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut errors = 0;
        let mut moved = false;
        for (r, out) in stepped {
            match out {
                Ok(Stepped::Waiting) => waiting = true,
                Ok(Stepped::Moved) => moved = true,
                Err(e) => {
                    tracing::warn!(migration = %name, user = %r.login, phase = %r.phase, error = %e, "step failed; taken again");
                    errors += 1;
                }
            }
            records.insert(r.login.clone(), r);
        }
        self.write_status(key, &m, &records, &problems).await?;
        Ok(if errors > 0 {
            Action::Requeue(Duration::from_secs(1))
        } else if moved {
            Action::Requeue(Duration::ZERO)
        } else if waiting {
            Action::Requeue(STARTING)
        } else if !records.is_empty() && records.values().all(|r| r.phase.is_final()) {
            Action::AwaitChange
        } else {
            Action::Requeue(WAITING)
        })
    }

    async fn cannot_read(
        &self,
        key: &ObjectKey,
        m: &Migration,
        e: &MigrateError,
    ) -> Result<Action, MigrateError> {
        let generation = m.metadata.generation;
        let message = e.to_string();
        self.plane
            .store
            .update(key, |r| {
                if let Resource::Migration(m) = r {
                    let s = m.status.get_or_insert_with(MigrationStatus::default);
                    s.phase = Some("Failed".into());
                    s.observed_generation = generation;
                    s.next = Some(format!("fix spec.source.export: {message}"));
                    conditions::set(
                        &mut s.conditions,
                        "Ready",
                        ConditionStatus::False,
                        "ExportUnreadable",
                        &message,
                        generation,
                    );
                }
            })
            .map_err(MigrateError::store)?;
        Ok(Action::Requeue(WAITING))
    }

    /// Acts on the wishes people recorded; true when one must wait (a workspace waking).
    async fn act_on_wishes(
        &self,
        cx: &StepContext,
        records: &mut BTreeMap<String, UserRecord>,
    ) -> Result<bool, MigrateError> {
        let store = &self.plane.store;
        let mut waiting = false;
        for wish in store
            .migration_wishes(&cx.migration.metadata.name)
            .map_err(MigrateError::store)?
        {
            let Some(r) = records.get_mut(&wish.login) else {
                store
                    .drop_migration_wish(&wish)
                    .map_err(MigrateError::store)?;
                continue;
            };
            let done = match wish.action.as_str() {
                "promote" | "cutover" => {
                    if r.phase.accepts(&wish.action, r.routed_back) {
                        r.promoted = true;
                        r.approved |= wish.approve;
                    }
                    true
                }
                "complete" => {
                    if r.phase.accepts(&wish.action, r.routed_back) {
                        r.phase = UserPhase::Completed;
                        r.reasons = vec![format!("completed by {}", wish.by)];
                    }
                    true
                }
                "rollback" => match steps::roll_back(cx, r).await {
                    Ok(Stepped::Moved) => true,
                    Ok(Stepped::Waiting) => {
                        waiting = true;
                        false
                    }
                    Err(e) => {
                        r.reasons = vec![format!("rollback failed, taken again: {e}")];
                        false
                    }
                },
                _ => true,
            };
            steps::save(cx, r)?;
            if done {
                store
                    .drop_migration_wish(&wish)
                    .map_err(MigrateError::store)?;
            }
        }
        Ok(waiting)
    }

    async fn write_status(
        &self,
        key: &ObjectKey,
        m: &Migration,
        records: &BTreeMap<String, UserRecord>,
        problems: &[Problem],
    ) -> Result<(), MigrateError> {
        let status = status(m, records, problems);
        let generation = m.metadata.generation;
        self.plane
            .store
            .update(key, |r| {
                if let Resource::Migration(m) = r {
                    let conds = m
                        .status
                        .as_ref()
                        .map(|s| s.conditions.clone())
                        .unwrap_or_default();
                    let mut s = status;
                    s.conditions = conds;
                    let done = s.users.total > 0
                        && s.users.completed + s.users.rolled_back + s.users.failed
                            == s.users.total;
                    let message = format!(
                        "{} of {} user(s) cut over or completed",
                        s.users.cut_over + s.users.completed,
                        s.users.total
                    );
                    conditions::set(
                        &mut s.conditions,
                        "Ready",
                        if done {
                            ConditionStatus::True
                        } else {
                            ConditionStatus::False
                        },
                        if done { "Finished" } else { "Migrating" },
                        &message,
                        generation,
                    );
                    m.status = Some(s);
                }
            })
            .map_err(MigrateError::store)?;
        Ok(())
    }
}

/// Whether at least `span` has passed from `since` (RFC 3339) to `now`.
fn passed(since: Option<&str>, now: &str, span: Duration) -> bool {
    let (Some(at), Ok(now)) = (
        since.and_then(|t| t.parse::<jiff::Timestamp>().ok()),
        now.parse::<jiff::Timestamp>(),
    ) else {
        return false;
    };
    let span = jiff::SignedDuration::try_from(span).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(at) >= span
}

/// Whether the wait after `r`'s abandoned cutovers has passed: 2 s per attempt, at most
/// a minute.
fn passed_backoff(r: &UserRecord, now: &str) -> bool {
    r.attempts == 0
        || passed(
            r.last_attempt_at.as_deref(),
            now,
            Duration::from_secs(u64::from(r.attempts.min(30)) * 2),
        )
}

/// Whether verified `r` may be cut over now.
fn ready_to_cut_over(m: &Migration, r: &UserRecord) -> bool {
    (r.promoted || m.spec.cutover.auto_promote)
        && r.may_cut_over(m.spec.verification.accept_investigate)
        && !r.reasons.iter().any(|w| w.contains("rollback path"))
}

/// Whether `r` waits on a person (or on time) rather than on a step.
fn idle(m: &Migration, r: &UserRecord) -> bool {
    match r.phase {
        UserPhase::Verified => !ready_to_cut_over(m, r),
        UserPhase::CutOver => true,
        _ => false,
    }
}

/// Whether a step of `r` is due now: the next phase's, a verified user's sync with v1
/// (every half minute while v1 serves them), the end of a rollback window.
fn due(m: &Migration, r: &UserRecord, now: &str) -> bool {
    match r.phase {
        UserPhase::Pending | UserPhase::Copying | UserPhase::Synced | UserPhase::CuttingOver => {
            true
        }
        UserPhase::Verified => {
            (ready_to_cut_over(m, r) && passed_backoff(r, now))
                || passed(r.synced_at.as_deref(), now, WAITING)
        }
        // A rollback under way (routed back, written back not yet) is finished first.
        UserPhase::CutOver => {
            r.routed_back
                || passed(
                    r.cut_over_at.as_deref(),
                    now,
                    m.spec.rollback_window.to_std(),
                )
        }
        UserPhase::Completed | UserPhase::RolledBack | UserPhase::Failed => false,
    }
}

async fn step(cx: &StepContext, r: &mut UserRecord) -> Result<Stepped, MigrateError> {
    match r.phase {
        UserPhase::Pending => steps::create(cx, r).await,
        UserPhase::Copying => steps::copy(cx, r).await,
        UserPhase::Synced => steps::verify(cx, r).await,
        // Kept in sync (and graded again) while v1 still serves them.
        UserPhase::Verified if !ready_to_cut_over(&cx.migration, r) => steps::verify(cx, r).await,
        UserPhase::CuttingOver | UserPhase::CutOver if r.routed_back => {
            steps::roll_back(cx, r).await
        }
        UserPhase::Verified | UserPhase::CuttingOver => steps::cut_over(cx, r).await,
        UserPhase::CutOver => {
            r.phase = UserPhase::Completed;
            r.reasons = vec!["the rollback window ended".into()];
            Ok(Stepped::Moved)
        }
        UserPhase::Completed | UserPhase::RolledBack | UserPhase::Failed => Ok(Stepped::Moved),
    }
}

/// The nearest-rank `q` quantile of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The status `records` add up to.
pub fn status(
    m: &Migration,
    records: &BTreeMap<String, UserRecord>,
    problems: &[Problem],
) -> MigrationStatus {
    let mut users = UserCounts {
        total: u32::try_from(records.len()).unwrap_or(u32::MAX),
        ..UserCounts::default()
    };
    for r in records.values() {
        *users.of_mut(r.phase) += 1;
    }
    let mut pauses: Vec<f64> = records.values().filter_map(|r| r.pause_ms).collect();
    pauses.sort_by(f64::total_cmp);
    let waiting_promotion = records
        .values()
        .filter(|r| r.phase == UserPhase::Verified && !r.promoted && !m.spec.cutover.auto_promote)
        .count();
    let needs_approval: Vec<&str> = records
        .values()
        .filter(|r| {
            r.phase == UserPhase::Verified
                && (r.promoted || m.spec.cutover.auto_promote)
                && !r.may_cut_over(m.spec.verification.accept_investigate)
        })
        .map(|r| r.login.as_str())
        .collect();
    let name = &m.metadata.name;
    let next = if !needs_approval.is_empty() {
        Some(format!(
            "look at the verification of {} (coditect migrate status {name} -o json), then coditect migrate promote {name} --users {} --approve",
            needs_approval.join(","),
            needs_approval.join(",")
        ))
    } else if waiting_promotion > 0 {
        Some(format!(
            "{waiting_promotion} user(s) verified: coditect migrate promote {name}"
        ))
    } else if users.cut_over > 0
        && users.cut_over + users.completed + users.rolled_back + users.failed == users.total
    {
        Some(format!(
            "users are on v2 and can still roll back: coditect migrate complete {name} when satisfied (or wait out rollbackWindow {})",
            m.spec.rollback_window
        ))
    } else {
        None
    };
    let finished =
        users.total > 0 && users.completed + users.rolled_back + users.failed == users.total;
    MigrationStatus {
        observed_generation: m.metadata.generation,
        conditions: Vec::new(),
        phase: Some(
            if finished {
                "Succeeded"
            } else if next.is_some() {
                "Waiting"
            } else {
                "Running"
            }
            .into(),
        ),
        bytes_copied: records.values().map(|r| r.bytes_copied).sum(),
        pause_p50_ms: quantile(&pauses, 0.5),
        pause_p99_ms: quantile(&pauses, 0.99),
        users,
        next,
        problems: problems.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn user(login: &str, phase: UserPhase) -> UserRecord {
        let v1 = crate::export::V1User {
            id: login.into(),
            login: login.into(),
            email: String::new(),
            org: "acme".into(),
            team: "t".into(),
            created_at: String::new(),
        };
        let key = ObjectKey {
            kind: Kind::Workspace,
            organization: Some("acme".into()),
            name: format!("{login}-main"),
        };
        let mut r = UserRecord::pending(v1, key, "t".into(), "2026-12-01T00:00:00Z");
        r.phase = phase;
        r
    }

    fn migration(extra: &str) -> Migration {
        crate::spec::parse(
            "m.yaml",
            &format!("apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {{name: m}}\nspec:\n  source: {{export: 'file:///x'}}\n{extra}"),
        )
        .unwrap()
    }

    #[test]
    fn every_user_is_counted_once_and_the_next_step_is_named() {
        let m = migration("");
        let mut records = BTreeMap::new();
        for (i, p) in UserPhase::ALL.iter().enumerate() {
            let mut r = user(&format!("u{i}"), *p);
            r.grade = Some(Grade::Perfect);
            r.pause_ms = (*p == UserPhase::CutOver).then_some(12.0);
            records.insert(r.login.clone(), r);
        }
        let s = status(&m, &records, &[]);
        assert_eq!(s.users.total, 9);
        assert_eq!(s.users.counted(), 9);
        assert!(UserPhase::ALL.iter().all(|p| s.users.of(*p) == 1));
        assert_eq!(s.pause_p99_ms, Some(12.0));
        assert_eq!(s.phase.as_deref(), Some("Waiting"));
        assert!(s.next.unwrap().contains("coditect migrate promote m"));
        // A promoted user graded Investigate: the next step names them and --approve.
        let r = records.get_mut("u3").unwrap();
        r.promoted = true;
        r.grade = Some(Grade::Investigate);
        let s = status(&m, &records, &[]);
        assert!(s.next.unwrap().contains("--users u3 --approve"));
    }

    #[test]
    fn a_verified_user_goes_when_promoted_or_auto_and_graded_well_enough() {
        let now = "2026-12-01T00:00:10Z";
        let mut r = user("a", UserPhase::Verified);
        r.synced_at = Some(now.into());
        r.grade = Some(Grade::Investigate);
        let manual = migration("");
        let auto = migration(
            "  cutover: {autoPromote: true}\n  verification: {acceptInvestigate: true}\n",
        );
        assert!(!due(&manual, &r, now), "not promoted");
        assert!(due(&auto, &r, now), "auto, Investigate accepted");
        r.promoted = true;
        assert!(!due(&manual, &r, now), "Investigate needs --approve");
        r.approved = true;
        assert!(due(&manual, &r, now));
        // Kept in sync: due again half a minute after the last sync.
        let mut waiting = user("b", UserPhase::Verified);
        waiting.synced_at = Some("2026-12-01T00:00:00Z".into());
        assert!(!due(&manual, &waiting, "2026-12-01T00:00:29Z"));
        assert!(due(&manual, &waiting, "2026-12-01T00:00:30Z"));
    }

    #[test]
    fn an_abandoned_cutover_waits_longer_each_time_and_a_rollback_under_way_goes_first() {
        let m = migration("  cutover: {autoPromote: true}\n");
        let mut r = user("a", UserPhase::Verified);
        r.grade = Some(Grade::Perfect);
        r.synced_at = Some("2026-12-01T00:00:00Z".into());
        r.attempts = 3;
        r.last_attempt_at = Some("2026-12-01T00:00:00Z".into());
        assert!(!due(&m, &r, "2026-12-01T00:00:05Z"), "3 attempts: 6 s");
        assert!(due(&m, &r, "2026-12-01T00:00:06Z"));
        let mut back = user("b", UserPhase::CutOver);
        back.cut_over_at = Some("2026-12-01T00:00:00Z".into());
        assert!(!due(&m, &back, "2026-12-01T00:00:01Z"), "inside the window");
        back.routed_back = true;
        assert!(
            due(&m, &back, "2026-12-01T00:00:01Z"),
            "the write-back is due"
        );
    }

    #[test]
    fn the_rollback_window_ends_on_the_clock() {
        let m = migration("  rollbackWindow: 1h\n");
        let mut r = user("a", UserPhase::CutOver);
        r.cut_over_at = Some("2026-12-01T00:00:00Z".into());
        assert!(!due(&m, &r, "2026-12-01T00:59:59Z"));
        assert!(due(&m, &r, "2026-12-01T01:00:00Z"));
    }
}
