//! The access routes: who am I, may I, tokens, and the audit trail.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use coditect_specs::{Kind, ObjectKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ServerState, bad_request, record};
use crate::access::{Identity, NewToken, Outcome, Subject, Verb};

fn forbidden(reason: impl Into<String>, permission: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        json!({"error": "forbidden", "reason": reason.into(), "permission": permission}),
    )
}

/// `GET /apis/coditect.io/v1/whoami`.
pub(super) async fn whoami(Extension(who): Extension<Identity>) -> Json<Value> {
    Json(json!({"user": who.user, "tokenId": who.token_id, "clusterAdmin": who.cluster_admin}))
}

#[derive(Debug, Deserialize)]
pub(super) struct ReviewBody {
    verb: String,
    kind: String,
    name: String,
    #[serde(default)]
    organization: Option<String>,
    /// For a workspace that does not exist yet: its team and owner.
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    /// Ask for another user (cluster admins only), like `kubectl auth can-i --as`.
    #[serde(default, rename = "as")]
    as_user: Option<String>,
}

/// `POST /apis/coditect.io/v1/access-reviews`: `{allowed, reason, permission}`.
pub(super) async fn review(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Json(body): Json<ReviewBody>,
) -> Result<Json<Value>, ApiError> {
    let verb = Verb::parse(&body.verb).ok_or_else(|| {
        bad_request(format!(
            "unknown verb {:?}; expected one of get, list, watch, create, update, delete, use",
            body.verb
        ))
    })?;
    let kind: Kind = body
        .kind
        .parse()
        .map_err(|e: coditect_specs::resource::UnknownKind| bad_request(e))?;
    let subject_of = match body.as_user {
        Some(user) if user != who.user => {
            if !who.cluster_admin {
                return Err(forbidden(
                    format!(
                        "user {:?} may not ask on behalf of {user:?}: only cluster admins may use --as",
                        who.user
                    ),
                    "access-reviews.impersonate",
                ));
            }
            Identity {
                user,
                token_id: String::new(),
                cluster_admin: false,
            }
        }
        _ => who,
    };
    let key = ObjectKey {
        kind,
        organization: if kind == Kind::Organization {
            None
        } else {
            body.organization
        },
        name: body.name,
    };
    let policy = s.access.policy(&s.store);
    let mut subject = policy.subject(&key);
    if s.store.get(&key)?.is_none() {
        subject = Subject {
            key,
            team: body.team,
            owner: body.owner,
        };
    }
    Ok(Json(match policy.decide(&subject_of, verb, &subject) {
        Ok(()) => json!({"allowed": true, "user": subject_of.user}),
        Err(d) => {
            json!({"allowed": false, "user": subject_of.user, "reason": d.to_string(), "permission": d.permission})
        }
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenBody {
    #[serde(default)]
    user: Option<String>,
    /// `30d`, `12h`; none: until revoked.
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    cluster_admin: bool,
    #[serde(default)]
    description: Option<String>,
}

/// `POST /apis/coditect.io/v1/tokens`: a token for the caller, or (cluster admins) for
/// anyone; the secret is in this answer and nowhere else.
pub(super) async fn create_token(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Json(body): Json<TokenBody>,
) -> Result<Json<Value>, ApiError> {
    let user = body.user.clone().unwrap_or_else(|| who.user.clone());
    let ttl = body
        .ttl
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
        .map_err(|e| bad_request(format!("ttl: {e} (say 30d, 12h, 90m)")))?;
    let for_other = user != who.user || body.cluster_admin;
    if for_other && !who.cluster_admin {
        let reason = format!(
            "user {:?} may not create tokens for {user:?}{}: missing permission tokens.create-any (held by cluster admins); anyone may create a token for themselves",
            who.user,
            if body.cluster_admin {
                " with cluster admin"
            } else {
                ""
            }
        );
        record(
            &s,
            &who,
            "token.create",
            vec![format!("user/{user}")],
            Outcome::Denied,
            Some(reason.clone()),
        )
        .await?;
        return Err(forbidden(reason, "tokens.create-any"));
    }
    let new = NewToken {
        user,
        ttl,
        cluster_admin: body.cluster_admin,
        description: body.description,
    };
    let (rec, token) = s.access.tokens.create(&new, &who.user)?;
    let objects = vec![format!("token/{}", rec.id), format!("user/{}", rec.user)];
    record(
        &s,
        &who,
        "token.create",
        objects,
        Outcome::Ok,
        rec.expires_at.clone(),
    )
    .await?;
    Ok(Json(json!({"token": token, "record": rec})))
}

#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    #[serde(default)]
    user: Option<String>,
}

/// `GET /apis/coditect.io/v1/tokens?user=`: the caller's own tokens; a cluster admin's
/// view is everyone's.
pub(super) async fn list_tokens(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = match (who.cluster_admin, q.user) {
        (true, user) => user,
        (false, Some(user)) if user != who.user => {
            return Err(forbidden(
                format!(
                    "user {:?} may not list the tokens of {user:?}: missing permission tokens.list-any (held by cluster admins)",
                    who.user
                ),
                "tokens.list-any",
            ));
        }
        (false, _) => Some(who.user.clone()),
    };
    Ok(Json(
        json!({"items": s.access.tokens.list(user.as_deref())}),
    ))
}

/// `DELETE /apis/coditect.io/v1/tokens/{id}`: from the next request on, it opens nothing.
pub(super) async fn revoke_token(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let object = vec![format!("token/{id}")];
    let Some(rec) = s.access.tokens.get(&id) else {
        return Err(crate::access::AccessError::NotFound(format!("token {id}")).into());
    };
    if rec.user != who.user && !who.cluster_admin {
        let reason = format!(
            "user {:?} may not revoke a token of {:?}: missing permission tokens.revoke-any (held by cluster admins)",
            who.user, rec.user
        );
        record(
            &s,
            &who,
            "token.revoke",
            object,
            Outcome::Denied,
            Some(reason.clone()),
        )
        .await?;
        return Err(forbidden(reason, "tokens.revoke-any"));
    }
    s.access.tokens.revoke(&id)?;
    record(&s, &who, "token.revoke", object, Outcome::Ok, None).await?;
    Ok(Json(json!({"revoked": id, "user": rec.user})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuditQuery {
    #[serde(default)]
    since: Option<u64>,
    /// RFC 3339: entries from this time on.
    #[serde(default)]
    since_time: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The organization an audit object names (`workspace/acme/x`, `organization/acme`).
fn organization_of(object: &str) -> Option<&str> {
    let mut parts = object.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("organization"), Some(org), _) => Some(org),
        (Some("team" | "workspace"), Some(org), Some(_)) => Some(org),
        _ => None,
    }
}

/// `GET /apis/coditect.io/v1/audit`: cluster admins read everything; an organization's
/// admins what touched it; everyone their own entries.
pub(super) async fn audit(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let since_ms = q
        .since_time
        .as_deref()
        .map(|t| {
            humantime::parse_rfc3339_weak(t).map_err(|e| {
                bad_request(format!(
                    "sinceTime: {e} (RFC 3339, e.g. 2026-12-01T08:00:00Z)"
                ))
            })
        })
        .transpose()?;
    let policy = s.access.policy(&s.store);
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let items = s.access.audit.read(q.since.unwrap_or(1), limit, |e| {
        let recent =
            since_ms.is_none_or(|t| humantime::parse_rfc3339_weak(&e.ts).is_ok_and(|ts| ts >= t));
        let objects = e.data["objects"].as_array().into_iter().flatten();
        let mine = who.cluster_admin
            || e.agent == who.user
            || objects
                .filter_map(|o| o.as_str().and_then(organization_of))
                .any(|org| policy.is_org_admin(org, &who.user));
        recent && mine
    })?;
    Ok(Json(json!({"items": items})))
}

/// `GET /apis/coditect.io/v1/audit/verify` (cluster admins): the whole chain checked.
pub(super) async fn verify_audit(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
) -> Result<Json<Value>, ApiError> {
    if !who.cluster_admin {
        return Err(forbidden(
            format!(
                "user {:?} may not verify the audit trail: missing permission audit.verify (held by cluster admins)",
                who.user
            ),
            "audit.verify",
        ));
    }
    Ok(Json(match s.access.audit.verify() {
        Ok(report) => json!({"ok": true, "events": report.events, "head": report.head}),
        Err(b) => json!({"ok": false, "seq": b.seq, "reason": b.reason}),
    }))
}
