//! `POST /v1/events/import`: events brought in from elsewhere (a v1 user's transcripts,
//! by the migration), exactly once. Each carries a `source` id; the log itself is the
//! record of what was imported (`data.importedFrom`), so an import cut off by a crash and
//! sent again appends only what is missing, in the order given. The log's `ts` stays the
//! time the event entered this workspace (point-in-time restore relies on it growing);
//! the original time travels in the event's data.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::events::{EventDraft, EventType};
use crate::workspace::WorkspaceRuntime;

/// The data field that names an imported event's source.
pub const IMPORTED_FROM: &str = "importedFrom";

/// Imports of one workspace run one at a time (two would both miss each other's events).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Deserialize)]
pub(super) struct ImportBody {
    events: Vec<ImportEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportEvent {
    /// Where it comes from: the same source is never imported twice.
    source: String,
    agent: String,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default)]
    data: Value,
}

/// `POST /v1/events/import` `{events: [{source, agent, type, data}]}`: answers once every
/// new event is durable, with how many were imported and how many were there already.
pub(super) async fn import(
    State(rt): State<Arc<WorkspaceRuntime>>,
    Json(b): Json<ImportBody>,
) -> Result<Json<Value>, ApiError> {
    if let Some(e) = b
        .events
        .iter()
        .find(|e| e.source.trim().is_empty() || e.agent.trim().is_empty())
    {
        return Err(ApiError::bad_request(format!(
            "every event needs a source and an agent (event from {:?})",
            e.source
        )));
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let events = rt.events.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = HashSet::new();
        for e in events.replay(1) {
            let e = e?;
            if let Some(s) = e.data.get(IMPORTED_FROM).and_then(Value::as_str) {
                seen.insert(s.to_string());
            }
        }
        Ok::<_, crate::error::StorageError>(seen)
    })
    .await
    .map_err(|e| ApiError::bad_request(e.to_string()))??;
    let mut skipped = 0;
    let mut batch = Vec::new();
    let mut in_body = HashSet::new();
    for e in b.events {
        if seen.contains(&e.source) || !in_body.insert(e.source.clone()) {
            skipped += 1;
            continue;
        }
        let mut data = match e.data {
            Value::Object(m) => Value::Object(m),
            Value::Null => json!({}),
            other => json!({"value": other}),
        };
        data[IMPORTED_FROM] = Value::String(e.source);
        batch.push(EventDraft::new(e.agent, e.kind, data));
    }
    let imported = batch.len();
    // Queued in order, committed together (one group commit for the batch).
    let appended =
        futures_util::future::join_all(batch.into_iter().map(|d| rt.events.append(d))).await;
    let mut last = None;
    for a in appended {
        last = Some(a?.seq);
    }
    Ok(Json(json!({
        "imported": imported,
        "skipped": skipped,
        "lastSeq": last,
    })))
}
