//! The audit trail: every change made through the control plane (apply, delete, token
//! create and revoke, and refusals of them), who made it, on which objects, when, and how
//! it ended.
//!
//! It is an event log of its own (`<data>/audit/`), the workspace event log's code reused:
//! appends are fsynced before the request is answered, each entry's hash is chained to the
//! previous one, and [`AuditLog::verify`] proves nothing was removed, reordered or
//! changed. The entry's `agent` is the user; its `data` says what happened.

use std::path::Path;

use coditect_runtime::events::{ChainBreak, ChainReport, Event, EventDraft, EventLog, EventType};
use serde::Serialize;
use serde_json::{Value, json};

use super::AccessError;
use super::policy::Identity;

/// How a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Carried out.
    Ok,
    /// Refused by access control.
    Denied,
    /// Refused or failed for another reason (invalid, conflict, storage).
    Failed,
}

/// One change, before it is written.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Who.
    pub who: &'a Identity,
    /// What: `apply`, `delete`, `token.create`, `token.revoke`, `sleep`, `wake`, …
    pub action: &'a str,
    /// On which objects (`workspace/acme/alice-main`, `token/3fa2…`).
    pub objects: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, when it did not end well; what changed, when it did.
    pub detail: Option<String>,
}

/// The control plane's audit trail.
#[derive(Debug, Clone)]
pub struct AuditLog {
    log: EventLog,
}

impl AuditLog {
    /// Opens (creating) the trail in `dir`.
    ///
    /// # Errors
    /// [`AccessError::Audit`] when the log cannot be opened (a damaged line before the end
    /// is not repaired: the trail is left as it is for forensics).
    pub fn open(dir: &Path) -> Result<AuditLog, AccessError> {
        let (log, _) = EventLog::open(dir, 1).map_err(|e| AccessError::Audit(e.to_string()))?;
        Ok(AuditLog { log })
    }

    /// Appends an entry; returns once it is durable.
    ///
    /// # Errors
    /// [`AccessError::Audit`] when it could not be written.
    pub async fn record(&self, entry: Entry<'_>) -> Result<u64, AccessError> {
        let mut data = json!({
            "action": entry.action,
            "objects": entry.objects,
            "result": entry.outcome,
            "token": entry.who.token_id,
        });
        if let Some(detail) = entry.detail {
            data["detail"] = Value::String(detail);
        }
        let event = self
            .log
            .append(EventDraft::new(
                entry.who.user.clone(),
                EventType::Audit,
                data,
            ))
            .await
            .map_err(|e| AccessError::Audit(e.to_string()))?;
        tracing::info!(
            seq = event.seq,
            user = %entry.who.user,
            action = entry.action,
            result = ?entry.outcome,
            "audit"
        );
        Ok(event.seq)
    }

    /// Entries with `seq >= from` for which `keep` holds, at most `limit`.
    ///
    /// # Errors
    /// [`AccessError::Audit`] when the trail cannot be read.
    pub fn read(
        &self,
        from: u64,
        limit: usize,
        keep: impl Fn(&Event) -> bool,
    ) -> Result<Vec<Event>, AccessError> {
        let mut out = Vec::new();
        for event in self.log.replay(from) {
            let event = event.map_err(|e| AccessError::Audit(e.to_string()))?;
            if keep(&event) {
                out.push(event);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Walks the whole chain.
    ///
    /// # Errors
    /// The first broken link.
    pub fn verify(&self) -> Result<ChainReport, ChainBreak> {
        self.log.verify()
    }
}
