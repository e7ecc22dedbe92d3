//! `POST /v1/events/import`: events brought in from elsewhere (a v1 user's transcripts,
//! by the migration), exactly once. Each carries a `source` id; the log itself is the
//! record of what was imported (`data.importedFrom`), so an import cut off by a crash and
//! sent again appends only what is missing, in the order given. The log's `ts` stays the
//! time the event entered this workspace (point-in-time restore relies on it growing);
//! the original time travels in the event's data (`data.v1.ts` for a v1 transcript).
//!
//! Imported events also land where the workspace's history is read from: each one is a
//! row of the `parsed_sessions` digest (by its seq, with its original time), and each
//! imported `agent_message` a row of the `messages` database (topic `imported`, at its
//! original time). Both are written for every imported event in the log, new or not, and
//! skip what is there already, so an import cut off between the log and the databases
//! is completed by the next one.

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
    let (seen, mut history) = tokio::task::spawn_blocking(move || {
        let mut seen = HashSet::new();
        let mut imported = Vec::new();
        for e in events.replay(1) {
            let e = e?;
            if let Some(s) = e.data.get(IMPORTED_FROM).and_then(Value::as_str) {
                seen.insert(s.to_string());
                imported.push(e);
            }
        }
        Ok::<_, crate::error::StorageError>((seen, imported))
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
        let e = a?;
        last = Some(e.seq);
        history.push((*e).clone());
    }
    let db = rt.db.clone();
    tokio::task::spawn_blocking(move || record_history(&history, &db))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(json!({
        "imported": imported,
        "skipped": skipped,
        "lastSeq": last,
    })))
}

/// The original time of an imported event, in ms since the epoch (its `data.v1.ts`, or
/// `data.ts`), else the time it entered the log.
fn original_ms(e: &crate::events::Event) -> i64 {
    let ts = e.data["v1"]["ts"]
        .as_str()
        .or_else(|| e.data["ts"].as_str())
        .unwrap_or(&e.ts);
    ts.parse::<jiff::Timestamp>()
        .or_else(|_| e.ts.parse::<jiff::Timestamp>())
        .map(|t| t.as_millisecond())
        .unwrap_or_default()
}

/// Writes every imported event of the log (`imported`) into the `parsed_sessions` digest
/// and, for messages, the `messages` database, skipping what is there already.
fn record_history(
    imported: &[crate::events::Event],
    db: &crate::db::Databases,
) -> Result<(), ApiError> {
    if imported.is_empty() {
        return Ok(());
    }
    db.parsed_sessions.write(|tx| {
        let mut put = tx.prepare_cached(
            "INSERT OR IGNORE INTO event_digest (seq, session, agent, type, ts, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for e in imported {
            let at = jiff::Timestamp::from_millisecond(original_ms(e))
                .map(|t| t.to_string())
                .unwrap_or_else(|_| e.ts.clone());
            let summary = e.data["text"]
                .as_str()
                .or_else(|| e.data["result"].as_str())
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>();
            let kind = serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            put.execute(rusqlite::params![
                i64::try_from(e.seq).unwrap_or(i64::MAX),
                i64::try_from(e.session).unwrap_or(i64::MAX),
                e.agent,
                kind,
                at,
                summary
            ])?;
        }
        Ok(())
    })?;
    db.messages.write(|tx| {
        // The sources already recorded, read in one scan (the import may be a retry of one
        // that was cut off).
        let mut have = tx
            .prepare_cached(
                "SELECT json_extract(body, '$.importedFrom') FROM messages WHERE topic = 'imported'",
            )?
            .query_map([], |row| row.get::<_, Option<String>>(0))?
            .filter_map(Result::transpose)
            .collect::<Result<std::collections::HashSet<String>, _>>()?;
        let mut put = tx.prepare_cached(
            "INSERT INTO messages (ts, sender, recipient, topic, body) VALUES (?1, ?2, NULL, 'imported', ?3)",
        )?;
        for e in imported
            .iter()
            .filter(|e| e.kind == EventType::AgentMessage)
        {
            let source = e.data[IMPORTED_FROM].as_str().unwrap_or_default();
            if !have.insert(source.to_string()) {
                continue;
            }
            let sender = e.data["from"].as_str().unwrap_or(&e.agent);
            let body = json!({
                "text": e.data["text"],
                "agent": e.agent,
                IMPORTED_FROM: source,
                "seq": e.seq,
            });
            put.execute(rusqlite::params![original_ms(e), sender, body.to_string()])?;
        }
        Ok(())
    })?;
    Ok(())
}
