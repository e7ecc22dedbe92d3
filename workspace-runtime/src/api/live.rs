//! `GET /v1/query/ws`: live queries. A client subscribes to a read-only `SELECT` on one of
//! the six databases and gets its rows, then a new result each time a commit touches a
//! table the statement reads, so a panel stays current without polling.
//!
//! Protocol (JSON text frames):
//!
//! | from | frame |
//! | --- | --- |
//! | client | `{"op":"subscribe","id":"a","db":"sessions","sql":"SELECT …"}` (an `id` again replaces it) |
//! | client | `{"op":"unsubscribe","id":"a"}` |
//! | server | `{"type":"result","id":"a","seq":N,"columns":[…],"rows":[[…]],"truncated":false}` |
//! | server | `{"type":"error","id":"a","error":"refused: …"}` (a write, `ATTACH`, a bad table) |
//! | server | `{"type":"reset","reason":"…"}`: every subscription is gone; subscribe again |
//!
//! `seq` is the event log's durable position when the rows were read: the result shows
//! the databases as of at least that event. Results are coalesced: commits that land while
//! a query re-runs are answered by one result, and a result equal to the last one sent is
//! not sent again. Each connection has a bounded queue of frames ([`QUEUE`]); a client that
//! reads too slowly to keep it from filling loses its subscriptions and gets one `reset`
//! instead of an unbounded backlog, and resumes by subscribing again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::query::{self, QueryResult};
use crate::workspace::WorkspaceRuntime;

/// Frames one connection may have waiting to be sent before it is reset.
pub const QUEUE: usize = 64;

/// The most subscriptions one connection holds.
pub const MAX_SUBSCRIPTIONS: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum ClientFrame {
    Subscribe { id: String, db: String, sql: String },
    Unsubscribe { id: String },
}

/// One subscription: what to run, what it reads, what was last sent.
#[derive(Debug)]
struct Subscription {
    db: String,
    sql: String,
    reads: BTreeSet<String>,
    last: Option<QueryResult>,
}

impl Subscription {
    fn concerns(&self, change: &crate::db::Change) -> bool {
        self.db == change.db && change.tables.iter().any(|t| self.reads.contains(t))
    }
}

/// The frames waiting for the socket, and the flag that says they overflowed.
#[derive(Debug)]
struct Outbox {
    tx: mpsc::Sender<String>,
    overflowed: Arc<AtomicBool>,
    resets: prometheus_client::metrics::counter::Counter,
}

impl Outbox {
    /// Queues `frame`; false when the queue was full (the connection must reset).
    fn push(&self, frame: &Value) -> bool {
        match self.tx.try_send(frame.to_string()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflowed.swap(true, Ordering::SeqCst) {
                    self.resets.inc();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// `GET /v1/query/ws`.
pub(super) async fn live_ws(
    ws: WebSocketUpgrade,
    State(rt): State<Arc<WorkspaceRuntime>>,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _open = rt.activity.connection();
        serve(socket, rt).await;
    })
}

async fn serve(socket: WebSocket, rt: Arc<WorkspaceRuntime>) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
    let overflowed = Arc::new(AtomicBool::new(false));
    let outbox = Outbox {
        tx,
        overflowed: overflowed.clone(),
        resets: rt.metrics.live_query_resets.clone(),
    };
    // The writer: sends queued frames; after an overflow, drops what is queued (it is
    // stale: the client will subscribe again) and sends one reset in its place.
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let frame = if overflowed.swap(false, Ordering::SeqCst) {
                while rx.try_recv().is_ok() {}
                json!({"type": "reset", "reason": format!(
                    "more than {QUEUE} frames were waiting for this connection; every subscription was dropped: subscribe again"
                )})
                .to_string()
            } else {
                frame
            };
            if sink.send(WsMessage::Text(frame.into())).await.is_err() {
                return;
            }
        }
    });
    let mut changes = rt.db.changes();
    let mut subs: BTreeMap<String, Subscription> = BTreeMap::new();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => break,
                Some(Ok(WsMessage::Text(text))) => {
                    if !on_frame(&rt, &outbox, &mut subs, text.as_str()).await {
                        subs.clear();
                    }
                }
                Some(Ok(_)) => {}
            },
            change = changes.recv() => {
                // Coalesce: everything already committed is answered by one re-run.
                let mut dirty: BTreeSet<String> = BTreeSet::new();
                let mut everything = false;
                let mut next = change;
                loop {
                    match next {
                        Ok(c) => dirty.extend(
                            subs.iter().filter(|(_, s)| s.concerns(&c)).map(|(id, _)| id.clone()),
                        ),
                        Err(RecvError::Lagged(_)) => everything = true,
                        Err(RecvError::Closed) => return,
                    }
                    next = match changes.try_recv() {
                        Ok(c) => Ok(c),
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(_) => break,
                    };
                }
                if everything {
                    dirty = subs.keys().cloned().collect();
                }
                for id in dirty {
                    if !refresh(&rt, &outbox, &mut subs, &id).await {
                        subs.clear();
                        break;
                    }
                }
            }
        }
    }
    writer.abort();
}

/// Handles one client frame; false when the outbox overflowed.
async fn on_frame(
    rt: &Arc<WorkspaceRuntime>,
    outbox: &Outbox,
    subs: &mut BTreeMap<String, Subscription>,
    text: &str,
) -> bool {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            return outbox.push(&json!({"type": "error", "id": Value::Null, "error": format!(
                "not a frame this endpoint takes ({e}): send {{\"op\":\"subscribe\",\"id\",\"db\",\"sql\"}} or {{\"op\":\"unsubscribe\",\"id\"}}"
            )}));
        }
    };
    match frame {
        ClientFrame::Unsubscribe { id } => {
            subs.remove(&id);
            true
        }
        ClientFrame::Subscribe { id, db, sql } => {
            if !subs.contains_key(&id) && subs.len() >= MAX_SUBSCRIPTIONS {
                return outbox.push(&json!({"type": "error", "id": id, "error": format!(
                    "refused: a connection holds at most {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe one first"
                )}));
            }
            subs.insert(
                id.clone(),
                Subscription {
                    db,
                    sql,
                    reads: BTreeSet::new(),
                    last: None,
                },
            );
            refresh(rt, outbox, subs, &id).await
        }
    }
}

/// Re-runs subscription `id` and queues its result when it changed (or its error, which
/// ends the subscription); false when the outbox overflowed.
async fn refresh(
    rt: &Arc<WorkspaceRuntime>,
    outbox: &Outbox,
    subs: &mut BTreeMap<String, Subscription>,
    id: &str,
) -> bool {
    let Some(sub) = subs.get(id) else {
        return true;
    };
    let (dbs, db, sql) = (rt.db.clone(), sub.db.clone(), sub.sql.clone());
    let seq = rt.events.durable_seq();
    let ran = tokio::task::spawn_blocking(move || query::run_reading(&dbs, &db, &sql))
        .await
        .map_err(|e| query::QueryError::Sqlite(e.to_string()))
        .and_then(|r| r);
    match ran {
        Err(e) => {
            subs.remove(id);
            outbox.push(&json!({"type": "error", "id": id, "error": e.to_string()}))
        }
        Ok((result, reads)) => {
            let Some(sub) = subs.get_mut(id) else {
                return true;
            };
            sub.reads = reads;
            if sub.last.as_ref() == Some(&result) {
                return true;
            }
            let frame = json!({
                "type": "result",
                "id": id,
                "seq": seq,
                "columns": result.columns,
                "rows": result.rows,
                "truncated": result.truncated,
            });
            sub.last = Some(result);
            outbox.push(&frame)
        }
    }
}
