//! Sleep and wake: the mechanism (the policy of *when* lives in `coditect-ops`).
//!
//! The wish lives in the workspace's status (`status.sleep`), which the control plane
//! owns: [`request_sleep`] sets it, [`request_wake`] clears it, and the Workspace reconciler
//! converges the instance to it. Asleep, a workspace has no instance; its folder (the six
//! databases, the event log, the projects) stays on local disk, so a wake is an ordinary
//! start with local data, and nothing that was not yet in the bucket is lost. Because the
//! wish is stored before anything is stopped or started, a control plane killed in the
//! middle of a sleep or a wake finishes it when it comes back.
//!
//! Never with unsaved work: while the instance reports that shipping to its bucket fails,
//! it stays awake, and `status.sleep.blocked` says why.

use std::time::Duration;

use coditect_specs::{ConditionStatus, ObjectKey, Resource, SleepStatus, Workspace};

use crate::conditions;
use crate::driver::{DiskRelease, Driver};
use crate::error::{ReconcileError, StoreError};
use crate::reconcile::{Action, Context, write_status};
use crate::resource_store::ResourceStore;

/// How often a sleep held back by unsaved work is tried again.
const BLOCKED_RETRY: Duration = Duration::from_secs(5);

fn now() -> String {
    coditect_runtime::clock::rfc3339(coditect_runtime::clock::now_ms())
}

/// Asks for `key` to sleep; a workspace already asleep (or going) keeps its first reason.
/// Returns the workspace after the change, `None` when there is none.
///
/// # Errors
/// Storage failures.
pub async fn request_sleep<S: ResourceStore>(
    store: &S,
    key: &ObjectKey,
    by: &str,
    reason: &str,
) -> Result<Option<Resource>, StoreError> {
    store
        .update(key, |r| {
            if let Resource::Workspace(w) = r {
                let status = w.status.get_or_insert_with(Default::default);
                if status.sleep.is_none() {
                    status.sleep = Some(SleepStatus {
                        reason: reason.to_string(),
                        by: by.to_string(),
                        requested_at: now(),
                        asleep_since: None,
                        blocked: None,
                    });
                }
            }
        })
        .await
}

/// Asks for `key` to be awake. Returns whether it was asleep (or going to sleep).
///
/// # Errors
/// Storage failures.
pub async fn request_wake<S: ResourceStore>(
    store: &S,
    key: &ObjectKey,
) -> Result<bool, StoreError> {
    let mut was = false;
    store
        .update(key, |r| {
            if let Resource::Workspace(w) = r
                && let Some(status) = w.status.as_mut()
            {
                was = status.sleep.take().is_some();
            }
        })
        .await?;
    Ok(was)
}

/// Whether the workspace is to sleep (or sleeps).
pub fn wants_sleep(ws: &Workspace) -> bool {
    ws.status.as_ref().is_some_and(|s| s.sleep.is_some())
}

