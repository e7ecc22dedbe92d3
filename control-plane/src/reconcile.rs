//! The reconcilers. Each is `reconcile(object, ctx) -> Result<Action, ReconcileError>`:
//! read desired state, observe actual state, take one step toward convergence, write
//! status, and say when to look again. Running one twice gives the same world.
//!
//! * **Workspace**: a runtime instance runs the current spec (started if missing,
//!   restarted after a crash, rolled on a spec change with its data folder kept); status
//!   carries `Ready` / `Progressing` / `Degraded`, `observedGeneration`, the endpoint and
//!   the session expiry. Deletion: stop the instance cleanly (it flushes its event log and
//!   databases), purge the folder only if asked, then drop the finalizer.
//! * **Organization / Team**: roll up how many of their workspaces are Ready.

use std::sync::Arc;
use std::time::Duration;

use coditect_specs::{
    ConditionStatus, Kind, ObjectKey, Resource, RollupStatus, Workspace, WorkspaceStatus,
};

use crate::conditions;
use crate::driver::Driver;
use crate::error::ReconcileError;
use crate::resource_store::ResourceStore;
use crate::selector::LabelSelector;
use crate::store::{RUNTIME_FINALIZER, Store};

/// The annotation `delete --purge` sets: remove the data folder too.
pub const PURGE_ANNOTATION: &str = "coditect.io/purge";

/// What to do after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Look again after this long.
    Requeue(Duration),
    /// Nothing more to do until something changes.
    AwaitChange,
}

/// What reconcilers share.
#[derive(Debug)]
pub struct Context<D, S = Store> {
    /// The store.
    pub store: Arc<S>,
    /// The runtime driver.
    pub driver: Arc<D>,
    /// How often a converged workspace is checked again.
    pub resync: Duration,
    /// Held while a start is admitted against the organization's awake quota.
    pub admission: tokio::sync::Mutex<()>,
    /// Where sleeps the reconcilers decide themselves (the quota's) are recorded.
    pub audit: Option<crate::access::AuditLog>,
    /// Reconcilers of kinds that live above the control plane (a Migration's).
    pub delegated: Vec<std::sync::Arc<dyn crate::delegated::DelegatedReconciler>>,
}

/// Reconciles the object at `key`, whatever its kind.
///
/// # Errors
/// Store or driver failures; the caller's error policy decides the backoff.
#[tracing::instrument(skip_all, fields(object = %key), err)]
pub async fn reconcile<D: Driver, S: ResourceStore>(
    key: &ObjectKey,
    ctx: &Context<D, S>,
) -> Result<Action, ReconcileError> {
    let Some(object) = ctx.store.get(key).await? else {
        return Ok(Action::AwaitChange); // gone
    };
    match object {
        Resource::Workspace(ws) => reconcile_workspace(key, ws, ctx).await,
        Resource::Organization(_) | Resource::Team(_) => {
            rollup(key, ctx).await?;
            Ok(Action::AwaitChange)
        }
        Resource::Migration(_) => match ctx.delegated.iter().find(|d| d.kind() == key.kind) {
            Some(d) => d.reconcile(key).await,
            // Not reconciled here (the Kubernetes operator): it waits for a control
            // plane that has its reconciler.
            None => Ok(Action::AwaitChange),
        },
    }
}

