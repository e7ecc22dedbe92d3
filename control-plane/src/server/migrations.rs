//! A Migration's own routes: the object (cluster-scoped, like an organization), its
//! per-user records, and the actions a person takes on users (`promote`, `cutover`,
//! `rollback`, `complete`). An action is recorded as a wish and the migration's
//! reconciler is nudged; it acts on the wish, which it removes once the user's record
//! says it was done, so a control plane killed in between still acts on it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use coditect_specs::{Kind, ObjectKey, Resource};
use serde::Deserialize;
use serde_json::{Value, json};

use super::objects::{DeleteQuery, audited_delete, get_one};
use super::{ApiError, ServerState, authorize, not_found, record};
use crate::access::{Identity, Outcome, Verb};
use crate::store::MigrationWish;

/// What a person may ask of a migration's users.
pub const ACTIONS: [&str; 4] = ["promote", "cutover", "rollback", "complete"];

fn key(name: String) -> ObjectKey {
    ObjectKey {
        kind: Kind::Migration,
        organization: None,
        name,
    }
}

/// Whether `action` applies to a user whose record is `record`, by their phase.
fn applies(action: &str, record: &Value) -> bool {
    serde_json::from_value::<coditect_specs::UserPhase>(record["phase"].clone())
        .is_ok_and(|phase| phase.accepts(action, record["routedBack"] == true))
}

/// `GET /apis/coditect.io/v1/migrations/{name}`.
pub(super) async fn get(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Json<Resource>, ApiError> {
    get_one(&s, &who, &key(name))
}

/// `DELETE /apis/coditect.io/v1/migrations/{name}`: the object and its records go; every
/// user stays routed where they are.
pub(super) async fn delete(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    let answer = audited_delete(&s, &who, &key(name.clone()), &q, || Ok(())).await?;
    if !q.dry_run {
        s.store.forget_migration_users(&name)?;
    }
    Ok(answer)
}

/// `GET …/migrations/{name}/users`: every selected user's record.
pub(super) async fn users(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = key(name.clone());
    s.store.get(&key)?.ok_or_else(|| not_found(&key))?;
    authorize(&s.access.policy(&s.store), &who, Verb::Read, &key)?;
    let items: Vec<Value> = s
        .store
        .migration_users(&name)?
        .into_iter()
        .map(|(_, record)| record)
        .collect();
    let wishes = s.store.migration_wishes(&name)?;
    Ok(Json(json!({"items": items, "wishes": wishes})))
}

/// The body of `POST …/migrations/{name}/actions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionBody {
    /// One of [`ACTIONS`].
    action: String,
    /// Logins; empty: every user the action applies to.
    #[serde(default)]
    users: Vec<String>,
    /// Cut over users graded Investigate or Poor too.
    #[serde(default)]
    approve: bool,
}

/// `POST …/migrations/{name}/actions` `{action, users, approve}`: recorded, audited, and
/// acted on by the migration's reconciler.
pub(super) async fn act(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
    Json(b): Json<ActionBody>,
) -> Result<Json<Value>, ApiError> {
    let key = key(name.clone());
    s.store.get(&key)?.ok_or_else(|| not_found(&key))?;
    let policy = s.access.policy(&s.store);
    authorize(&policy, &who, Verb::Update, &key)?;
    if !ACTIONS.contains(&b.action.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": format!("unknown action {:?}: expected one of {}", b.action, ACTIONS.join(", "))}),
        ));
    }
    let records = s.store.migration_users(&name)?;
    let known: Vec<String> = records.iter().map(|(login, _)| login.clone()).collect();
    let unknown: Vec<&String> = b.users.iter().filter(|u| !known.contains(u)).collect();
    if !unknown.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": format!("migration {name} has no user {}", unknown.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", "))}),
        ));
    }
    // No users named: those the action applies to in their phase.
    let users = if b.users.is_empty() {
        records
            .iter()
            .filter(|(_, r)| applies(&b.action, r))
            .map(|(login, _)| login.clone())
            .collect()
    } else {
        b.users
    };
    for login in &users {
        s.store.put_migration_wish(&MigrationWish {
            migration: name.clone(),
            login: login.clone(),
            action: b.action.clone(),
            approve: b.approve,
            by: who.user.clone(),
        })?;
    }
    let _ = s.nudge.send(key.clone());
    let detail = format!(
        "{} {} user(s){}",
        b.action,
        users.len(),
        if b.approve { ", approved" } else { "" }
    );
    record(
        &s,
        &who,
        &b.action,
        vec![key.to_string()],
        Outcome::Ok,
        Some(detail),
    )
    .await?;
    Ok(Json(
        json!({"migration": name, "action": b.action, "users": users, "approve": b.approve}),
    ))
}
