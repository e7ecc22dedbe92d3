//! `GET /apis/coditect.io/v1/usage?organization=&sinceMs=&untilMs=`: measured usage of
//! the workspaces the caller may read, over a window (the last 30 days by default), for
//! `coditect cost report` to price.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;

use super::{ApiError, ServerState, bad_request};
use crate::access::{Identity, Subject, Verb};
use crate::usage::UsageReport;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageQuery {
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    since_ms: Option<u64>,
    #[serde(default)]
    until_ms: Option<u64>,
}

const THIRTY_DAYS_MS: u64 = 30 * 86_400_000;

pub(super) async fn usage(
    State(s): State<ServerState>,
    Extension(who): Extension<Identity>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let until = q.until_ms.unwrap_or_else(coditect_runtime::clock::now_ms);
    let since = q.since_ms.unwrap_or(until.saturating_sub(THIRTY_DAYS_MS));
    if since >= until {
        return Err(bad_request(format!(
            "the window is empty: sinceMs {since} is not before untilMs {until}"
        )));
    }
    let policy = s.access.policy(&s.store);
    let report = crate::usage::measure(&s.store, q.organization.as_deref(), since, until, |r| {
        policy.decide(&who, Verb::Read, &Subject::of(r)).is_ok()
    })
    .await?;
    Ok(Json(report))
}
