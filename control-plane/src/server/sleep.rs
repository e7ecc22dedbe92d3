//! `POST …/workspaces/{name}/sleep` and `…/wake`: by hand, with the caller's
//! `workspaces.use`, audited. The gateway wakes on connect itself
//! ([`crate::gateway::wake`]).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use coditect_specs::{Kind, ObjectKey};
use serde_json::{Value, json};

use super::{ApiError, ServerState, authorize, not_found, record};
use crate::access::{Identity, Outcome, Verb};

fn workspace(org: String, name: String) -> ObjectKey {
    ObjectKey {
        kind: Kind::Workspace,
        organization: Some(org),
        name,
    }
}

async fn audit(
    s: &ServerState,
    who: &Identity,
    action: &str,
    key: &ObjectKey,
    detail: &str,
) -> Result<(), ApiError> {
    let objects = vec![key.to_string()];
    record(
        s,
        who,
        action,
        objects,
        Outcome::Ok,
        Some(detail.to_string()),
    )
    .await
}

/// The workspace `{org}/{name}` when it exists and `who` may use it.
fn usable(
    s: &ServerState,
    who: &Identity,
    org: String,
    name: String,
) -> Result<ObjectKey, ApiError> {
    let key = workspace(org, name);
    s.store.get(&key)?.ok_or_else(|| not_found(&key))?;
    let policy = s.access.policy(&s.store);
    authorize(&policy, who, Verb::Use, &key)?;
    Ok(key)
}

/// `POST …/workspaces/{name}/sleep`: the instance stops after a final sync round (unless
/// it has unsaved work it cannot ship); its data stays.
pub(super) async fn sleep(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let key = usable(&s, &who, org, name)?;
    let reason = format!("put to sleep by {}", who.user);
    let after = crate::sleep::request_sleep(&*s.store, &key, &who.user, &reason)
        .await?
        .ok_or_else(|| not_found(&key))?;
    let _ = s.nudge.send(key.clone());
    audit(&s, &who, "sleep", &key, &reason).await?;
    Ok(Json(
        json!({"sleeping": key.to_string(), "status": after.status_json()}),
    ))
}

/// `POST …/workspaces/{name}/wake`: answers at once; `coditect wake` then waits for Ready.
pub(super) async fn wake(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let key = usable(&s, &who, org, name)?;
    let was = crate::sleep::request_wake(&*s.store, &key).await?;
    let _ = s.nudge.send(key.clone());
    if was {
        audit(&s, &who, "wake", &key, &format!("woken by {}", who.user)).await?;
    }
    Ok(Json(json!({"waking": was, "workspace": key.to_string()})))
}
