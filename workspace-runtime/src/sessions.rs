//! Workspace sessions: a working period of at most the spec's `session.maxDuration`
//! (8 h by default), renewable before it ends. A restarted instance continues a session
//! that has not expired; an expired one is recorded as such and a new session starts on
//! the same workspace state (same databases, same event chain, a new log segment).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::clock;
use crate::db::Databases;
use crate::error::StorageError;
use crate::events::{EventDraft, EventLog, EventType};

/// The current session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// Session number, increasing.
    pub id: u64,
    /// Milliseconds since the epoch.
    pub started_at_ms: u64,
    /// Milliseconds since the epoch; renewals move it.
    pub expires_at_ms: u64,
    /// Times renewed.
    pub renewals: u64,
}

/// Why a renewal was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The spec says sessions are not renewable.
    #[error("sessions of this workspace are not renewable (spec.session.renewable: false)")]
    NotRenewable,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The workspace's sessions.
#[derive(Debug)]
pub struct Sessions {
    db: Arc<Databases>,
    max: Duration,
    renewable: bool,
    current: Mutex<SessionInfo>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

impl Sessions {
    /// Continues the open session if it has not expired, or starts a new one.
    ///
    /// # Errors
    /// When the sessions database fails.
    pub fn open(db: Arc<Databases>, max: Duration, renewable: bool) -> Result<Self, StorageError> {
        let now = clock::now_ms();
        let open: Option<SessionInfo> = db.sessions.read(|c| {
            c.query_row(
                "SELECT id, started_at, expires_at, renewals FROM sessions WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok(SessionInfo { id: r.get::<_, i64>(0)? as u64, started_at_ms: r.get::<_, i64>(1)? as u64, expires_at_ms: r.get::<_, i64>(2)? as u64, renewals: r.get::<_, i64>(3)? as u64 }),
            )
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        })?;
        let current = match open {
            Some(s) if s.expires_at_ms > now => s,
            stale => {
                if let Some(s) = stale {
                    end(&db, s.id, "expired", s.expires_at_ms)?;
                }
                start(&db, now, max)?
            }
        };
        Ok(Sessions {
            db,
            max,
            renewable,
            current: Mutex::new(current),
        })
    }

    /// The current session.
    pub fn current(&self) -> SessionInfo {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Extends the current session to `maxDuration` from now.
    ///
    /// # Errors
    /// [`SessionError::NotRenewable`] when the spec forbids it.
    pub fn renew(&self) -> Result<SessionInfo, SessionError> {
        if !self.renewable {
            return Err(SessionError::NotRenewable);
        }
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let expires = clock::now_ms() + ms(self.max);
        self.db.sessions.write(|tx| {
            tx.execute(
                "UPDATE sessions SET expires_at = ?1, renewals = renewals + 1 WHERE id = ?2",
                [expires as i64, cur.id as i64],
            )
        })?;
        cur.expires_at_ms = expires;
        cur.renewals += 1;
        Ok(cur.clone())
    }

    /// If the current session has expired: records it, starts the next one, and points
    /// the event log at it. Returns the new session.
    ///
    /// # Errors
    /// When the sessions database fails.
    pub async fn rotate_if_expired(
        &self,
        events: &EventLog,
    ) -> Result<Option<SessionInfo>, StorageError> {
        let now = clock::now_ms();
        let (old, next) = {
            let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if cur.expires_at_ms > now {
                return Ok(None);
            }
            end(&self.db, cur.id, "expired", cur.expires_at_ms)?;
            let next = start(&self.db, now, self.max)?;
            let old = std::mem::replace(&mut *cur, next.clone());
            (old, next)
        };
        events
            .append(EventDraft::new(
                "runtime",
                EventType::Checkpoint,
                json!({"session_ended": old.id, "reason": "expired"}),
            ))
            .await?;
        events.set_session(next.id);
        events
            .append(EventDraft::new(
                "runtime",
                EventType::Checkpoint,
                json!({"session_started": next.id, "continues": old.id}),
            ))
            .await?;
        Ok(Some(next))
    }

    /// Milliseconds until the current session expires.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.current().expires_at_ms.saturating_sub(clock::now_ms()))
    }
}

fn start(db: &Databases, now: u64, max: Duration) -> Result<SessionInfo, StorageError> {
    let expires = now + ms(max);
    let id = db.sessions.write(|tx| {
        tx.execute(
            "INSERT INTO sessions (started_at, expires_at) VALUES (?1, ?2)",
            [now as i64, expires as i64],
        )?;
        Ok(tx.last_insert_rowid())
    })?;
    Ok(SessionInfo {
        id: id as u64,
        started_at_ms: now,
        expires_at_ms: expires,
        renewals: 0,
    })
}

fn end(db: &Databases, id: u64, reason: &str, at: u64) -> Result<(), StorageError> {
    db.sessions.write(|tx| {
        tx.execute(
            "UPDATE sessions SET ended_at = ?1, end_reason = ?2 WHERE id = ?3",
            rusqlite::params![at as i64, reason, id as i64],
        )
    })?;
    Ok(())
}