/// The reconcile step of a workspace that is to sleep: stop its instance cleanly (a final
/// sync round) unless it has unsaved work it cannot ship, then record it Asleep.
///
/// # Errors
/// Store or driver failures.
pub async fn converge_asleep<D: Driver, S: ResourceStore>(
    key: &ObjectKey,
    ws: &Workspace,
    placed: &Workspace,
    ctx: &Context<D, S>,
) -> Result<Action, ReconcileError> {
    let generation = ws.metadata.generation;
    if let Some(instance) = ctx.driver.observe(key, ws).await {
        if let Some(error) = instance.sync_error {
            let why = format!(
                "unsaved work: shipping to the bucket fails ({error}); staying awake until it is shipped"
            );
            write_status(ctx, key, |s| {
                if let Some(sleep) = s.sleep.as_mut() {
                    sleep.blocked = Some(why.clone());
                }
                s.awake_because = Some(why.clone());
            })
            .await?;
            tracing::warn!(workspace = %key, %error, "sleep held back: unsaved work");
            return Ok(Action::Requeue(BLOCKED_RETRY));
        }
        write_status(ctx, key, |s| {
            s.phase = Some("Stopping".into());
            conditions::set(
                &mut s.conditions,
                "Ready",
                ConditionStatus::False,
                "Stopping",
                "going to sleep: final sync round",
                generation,
            );
        })
        .await?;
        ctx.driver.stop(key, placed, false).await?;
    }
    // Policy: free the local disk once the bucket copy is verified (kept by default);
    // once, on the way to sleep (a control plane killed in between tries again).
    let settling = ws
        .status
        .as_ref()
        .and_then(|s| s.sleep.as_ref())
        .is_none_or(|z| z.asleep_since.is_none());
    let release = if settling
        && ws
            .spec
            .auto_sleep
            .as_ref()
            .is_some_and(|p| p.free_local_disk)
    {
        Some(ctx.driver.free_disk(key, placed).await)
    } else {
        None
    };
    match &release {
        Some(DiskRelease::Freed { objects, bytes }) => ctx.store.record_event(
            key,
            "Normal",
            "DiskFreed",
            &format!(
                "bucket copy verified ({objects} objects); {bytes} bytes of local disk freed; the next wake restores from the bucket"
            ),
        ).await,
        Some(DiskRelease::Kept(why)) => {
            tracing::warn!(workspace = %key, %why, "local disk kept");
            ctx.store
                .record_event(key, "Warning", "DiskKept", &format!("local disk kept: {why}")).await;
        }
        Some(DiskRelease::AlreadyFree) | None => {}
    }
    let mut first = false;
    write_status(ctx, key, |s| {
        let reason = s
            .sleep
            .as_ref()
            .map(|z| z.reason.clone())
            .unwrap_or_default();
        if let Some(sleep) = s.sleep.as_mut() {
            sleep.blocked = None;
            if sleep.asleep_since.is_none() {
                sleep.asleep_since = Some(now());
                first = true;
            }
        }
        s.phase = Some("Asleep".into());
        s.endpoint = None;
        s.awake_because = None;
        conditions::set(
            &mut s.conditions,
            "Ready",
            ConditionStatus::False,
            "Asleep",
            &format!("asleep ({reason}); a request through the gateway wakes it"),
            generation,
        );
        conditions::set(
            &mut s.conditions,
            "Progressing",
            ConditionStatus::False,
            "Asleep",
            "",
            generation,
        );
    })
    .await?;
    if first {
        ctx.store
            .record_event(
                key,
                "Normal",
                "Asleep",
                if matches!(
                    release,
                    Some(DiskRelease::Freed { .. } | DiskRelease::AlreadyFree)
                ) {
                    "instance stopped cleanly; data in the bucket only"
                } else {
                    "instance stopped cleanly; data kept on local disk"
                },
            )
            .await;
    }
    Ok(Action::AwaitChange)
}

/// Whether the workspace serves: Running, with an endpoint.
pub fn serving(r: &Resource) -> bool {
    matches!(r, Resource::Workspace(w) if w.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running") && s.endpoint.is_some() && s.sleep.is_none()
    }))
}

/// How waiting for a wake ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Woken {
    /// It serves.
    Serving,
    /// It was put back to sleep to hold its organization's awake quota; why.
    QuotaFull(String),
    /// Not within the time given, or the workspace is gone.
    NotYet,
}

/// Waits until the workspace serves, following the store's changes (no polling).
pub async fn wait_serving<S: ResourceStore>(
    store: &S,
    key: &ObjectKey,
    timeout: Duration,
) -> Woken {
    let mut changes = store.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match store.get(key).await {
            Ok(Some(r)) if serving(&r) => return Woken::Serving,
            Ok(Some(Resource::Workspace(w))) => {
                if let Some(sleep) = w.status.and_then(|s| s.sleep)
                    && sleep.by == crate::quota::QUOTA
                {
                    return Woken::QuotaFull(sleep.reason);
                }
            }
            Ok(Some(_)) => {}
            _ => return Woken::NotYet,
        }
        // Wait for the next change of this key (any lag means: look again).
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Err(_) => return Woken::NotYet,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return Woken::NotYet,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                Ok(Ok(c)) => {
                    let name = c.object["metadata"]["name"].as_str();
                    let org = c.object["metadata"]["organization"].as_str();
                    if name == Some(key.name.as_str()) && org == key.organization.as_deref() {
                        break;
                    }
                }
            }
        }
    }
}
