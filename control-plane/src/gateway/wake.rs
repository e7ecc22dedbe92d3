//! Wake on connect, for any store: a request for a sleeping workspace states the wake
//! wish and is held until the instance serves. The client sees one slow answer, never an
//! error (unless the wake takes longer than [`WAKE_TIMEOUT`]: 503 with `Retry-After`).
//! Each registry adds what it tells (a nudge to its reconciler, an audit entry, an Event).

use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use coditect_specs::{ObjectKey, Resource};
use serde_json::json;

use crate::error::StoreError;
use crate::resource_store::ResourceStore;
use crate::sleep::{Woken, request_wake, serving, wait_serving, wants_sleep};

/// How long a request through the gateway is held while its workspace wakes.
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// States the wake wish when `key` sleeps. `Ok(true)` when this call woke it.
///
/// # Errors
/// The store's refusal, as the answer to give (409 when the status changed under it).
pub async fn wake_if_asleep<S: ResourceStore>(
    store: &S,
    key: &ObjectKey,
) -> Result<bool, Response> {
    let Ok(Some(current)) = store.get(key).await else {
        return Ok(false); // the gateway's own lookup answers 404 or 500
    };
    if serving(&current) {
        return Ok(false);
    }
    if !matches!(&current, Resource::Workspace(w) if wants_sleep(w)) {
        return Ok(false);
    }
    request_wake(store, key).await.map_err(|e| {
        let (status, error) = match e {
            StoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        };
        (
            status,
            Json(json!({"error": error, "reason": e.to_string()})),
        )
            .into_response()
    })
}

/// Holds until `key` serves (at most [`WAKE_TIMEOUT`]).
///
/// # Errors
/// 503 with `Retry-After`: its organization's quota of awake workspaces is full, or it
/// did not start in time.
pub async fn until_serving<S: ResourceStore>(store: &S, key: &ObjectKey) -> Result<(), Response> {
    let (error, reason, retry) = match wait_serving(store, key, WAKE_TIMEOUT).await {
        Woken::Serving => return Ok(()),
        Woken::QuotaFull(reason) => ("quota_full", reason, "30"),
        Woken::NotYet => (
            "waking",
            format!(
                "{key} did not start within {}s; try again",
                WAKE_TIMEOUT.as_secs()
            ),
            "5",
        ),
    };
    Err((
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, retry)],
        Json(json!({"error": error, "reason": reason})),
    )
        .into_response())
}
