//! A full disk (a real tmpfs of a few MiB under the workspace): writes are refused with
//! 507 and a reason that names no host path, the refusal shows in the status and in
//! `/metrics`, reads go on, nothing acknowledged is lost, and writes resume without a
//! restart once space is freed. Needs to mount a tmpfs (root); says so and passes
//! without it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Write;
use std::process::Command;
use std::sync::Arc;

use coditect_runtime::testkit::{TempRoot, TestWorkspace, spec};
use serde_json::json;

/// A tmpfs mounted on a folder, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_answered_507_without_paths_and_writes_resume_once_freed() {
    let root = Arc::new(TempRoot::new());
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(root.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    }
    let _tmpfs = Tmpfs(root.path().to_path_buf());
    let ws = TestWorkspace::start_in(root.clone(), spec()).await;
    let (status, before) = ws
        .client
        .post(
            "/v1/events",
            &json!({"agent": "alpha", "type": "agent_message", "data": {"n": "before"}}),
        )
        .await;
    assert_eq!(status, 200, "{before}");

    // Fill the disk.
    let filler = root.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![7u8; 64 * 1024];
    while f.write_all(&block).and_then(|()| f.sync_data()).is_ok() {}
    drop(f);

    let mut refused = None;
    for n in 0..50 {
        let body = json!({"agent": "alpha", "type": "agent_message", "data": {"n": n, "pad": "x".repeat(4096)}});
        let (status, answer) = ws.client.post("/v1/events", &body).await;
        if status != 200 {
            refused = Some((status, answer));
            break;
        }
    }
    let (status, answer) = refused.expect("a write was refused once the disk was full");
    assert_eq!(status, 507, "{answer}");
    assert_eq!(answer["error"], "disk_full", "{answer}");
    let reason = answer["reason"].as_str().unwrap();
    assert!(reason.contains("disk is full"), "{reason}");
    assert!(
        !reason.contains(root.path().to_str().unwrap()) && !reason.contains("/tmp"),
        "the reason names no host path: {reason}"
    );

    // Reads go on; the refusal is in the status and the metrics.
    let (status, events) = ws.client.get("/v1/events?since=0").await;
    assert_eq!(status, 200);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["seq"] == before["seq"])
    );
    let (_, st) = ws.client.get("/v1/status").await;
    assert!(
        st["storage"]["diskFullRefusals"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert!(st["storage"]["lastDiskFullAt"].is_string(), "{st}");
    let metrics = ws
        .client
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("coditect_disk_full_refusals_total"),
        "{metrics}"
    );

    // Space freed: writes resume without a restart, and the chain verifies.
    std::fs::remove_file(&filler).unwrap();
    let (status, after) = ws
        .client
        .post(
            "/v1/events",
            &json!({"agent": "alpha", "type": "agent_message", "data": {"n": "after"}}),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    let (_, verify) = ws.client.get("/v1/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    drop(ws);
}