async fn reconcile_workspace<D: Driver, S: ResourceStore>(
    key: &ObjectKey,
    ws: Workspace,
    ctx: &Context<D, S>,
) -> Result<Action, ReconcileError> {
    let generation = ws.metadata.generation;
    let placed = placed(ctx, key, &ws).await;
    if ws.metadata.deletion_timestamp.is_some() {
        let purge = ws
            .metadata
            .annotations
            .get(PURGE_ANNOTATION)
            .is_some_and(|v| v == "true");
        write_status(ctx, key, |s| {
            s.phase = Some("Terminating".into());
            conditions::set(
                &mut s.conditions,
                "Ready",
                ConditionStatus::False,
                "Terminating",
                "stopping the instance",
                generation,
            );
        })
        .await?;
        ctx.driver.stop(key, &placed, purge).await?;
        ctx.store
            .record_event(
                key,
                "Normal",
                "Stopped",
                if purge {
                    "instance stopped, data purged"
                } else {
                    "instance stopped cleanly, data kept"
                },
            )
            .await;
        ctx.store.remove_finalizer(key, RUNTIME_FINALIZER).await?;
        return Ok(Action::AwaitChange);
    }
    if crate::sleep::wants_sleep(&ws) {
        return crate::sleep::converge_asleep(key, &ws, &placed, ctx).await;
    }
    let phase = ws.status.as_ref().and_then(|s| s.phase.clone());
    let waking = matches!(phase.as_deref(), Some("Asleep" | "Stopping" | "Waking"));
    // A wake or a restart may make room by putting an idle workspace to sleep.
    let may_evict = waking || phase.as_deref() == Some("Running");
    let hash = coditect_specs::spec_hash(&Resource::Workspace(ws.clone()));
    let running = ctx.driver.observe(key, &ws).await;
    let converged = running.as_ref().is_some_and(|i| i.spec_hash == hash);
    if !converged {
        // A start takes a place in the organization's awake quota, under one lock so
        // two starts cannot both take the last one (the lock is let go once this start
        // is recorded, before the instance is started).
        let admission = match running {
            Some(_) => None,
            None => Some(ctx.admission.lock().await),
        };
        if admission.is_some()
            && let crate::quota::Admission::Full(reason) =
                crate::quota::admit(key, ctx, may_evict).await?
        {
            drop(admission);
            crate::sleep::request_sleep(&*ctx.store, key, crate::quota::QUOTA, &reason).await?;
            ctx.store
                .record_event(key, "Warning", "QuotaFull", &reason)
                .await;
            crate::quota::record(ctx, key, &reason).await;
            return crate::sleep::converge_asleep(key, &ws, &placed, ctx).await;
        }
        let (reason, message) = match &running {
            Some(_) => ("Rolling", "rolling the instance to the new spec"),
            None if waking => ("Waking", "waking: starting the instance on its local data"),
            None => ("Starting", "starting the instance"),
        };
        write_status(ctx, key, |s| {
            s.phase = Some(if waking { "Waking" } else { "Starting" }.into());
            conditions::set(
                &mut s.conditions,
                "Progressing",
                ConditionStatus::True,
                reason,
                message,
                generation,
            );
        })
        .await?;
        drop(admission);
        ctx.store.record_event(key, "Normal", reason, message).await;
    }
    let instance = match ctx.driver.ensure(key, &placed, &hash).await {
        Ok(i) => i,
        Err(crate::error::DriverError::NotReady { reason, .. }) => {
            // Asked for and on its way (a pod being scheduled): not a failure.
            write_status(ctx, key, |s| {
                s.phase = Some(if waking { "Waking" } else { "Starting" }.into());
                conditions::set(
                    &mut s.conditions,
                    "Ready",
                    ConditionStatus::False,
                    "NotReady",
                    &reason,
                    generation,
                );
            })
            .await?;
            return Ok(Action::Requeue(NOT_READY_POLL.min(ctx.resync)));
        }
        Err(e) => {
            let message = e.to_string();
            write_status(ctx, key, |s| {
                s.phase = Some("Failed".into());
                conditions::set(
                    &mut s.conditions,
                    "Ready",
                    ConditionStatus::False,
                    "StartFailed",
                    &message,
                    generation,
                );
                conditions::set(
                    &mut s.conditions,
                    "Degraded",
                    ConditionStatus::True,
                    "StartFailed",
                    &message,
                    generation,
                );
                conditions::set(
                    &mut s.conditions,
                    "Progressing",
                    ConditionStatus::False,
                    "StartFailed",
                    &message,
                    generation,
                );
            })
            .await?;
            ctx.store
                .record_event(key, "Warning", "StartFailed", &message)
                .await;
            return Err(e.into());
        }
    };
    if !converged {
        ctx.store
            .record_event(
                key,
                "Normal",
                "Ready",
                &format!(
                    "instance at {} runs generation {}",
                    instance.endpoint,
                    generation.unwrap_or(0)
                ),
            )
            .await;
    }
    write_status(ctx, key, |s| {
        s.observed_generation = generation;
        s.phase = Some("Running".into());
        s.endpoint = Some(instance.endpoint.clone());
        s.spec_hash = Some(instance.spec_hash.clone());
        s.session_expires_at = instance.session_expires_at.clone();
        s.sync_lag_seconds = instance.sync_lag_seconds;
        if let Some(activity) = &instance.activity {
            s.last_activity_at = Some(activity.last_activity_at.clone());
        }
        if instance.bucket.is_some() {
            s.bucket = instance.bucket.clone();
        }
        if instance.mirror.is_some() {
            s.mirror = instance.mirror.clone();
        }
        s.mirror_lag_seconds = instance.mirror_lag_seconds;
        conditions::set(
            &mut s.conditions,
            "Ready",
            ConditionStatus::True,
            "InstanceReady",
            "the instance serves the current spec",
            generation,
        );
        conditions::set(
            &mut s.conditions,
            "Progressing",
            ConditionStatus::False,
            "Converged",
            "",
            generation,
        );
        conditions::set(
            &mut s.conditions,
            "Degraded",
            ConditionStatus::False,
            "Healthy",
            "",
            generation,
        );
        if instance.bucket.is_none() {
            // Not syncing: nothing to say.
        } else if instance.restorable {
            conditions::set(
                &mut s.conditions,
                "Restorable",
                ConditionStatus::True,
                "GenerationShipped",
                "the bucket holds a complete generation: a restore would work",
                generation,
            );
        } else {
            conditions::set(
                &mut s.conditions,
                "Restorable",
                ConditionStatus::False,
                "NotYetShipped",
                "the first generation is not in the bucket yet (see syncLagSeconds)",
                generation,
            );
        }
    })
    .await?;
    // Until the bucket holds it, look again soon: the status says when it does.
    Ok(Action::Requeue(
        if instance.restorable || instance.bucket.is_none() {
            ctx.resync
        } else {
            RESTORABLE_POLL.min(ctx.resync)
        },
    ))
}

