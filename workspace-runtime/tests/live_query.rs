//! Live queries over a real WebSocket (`/v1/query/ws`): a subscription gets its rows, then
//! a new result after each commit that touches a table it reads (and only then); a client
//! that lets its queue overflow gets a reset and resumes by subscribing again; a statement
//! that writes or attaches is refused and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use coditect_runtime::api::LIVE_QUERY_QUEUE;
use coditect_runtime::testkit::TestWorkspace;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(ws: &TestWorkspace) -> Socket {
    let url = ws.client.ws_url("/v1/query/ws");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

async fn subscribe(socket: &mut Socket, id: &str, db: &str, sql: &str) {
    send(
        socket,
        json!({"op": "subscribe", "id": id, "db": db, "sql": sql}),
    )
    .await;
}

/// The next JSON text frame.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        if let Message::Text(t) = socket.next().await.unwrap().unwrap() {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn submit(ws: &TestWorkspace, title: &str) {
    let (status, body) = ws
        .client
        .post("/v1/tasks", &json!({"agent": "alpha", "title": title}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn message(ws: &TestWorkspace, body: &str) {
    ws.runtime
        .db
        .messages
        .write(|tx| {
            tx.execute(
                "INSERT INTO messages (ts, sender, topic, body) VALUES (1, 'alpha', 'notes', ?1)",
                [body],
            )
        })
        .unwrap();
}

#[tokio::test]
async fn a_subscription_gets_its_rows_then_each_change_to_what_it_reads() {
    let ws = TestWorkspace::start().await;
    submit(&ws, "first").await;
    let mut socket = connect(&ws).await;
    subscribe(
        &mut socket,
        "tasks",
        "sessions",
        "SELECT title FROM tasks ORDER BY id",
    )
    .await;
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "result", "{first}");
    assert_eq!(first["id"], "tasks");
    assert_eq!(first["columns"], json!(["title"]));
    assert_eq!(first["rows"], json!([["first"]]));
    assert!(first["seq"].is_u64(), "stamped with the event seq: {first}");

    subscribe(
        &mut socket,
        "notes",
        "messages",
        "SELECT body FROM messages ORDER BY id",
    )
    .await;
    let notes = next_json(&mut socket).await;
    assert_eq!(
        (notes["id"].clone(), notes["rows"].clone()),
        (json!("notes"), json!([]))
    );

    // A commit to messages re-runs the messages query only: the next frame is its result,
    // not a repeat of the tasks result.
    message(&ws, "hello").await;
    let update = next_json(&mut socket).await;
    assert_eq!(update["id"], "notes", "{update}");
    assert_eq!(update["rows"], json!([["hello"]]));

    // A commit to tasks: the tasks query's new rows, stamped no earlier than before.
    submit(&ws, "second").await;
    let update = next_json(&mut socket).await;
    assert_eq!(update["id"], "tasks", "{update}");
    assert_eq!(update["rows"], json!([["first"], ["second"]]));
    assert!(update["seq"].as_u64() >= first["seq"].as_u64());

    // Unsubscribed: its commits are no longer answered; the other's still are.
    send(&mut socket, json!({"op": "unsubscribe", "id": "tasks"})).await;
    submit(&ws, "third").await;
    message(&ws, "again").await;
    let update = next_json(&mut socket).await;
    assert_eq!(update["id"], "notes", "{update}");
    assert_eq!(update["rows"], json!([["hello"], ["again"]]));
}

#[tokio::test]
async fn a_query_that_writes_or_attaches_is_refused_and_changes_nothing() {
    let ws = TestWorkspace::start().await;
    submit(&ws, "keep me").await;
    let mut socket = connect(&ws).await;
    for (id, sql) in [
        ("delete", "DELETE FROM tasks"),
        ("update", "UPDATE tasks SET title = 'x'"),
        (
            "attach",
            "ATTACH DATABASE '/tmp/coditect-live-attach.db' AS x",
        ),
        ("two", "SELECT 1; DELETE FROM tasks"),
        ("pragma", "PRAGMA journal_mode = DELETE"),
    ] {
        subscribe(&mut socket, id, "sessions", sql).await;
        let frame = next_json(&mut socket).await;
        assert_eq!(frame["type"], "error", "{sql}: {frame}");
        assert_eq!(frame["id"], id);
        assert!(
            frame["error"].as_str().unwrap().contains("refused"),
            "{sql}: {frame}"
        );
    }
    subscribe(&mut socket, "x", "nope", "SELECT 1").await;
    let frame = next_json(&mut socket).await;
    assert!(
        frame["error"].as_str().unwrap().contains("no database"),
        "{frame}"
    );
    assert!(!std::path::Path::new("/tmp/coditect-live-attach.db").exists());
    subscribe(&mut socket, "ok", "sessions", "SELECT title FROM tasks").await;
    let frame = next_json(&mut socket).await;
    assert_eq!(
        frame["rows"],
        json!([["keep me"]]),
        "the table is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_lets_its_queue_overflow_gets_a_reset_and_resumes_by_subscribing() {
    let ws = TestWorkspace::start().await;
    // Large results (about 1 MiB each), so the socket's buffers fill quickly while the
    // client reads nothing; then the connection's queue fills.
    let filler = "x".repeat(1024);
    ws.runtime
        .db
        .messages
        .write(|tx| {
            for _ in 0..1000 {
                tx.execute(
                    "INSERT INTO messages (ts, sender, body) VALUES (1, 'alpha', ?1)",
                    [&filler],
                )?;
            }
            Ok(())
        })
        .unwrap();
    let mut socket = connect(&ws).await;
    subscribe(
        &mut socket,
        "big",
        "messages",
        "SELECT id, body, (SELECT count(*) FROM messages) FROM messages ORDER BY id DESC LIMIT 1000",
    )
    .await;
    // Every commit changes the result; the client reads nothing. Commit until the server
    // has given up on the connection rather than queue without bound.
    let resets = || ws.runtime.metrics.live_query_resets.get();
    let mut written = 0;
    while resets() == 0 {
        message(&ws, &format!("{written}")).await;
        written += 1;
        tokio::task::yield_now().await;
    }
    assert_eq!(resets(), 1);
    assert!(
        written > LIVE_QUERY_QUEUE,
        "the queue held {LIVE_QUERY_QUEUE} results"
    );
    let mut results = 0;
    loop {
        let frame = next_json(&mut socket).await;
        match frame["type"].as_str() {
            Some("result") => results += 1,
            Some("reset") => break,
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    }
    assert!(results >= 1, "results came before the reset");
    // The subscriptions are gone: subscribing again gives the current rows.
    subscribe(
        &mut socket,
        "count",
        "messages",
        "SELECT count(*) FROM messages",
    )
    .await;
    let frame = next_json(&mut socket).await;
    assert_eq!(frame["type"], "result", "{frame}");
    assert_eq!(frame["id"], "count");
    assert_eq!(
        frame["rows"],
        json!([[1000 + written]]),
        "resumed with every committed row"
    );
}
