//! Sessions: continued across a restart while valid, renewable, and on expiry recorded and
//! followed by a new session that continues the same workspace state and event chain.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use coditect_runtime::db::Databases;
use coditect_runtime::events::{EventDraft, EventLog, EventType};
use coditect_runtime::sessions::{SessionError, Sessions};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_expired_session_is_recorded_and_a_new_one_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Databases::open(dir.path()).unwrap());
    // A zero-length session has expired the moment it starts.
    let sessions = Sessions::open(db.clone(), Duration::ZERO, true).unwrap();
    let first = sessions.current();
    let (log, _) = EventLog::open(&dir.path().join("sessions"), first.id).unwrap();
    log.append(EventDraft::new(
        "alpha",
        EventType::AgentMessage,
        json!({"before": true}),
    ))
    .await
    .unwrap();
    let next = sessions
        .rotate_if_expired(&log)
        .await
        .unwrap()
        .expect("rotated");
    assert_eq!(next.id, first.id + 1);
    let e = log
        .append(EventDraft::new(
            "alpha",
            EventType::AgentMessage,
            json!({"after": true}),
        ))
        .await
        .unwrap();
    assert_eq!(e.session, next.id);
    assert!(
        dir.path()
            .join("sessions")
            .join(format!("{:06}.jsonl", next.id))
            .exists()
    );
    assert_eq!(
        log.verify().unwrap().events,
        4,
        "one chain across both sessions"
    );
    let (ended, reason): (Option<i64>, Option<String>) = db
        .sessions
        .read(|c| {
            c.query_row(
                "SELECT ended_at, end_reason FROM sessions WHERE id = ?1",
                [first.id as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    assert!(ended.is_some());
    assert_eq!(reason.as_deref(), Some("expired"));
}

#[test]
fn a_valid_session_continues_after_a_restart_and_can_be_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Databases::open(dir.path()).unwrap());
    let first = Sessions::open(db.clone(), HOUR, true).unwrap().current();
    let again = Sessions::open(db.clone(), HOUR, true).unwrap();
    assert_eq!(
        again.current().id,
        first.id,
        "a restart continues the session"
    );
    let renewed = again.renew().unwrap();
    assert_eq!(renewed.renewals, 1);
    assert!(renewed.expires_at_ms >= first.expires_at_ms);
    let fixed = Sessions::open(db, HOUR, false).unwrap();
    assert!(matches!(fixed.renew(), Err(SessionError::NotRenewable)));
}
