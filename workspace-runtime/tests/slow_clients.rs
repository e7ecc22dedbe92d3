//! A client that trickles its request headers (slowloris) is cut off after the header
//! timeout, on a clock the test controls (tokio's paused time: no real waiting); a client
//! that sends its request in time is served, and its WebSocket-free long answer is not
//! cut.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use axum::Router;
use axum::routing::get;
use coditect_runtime::api::{HEADER_READ_TIMEOUT, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/slow",
        get(|| async {
            // A long answer (a long poll): longer than the header timeout.
            tokio::time::sleep(HEADER_READ_TIMEOUT * 3).await;
            "done"
        }),
    );
    tokio::spawn(serve(listener, app, std::future::pending()));
    addr
}

#[tokio::test(start_paused = true)]
async fn a_client_trickling_its_headers_is_cut_off_after_the_header_timeout() {
    let addr = server().await;
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Trickle: ")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = Vec::new();
    // The server closes the connection (maybe after a 408); reading ends. Without the
    // timeout it would never end: the outer limit fails the test instead of hanging it.
    let read = tokio::time::timeout(HEADER_READ_TIMEOUT * 2, slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the trickling client was never cut off");
    let waited = started.elapsed();
    assert!(
        waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT * 2,
        "cut off after {waited:?}"
    );
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A request whose headers came in time is answered, however long the answer takes.
    let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    ok.read_to_end(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
        "{answer}"
    );
}
