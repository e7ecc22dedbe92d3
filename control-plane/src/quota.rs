//! Awake quotas: at most `quotas.maxAwakeWorkspaces` of an organization's workspaces run.
//!
//! A start (a new workspace, or a wake) is admitted under one lock, so two starts cannot
//! both take the last place. When the organization is full, the least recently active
//! awake workspace that is idle (nothing in its `busy` facts: no WebSocket, task, model
//! call, lock or keep-alive) is put to sleep first; when every awake one is busy, the
//! workspace that wanted to start sleeps instead, with the reason — never half-done: a
//! request waiting on its wake is told at once (503 with `Retry-After`).

use coditect_specs::{Kind, ObjectKey, Resource, Workspace};

use crate::driver::Driver;
use crate::error::ReconcileError;
use crate::reconcile::{Context, placed};
use crate::resource_store::ResourceStore;

/// Who asks for a sleep that makes room (`status.sleep.by`).
pub const QUOTA: &str = "quota";

/// Whether a start may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// There is room (perhaps made by putting an idle workspace to sleep).
    Admitted,
    /// There is none; why.
    Full(String),
}

/// The organization's awake quota.
async fn quota<D, S: ResourceStore>(ctx: &Context<D, S>, org: &str) -> u32 {
    let key = ObjectKey {
        kind: Kind::Organization,
        organization: None,
        name: org.to_string(),
    };
    match ctx.store.get(&key).await {
        Ok(Some(Resource::Organization(o))) => o.spec.quotas.max_awake_workspaces,
        _ => coditect_specs::defaults::max_awake_workspaces(),
    }
}

/// Decides whether `key` may start now. Call with the admission lock held. Only a wake
/// (or a restart) may `evict` an idle workspace; a workspace starting for the first time
/// into a full organization sleeps instead, so declaring many at once does not churn.
///
/// # Errors
/// Store or driver failures (evicting a workspace stops its instance).
pub async fn admit<D: Driver, S: ResourceStore>(
    key: &ObjectKey,
    ctx: &Context<D, S>,
    evict: bool,
) -> Result<Admission, ReconcileError> {
    let org = key.organization.as_deref().unwrap_or_default();
    let max = quota(ctx, org).await;
    let awake = ctx.store.count_awake(org, &key.name).await?;
    if awake < max {
        return Ok(Admission::Admitted);
    }
    if !evict {
        return Ok(Admission::Full(format!(
            "organization {org} has {awake} workspaces awake (quotas.maxAwakeWorkspaces: {max}); it starts when woken"
        )));
    }
    // Full: find the least recently active idle workspace, by what the instances say now.
    let mut idle: Vec<(u64, ObjectKey, Workspace)> = Vec::new();
    for r in ctx.store.list_running(org).await? {
        let Resource::Workspace(w) = r else { continue };
        let peer = Resource::Workspace(w.clone()).key();
        if peer == *key {
            continue;
        }
        if let Some(facts) = ctx.driver.observe(&peer, &w).await.and_then(|i| i.activity)
            && facts.busy.is_empty()
        {
            idle.push((facts.last_activity_ms, peer, w));
        }
    }
    idle.sort_by_key(|(at, _, _)| *at);
    let Some((_, victim, w)) = idle.into_iter().next() else {
        return Ok(Admission::Full(format!(
            "organization {org} has {awake} workspaces awake (quotas.maxAwakeWorkspaces: {max}) and each is busy; try again later"
        )));
    };
    let reason = format!("made room for {key} (quotas.maxAwakeWorkspaces: {max})");
    tracing::info!(workspace = %victim, %reason, "quota: putting the least recently active idle workspace to sleep");
    crate::sleep::request_sleep(&*ctx.store, &victim, QUOTA, &reason).await?;
    record(ctx, &victim, &reason).await;
    let current = match ctx.store.get(&victim).await? {
        Some(Resource::Workspace(w)) => w,
        _ => w,
    };
    let placed = placed(ctx, &victim, &current).await;
    crate::sleep::converge_asleep(&victim, &current, &placed, ctx).await?;
    Ok(Admission::Admitted)
}

/// Records a sleep the quota decided in the audit trail.
pub(crate) async fn record<D, S>(ctx: &Context<D, S>, key: &ObjectKey, reason: &str) {
    let Some(audit) = &ctx.audit else { return };
    let who = crate::access::Identity {
        user: QUOTA.into(),
        token_id: String::new(),
        cluster_admin: true,
    };
    let entry = crate::access::Entry {
        who: &who,
        action: "sleep",
        objects: vec![key.to_string()],
        outcome: crate::access::Outcome::Ok,
        detail: Some(reason.to_string()),
    };
    if let Err(e) = audit.record(entry).await {
        tracing::warn!(error = %e, "audit trail: quota entry not written");
    }
}
