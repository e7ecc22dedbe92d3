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

const DAY_MS: u64 = 86_400_000;
const THIRTY_DAYS_MS: u64 = 30 * DAY_MS;
/// The longest window a usage query may span (the days a manifest keeps).
const MAX_WINDOW_DAYS: u64 = coditect_runtime::sync::meter::KEEP_DAYS as u64;

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
    // The usage record keeps about 400 days; a longer or future window is a mistake.
    let now = coditect_runtime::clock::now_ms();
    if until > now + DAY_MS || until - since > MAX_WINDOW_DAYS * DAY_MS {
        return Err(bad_request(format!(
            "the window must end by tomorrow and span at most {MAX_WINDOW_DAYS} days"
        )));
    }
    let policy = s.access.policy(&s.store);
    let reads = crate::usage::BucketReads::ManifestAndListing;
    let org = q.organization.as_deref();
    let report = crate::usage::measure(&s.store, org, (since, until), reads, |r| {
        policy.decide(&who, Verb::Read, &Subject::of(r)).is_ok()
    })
    .await?;
    Ok(Json(report))
}