/// How soon a workspace whose instance is on its way (a driver that starts it
/// asynchronously, as Kubernetes does) is looked at again.
const NOT_READY_POLL: Duration = Duration::from_secs(2);

/// How soon a Running workspace whose first generation is not in the bucket is looked at
/// again.
const RESTORABLE_POLL: Duration = Duration::from_millis(200);

/// Changes a workspace's status with `f`.
pub(crate) async fn write_status<D, S: ResourceStore>(
    ctx: &Context<D, S>,
    key: &ObjectKey,
    f: impl FnOnce(&mut WorkspaceStatus) + Send,
) -> Result<(), ReconcileError> {
    ctx.store
        .update(key, |r| {
            if let Resource::Workspace(w) = r {
                f(w.status.get_or_insert_with(WorkspaceStatus::default));
            }
        })
        .await?;
    Ok(())
}

/// The workspace as its driver runs it: with its organization's bucket (the driver
/// resolves a relative `file:` bucket against its data dir, and purges the workspace's
/// objects there).
pub(crate) async fn placed<D, S: ResourceStore>(
    ctx: &Context<D, S>,
    key: &ObjectKey,
    ws: &Workspace,
) -> Workspace {
    let mut placed = ws.clone();
    let storage = organization_storage(ctx, key).await;
    let annotations = &mut placed.metadata.annotations;
    annotations.insert(BUCKET_ANNOTATION.into(), storage.bucket);
    if let Some(mirror) = storage.mirror {
        annotations.insert(MIRROR_ANNOTATION.into(), mirror);
    }
    if let Some(access) = storage.mirror_access
        && let Ok(json) = serde_json::to_string(&access)
    {
        annotations.insert(coditect_specs::MIRROR_ACCESS_ANNOTATION.into(), json);
    }
    placed
}

/// The annotation that carries a workspace's bucket to its driver.
pub const BUCKET_ANNOTATION: &str = "coditect.io/bucket";

/// The annotation that carries the bucket's hot mirror, when the organization has one.
pub const MIRROR_ANNOTATION: &str = "coditect.io/mirror";

/// The storage of the workspace's organization (the default when it names none).
async fn organization_storage<D, S: ResourceStore>(
    ctx: &Context<D, S>,
    key: &ObjectKey,
) -> coditect_specs::organization::StorageSpec {
    let org = ObjectKey {
        kind: Kind::Organization,
        organization: None,
        name: key.organization.clone().unwrap_or_default(),
    };
    match ctx.store.get(&org).await {
        Ok(Some(Resource::Organization(o))) => o.spec.storage,
        _ => coditect_specs::organization::StorageSpec::default(),
    }
}

/// Organization and Team status: how many of their workspaces are Ready.
async fn rollup<D, S: ResourceStore>(
    key: &ObjectKey,
    ctx: &Context<D, S>,
) -> Result<(), ReconcileError> {
    let org = match key.kind {
        Kind::Organization => key.name.clone(),
        _ => key.organization.clone().unwrap_or_default(),
    };
    let workspaces = ctx
        .store
        .list(Some(Kind::Workspace), Some(&org), &LabelSelector::default())
        .await?;
    let in_scope: Vec<&Resource> = workspaces
        .iter()
        .filter(|w| {
            key.kind == Kind::Organization
                || w.metadata().team.as_deref() == Some(key.name.as_str())
        })
        .collect();
    let ready = in_scope
        .iter()
        .filter(|w| matches!(w, Resource::Workspace(ws) if ws.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))))
        .count();
    let total = in_scope.len();
    ctx.store
        .update(key, |r| {
            let generation = r.metadata().generation;
            let status = match r {
                Resource::Organization(o) => o.status.get_or_insert_with(RollupStatus::default),
                Resource::Team(t) => t.status.get_or_insert_with(RollupStatus::default),
                Resource::Workspace(_) | Resource::Migration(_) => return,
            };
            status.observed_generation = generation;
            status.workspaces_ready = u32::try_from(ready).unwrap_or(u32::MAX);
            status.workspaces_total = u32::try_from(total).unwrap_or(u32::MAX);
            let message = format!("{ready}/{total} workspaces ready");
            conditions::set(
                &mut status.conditions,
                "Ready",
                ConditionStatus::True,
                "Reconciled",
                &message,
                generation,
            );
        })
        .await?;
    Ok(())
}

/// Backoff after the `failures`-th consecutive failure: 250 ms doubling, capped at 30 s.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(7);
    Duration::from_millis(250 * (1u64 << exp)).min(Duration::from_secs(30))
}
