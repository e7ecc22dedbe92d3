//! Request size limits on the instance: JSON bodies over 2 MiB (sent, or declared: 30 MB)
//! are refused with 413 in the API's JSON error shape; a project file of tens of MB is
//! written streamed and lands byte for byte; a file over its limit is refused by its
//! declared length before any byte is taken, leaving nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use coditect_runtime::testkit::TestWorkspace;
use serde_json::{Value, json};
use sha2::Digest;

/// Sends a request that declares `length` bytes of body and never sends them: a limit
/// checked on the declared length answers at once (a server that waited would hang the
/// test); asserts the JSON 413.
async fn declared_only(
    ws: &TestWorkspace,
    method: reqwest::Method,
    path: &str,
    length: impl ToString,
    headers: &[(&str, &str)],
) {
    let mut req = ws
        .client
        .request(method, path)
        .header("content-length", length.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let never = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let resp = req
        .body(reqwest::Body::wrap_stream(never))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_large", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_a_json_413_and_large_files_stream_to_disk() {
    let ws = TestWorkspace::start().await;
    // A body that declares no length is refused once its bytes cross the limit (just over
    // it, so the little the server leaves unread cannot break the upload's pipe).
    let json = json!({"agent": "alpha", "type": "agent_message", "data": {"pad": "x".repeat((2 << 20) + 1024)}}).to_string();
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = json
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let resp = ws
        .client
        .request(reqwest::Method::POST, "/v1/events")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_large", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("2 MiB"), "{body}");
    // A 30 MB body is refused by its declared length, before its bytes are taken (the
    // body never comes: a server that waited for it would hang this test). Sending the
    // 30 MB for real races the refusal against the upload and ends in a broken pipe.
    declared_only(
        &ws,
        reqwest::Method::POST,
        "/v1/events",
        "30000000",
        &[("content-type", "application/json")],
    )
    .await;
    let (_, missing) = ws.client.get("/v1/no-such-route").await;
    assert_eq!(
        missing["error"], "not_found",
        "errors are JSON everywhere: {missing}"
    );

    let (_, lease) = ws
        .client
        .post(
            "/v1/locks",
            &json!({"path": "assets/", "mode": "exclusive", "holder": "alpha"}),
        )
        .await;
    let token = lease["token"].as_u64().unwrap().to_string();
    let content: Vec<u8> = (0..40_000_000u32).map(|i| (i % 251) as u8).collect();
    let resp = ws
        .client
        .request(reqwest::Method::PUT, "/v1/files/assets/blob.bin")
        .header("x-fencing-token", &token)
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let written: Value = resp.json().await.unwrap();
    assert_eq!(written["size"], 40_000_000);
    assert_eq!(
        written["sha256"],
        hex::encode(sha2::Sha256::digest(&content))
    );
    let on_disk = std::fs::read(ws.runtime.layout.projects().join("assets/blob.bin")).unwrap();
    assert!(on_disk == content, "the file landed byte for byte");

    // Over the file limit by its declared length: refused before the body is read.
    declared_only(
        &ws,
        reqwest::Method::PUT,
        "/v1/files/assets/huge.bin",
        (300u64 << 20).to_string(),
        &[("x-fencing-token", &token)],
    )
    .await;
    let leftovers: Vec<_> = std::fs::read_dir(ws.runtime.layout.projects().join("assets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers,
        ["blob.bin"],
        "nothing of the refused write stays behind"
    );
}
