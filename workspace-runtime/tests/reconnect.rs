//! Reconnecting over a real WebSocket: a client that comes back with `since=<last seq>`
//! gets exactly the events it missed, then live ones. No gap, no duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use coditect_runtime::events::{EventDraft, EventType};
use coditect_runtime::testkit::TestWorkspace;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(ws: &TestWorkspace, since: u64) -> Socket {
    let url = ws.client.ws_url(&format!("/v1/events/ws?since={since}"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next JSON text frame.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        if let Message::Text(t) = socket.next().await.unwrap().unwrap() {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn next_seq(socket: &mut Socket) -> u64 {
    next_json(socket).await["seq"].as_u64().unwrap()
}

async fn append(ws: &TestWorkspace, n: usize) {
    for i in 0..n {
        ws.runtime
            .events
            .append(EventDraft::new(
                "alpha",
                EventType::AgentMessage,
                json!({"i": i}),
            ))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn reconnect_resumes_without_gap_or_duplicate() {
    let ws = TestWorkspace::start().await;
    append(&ws, 20).await;
    let mut seen: Vec<u64> = Vec::new();
    let mut socket = connect(&ws, 0).await;
    // Read part of the backlog, then drop the connection mid-stream.
    for _ in 0..12 {
        seen.push(next_seq(&mut socket).await);
    }
    drop(socket);
    // Events keep coming while the client is away, and while it reconnects.
    append(&ws, 15).await;
    let ws2 = ws.runtime.clone();
    let writer = tokio::spawn(async move {
        for i in 0..30 {
            ws2.events
                .append(EventDraft::new(
                    "beta",
                    EventType::ToolCall,
                    json!({"live": i}),
                ))
                .await
                .unwrap();
        }
    });
    let mut socket = connect(&ws, *seen.last().unwrap()).await;
    writer.await.unwrap();
    let total = ws.runtime.events.durable_seq();
    while seen.last() != Some(&total) {
        seen.push(next_seq(&mut socket).await);
    }
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "every event exactly once, in order"
    );
    // And the stream stays live.
    append(&ws, 1).await;
    assert_eq!(next_seq(&mut socket).await, total + 1);
}

#[tokio::test]
async fn many_reconnects_under_load_never_lose_or_repeat() {
    let ws = TestWorkspace::start().await;
    let rt = ws.runtime.clone();
    let writer = tokio::spawn(async move {
        for i in 0..300 {
            rt.events.append_nowait(EventDraft::new(
                "alpha",
                EventType::AgentMessage,
                json!({"i": i}),
            ));
            if i % 25 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut seen: Vec<u64> = Vec::new();
    let mut since = 0;
    for round in 0..10 {
        let mut socket = connect(&ws, since).await;
        for _ in 0..(5 + round * 3) {
            let seq = next_seq(&mut socket).await;
            seen.push(seq);
            since = seq;
        }
    }
    writer.await.unwrap();
    assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_bus_delivers_live_and_resumes_after_reconnect() {
    let ws = TestWorkspace::start().await;
    let c = &ws.client;
    let send = |to: Option<&str>, topic: Option<&str>, n: i64| {
        let mut body = json!({"from": "alpha", "body": {"n": n}});
        if let Some(to) = to {
            body["to"] = json!(to);
        }
        if let Some(topic) = topic {
            body["topic"] = json!(topic);
        }
        async move {
            c.post("/v1/messages", &body).await.1["id"]
                .as_i64()
                .unwrap()
        }
    };
    let url = ws
        .client
        .ws_url("/v1/messages/ws?agent=beta&topic=build&since=0");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut expected = vec![send(Some("beta"), None, 1).await];
    send(None, Some("other"), 2).await; // not for beta
    expected.push(send(None, Some("build"), 3).await);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        if let Message::Text(t) = socket.next().await.unwrap().unwrap() {
            got.push(
                serde_json::from_str::<Value>(&t).unwrap()["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
    }
    assert_eq!(got, expected, "live delivery, filtered");
    drop(socket);
    let missed = vec![
        send(Some("beta"), None, 4).await,
        send(None, Some("build"), 5).await,
    ];
    let url = ws.client.ws_url(&format!(
        "/v1/messages/ws?agent=beta&topic=build&since={}",
        got.last().unwrap()
    ));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut after = Vec::new();
    while after.len() < missed.len() {
        if let Message::Text(t) = socket.next().await.unwrap().unwrap() {
            after.push(
                serde_json::from_str::<Value>(&t).unwrap()["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
    }
    assert_eq!(after, missed, "exactly the missed messages after reconnect");
}
