//! Event log and live-stream endpoints: append, replay, WebSocket tail with resume, and
//! the message-bus stream, which follows the same resume rule.
//!
//! Resume rule: a client that reconnects with `since=<last seq it saw>` receives exactly
//! the events after it, in order, then live ones: no gap, no duplicate. The server
//! subscribes to the live feed *before* reading the durable position, replays up to that
//! position from disk, and then forwards live events, skipping any it already replayed
//! and replaying from disk again if it ever falls behind the live feed.

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::ApiError;
use crate::bus::MessageFilter;
use crate::events::{Event, EventDraft, EventType};
use crate::workspace::WorkspaceRuntime;

type Rt = State<Arc<WorkspaceRuntime>>;

#[derive(Debug, Deserialize)]
pub(super) struct AppendBody {
    agent: String,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default)]
    data: Value,
}

/// `POST /v1/events`: answers once the event is durable.
pub(super) async fn append(
    State(rt): Rt,
    Json(b): Json<AppendBody>,
) -> Result<Json<Value>, ApiError> {
    if b.agent.trim().is_empty() {
        return Err(ApiError::bad_request("agent must not be empty"));
    }
    let started = std::time::Instant::now();
    let event = rt
        .events
        .append(EventDraft::new(b.agent, b.kind, b.data))
        .await?;
    rt.metrics
        .event_append
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(
        json!({"seq": event.seq, "hash": event.hash, "ts": event.ts}),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplayQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/events?since=N&limit=L`: durable events after `since`, at most `limit`
/// (default 1 000, at most 10 000), as a JSON array. A page that is not the last says so
/// in its headers, the way paged HTTP APIs do: `X-Has-More: true`, `X-Next-Since: <seq>`
/// (ask again with `since=` that) and `Link: <…>; rel="next"`.
pub(super) async fn replay(
    State(rt): Rt,
    Query(q): Query<ReplayQuery>,
) -> Result<axum::response::Response, ApiError> {
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let events = rt.events.clone();
    let out = tokio::task::spawn_blocking(move || {
        events
            .replay(q.since + 1)
            .take(limit + 1)
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(super::paging::page(
        out,
        limit,
        "since",
        |e| e.seq.to_string(),
        "/v1/events",
    ))
}

/// `GET /v1/verify`: the event chain and every database's integrity check.
pub(super) async fn verify(State(rt): Rt) -> Json<Value> {
    let report = tokio::task::spawn_blocking(move || rt.verify()).await;
    match report {
        Ok(r) => Json(serde_json::to_value(&r).unwrap_or(Value::Null)),
        Err(e) => Json(json!({"ok": false, "error": e.to_string()})),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct TailQuery {
    #[serde(default)]
    since: u64,
}

/// `GET /v1/events/ws?since=N`: replay after N, then live, as JSON text frames.
pub(super) async fn tail_ws(
    ws: WebSocketUpgrade,
    State(rt): Rt,
    Query(q): Query<TailQuery>,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let _open = rt.activity.connection();
        if let Err(e) = tail(socket, rt, q.since).await {
            tracing::debug!(error = %e, "event stream ended");
        }
    })
}

async fn tail(mut socket: WebSocket, rt: Arc<WorkspaceRuntime>, since: u64) -> Result<(), String> {
    let (mut live, durable) = rt.events.subscribe();
    let mut last = replay_into(&mut socket, &rt, since, durable).await?;
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) if event.seq <= last => {}
                Ok(event) => {
                    if event.seq > last + 1 {
                        replay_into(&mut socket, &rt, last, event.seq - 1).await?;
                    }
                    send_event(&mut socket, &event).await?;
                    last = event.seq;
                }
                Err(RecvError::Lagged(_)) => {
                    last = replay_into(&mut socket, &rt, last, rt.events.durable_seq()).await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sends events `after < seq <= until` from disk; returns the last seq sent.
async fn replay_into(
    socket: &mut WebSocket,
    rt: &WorkspaceRuntime,
    after: u64,
    until: u64,
) -> Result<u64, String> {
    if until <= after {
        return Ok(after);
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let events = rt.events.clone();
    let reader = tokio::task::spawn_blocking(move || {
        for event in events.replay_until(after + 1, until) {
            if tx.blocking_send(event).is_err() {
                break;
            }
        }
    });
    let mut last = after;
    while let Some(event) = rx.recv().await {
        let event = event.map_err(|e| e.to_string())?;
        send_event(socket, &event).await?;
        last = event.seq;
    }
    reader.await.map_err(|e| e.to_string())?;
    Ok(last)
}

async fn send_event(socket: &mut WebSocket, event: &Event) -> Result<(), String> {
    let text = serde_json::to_string(event).map_err(|e| e.to_string())?;
    socket
        .send(WsMessage::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}

#[derive(Debug, Deserialize)]
pub(super) struct MessagesQuery {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    topic: Vec<String>,
    #[serde(default)]
    since: i64,
}

/// `GET /v1/messages/ws?agent=A&topic=T&since=ID`: stored messages after ID, then live.
pub(super) async fn messages_ws(
    ws: WebSocketUpgrade,
    State(rt): Rt,
    axum_extra_query: axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_messages_query(axum_extra_query.0.as_deref().unwrap_or(""))?;
    Ok(ws.on_upgrade(move |mut socket| async move {
        let _open = rt.activity.connection();
        let filter = MessageFilter {
            agent: q.agent,
            topics: q.topic.into_iter().collect(),
        };
        let mut live = rt.bus.subscribe();
        let mut last = q.since;
        let Ok(stored) = rt.bus.history(&filter, last, u32::MAX) else {
            return;
        };
        for m in stored {
            last = m.id;
            if send_json(&mut socket, &m).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(m) if m.id <= last || !filter.matches(&m) => {}
                    Ok(m) => {
                        last = m.id;
                        if send_json(&mut socket, &*m).await.is_err() { return; }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let Ok(missed) = rt.bus.history(&filter, last, u32::MAX) else { return };
                        for m in missed {
                            last = m.id;
                            if send_json(&mut socket, &m).await.is_err() { return; }
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                incoming = socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }))
}

/// Repeated `topic=` parameters, which serde's query extractor does not collect.
pub(super) fn parse_messages_query(raw: &str) -> Result<MessagesQuery, ApiError> {
    let mut q = MessagesQuery {
        agent: None,
        topic: Vec::new(),
        since: 0,
    };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "agent" | "to" => q.agent = Some(v.to_string()),
            "topic" => q.topic.push(v.to_string()),
            "since" => {
                q.since = v
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("since: not a number: {v}")))?
            }
            _ => {}
        }
    }
    Ok(q)
}

impl MessagesQuery {
    pub(super) fn into_parts(self) -> (MessageFilter, i64) {
        (
            MessageFilter {
                agent: self.agent,
                topics: self.topic.into_iter().collect(),
            },
            self.since,
        )
    }
}

async fn send_json<T: serde::Serialize>(socket: &mut WebSocket, value: &T) -> Result<(), String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    socket
        .send(WsMessage::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}
