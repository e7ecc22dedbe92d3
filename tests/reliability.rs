//! Reliability with real processes: one control plane per data dir; acknowledged tasks
//! survive spec rolls and a delete/re-create, each done once, the file exact.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use coditect_runtime::testkit::TempRoot;
use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_on_the_same_data_dir_is_refused_naming_the_holder() {
    let tmp = TempRoot::new();
    let first = ControlPlane::up(tmp.path(), &[]);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_coditect"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    let pid = first.child.as_ref().unwrap().id();
    assert!(
        stderr.contains("is in use by another control plane")
            && stderr.contains(&format!("pid {pid}"))
            && stderr.contains(&first.server),
        "{stderr}"
    );
    // The first one is untouched.
    first.client().wait_ready(MINUTE).await.unwrap();
}

const ORG_TEAM: &str = "apiVersion: coditect.io/v1
kind: Organization
metadata: {name: acme}
spec:
  displayName: Acme
  storage: {bucket: 'file:bucket/acme'}
---
apiVersion: coditect.io/v1
kind: Team
metadata: {name: platform, organization: acme}
spec:
  members: [{user: carol}]
";

fn workspace(lease: &str) -> String {
    format!(
        "apiVersion: coditect.io/v1
kind: Workspace
metadata: {{name: carol-main, organization: acme, team: platform}}
spec:
  owner: carol
  locks: {{leaseTtl: {lease}, acquireTimeout: 20s}}
  agents: [{{name: writer, provider: offline}}]
  tasks:
    - title: 'create file log.md with start'
"
    )
}

fn apply(cp: &ControlPlane, dir: &Path, lease: &str) {
    std::fs::write(dir.join("ws.yaml"), workspace(lease)).unwrap();
    let out = cp.cli(&[
        "apply",
        "-f",
        dir.join("org.yaml").to_str().unwrap(),
        "-f",
        dir.join("ws.yaml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A control plane with carol's workspace applied and Ready: the temp folder, the
/// manifests' folder and the control plane.
async fn carol_up() -> (TempRoot, std::path::PathBuf, ControlPlane) {
    let tmp = TempRoot::new();
    let dir = tmp.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("org.yaml"), ORG_TEAM).unwrap();
    let cp = ControlPlane::up(&tmp.path().join("data"), &[]);
    apply(&cp, &dir, "30s");
    ready(&cp, "carol-main").await;
    (tmp, dir, cp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_tasks_survive_two_spec_rolls_and_a_delete_each_done_once() {
    let (_tmp, dir, cp) = carol_up().await;
    let gateway = cp.gateway("carol", "carol-main");
    let mut ids = HashSet::new();
    for n in 0..300 {
        let (status, t) = gateway
            .post(
                "/w/acme/carol-main/v1/tasks",
                &json!({"agent": "writer", "title": format!("append line-{n} to log.md")}),
            )
            .await;
        assert_eq!(status, 200, "{t}");
        ids.insert(t["id"].as_i64().unwrap());
    }
    // Two spec changes roll the instance while the tasks run, then a delete and a
    // re-create of the workspace (its folder is kept).
    let (_, tasks) = gateway
        .get("/w/acme/carol-main/v1/tasks?agent=writer")
        .await;
    let open = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "queued" || t["state"] == "running")
        .count();
    eprintln!("{open} tasks (of the first page) still open at the first roll");
    assert!(open > 0, "the rolls happen while tasks run ({open} open)");
    for lease in ["31s", "32s"] {
        apply(&cp, &dir, lease);
        cp.client()
            .watch_until(&ws_key("carol-main"), MINUTE, |r| {
                r.status_json()["observedGeneration"].as_i64() == r.metadata().generation
                    && coditect_control_plane::client::condition_holds(r, "Ready")
            })
            .await
            .unwrap();
    }
    let out = cp.cli(&["delete", "workspace", "carol-main"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    apply(&cp, &dir, "32s");
    ready(&cp, "carol-main").await;

    let ended = tasks_finished(&cp, "carol", "carol-main", &ids).await;
    let (_, events) = gateway
        .get("/w/acme/carol-main/v1/events?since=0&limit=100000")
        .await;
    let restarts = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "checkpoint" && e["data"]["started"] == true)
        .count();
    assert!(
        restarts >= 4,
        "the instance started four times ({restarts})"
    );
    let failed: Vec<i64> = ended
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(id, _)| *id)
        .collect();
    assert!(failed.is_empty(), "tasks failed: {failed:?}");
    let log =
        std::fs::read_to_string(cp.folder("carol", "carol-main").join("projects/log.md")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let distinct: BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(
        lines.len(),
        301,
        "start and 300 lines, none twice or lost:\n{log}"
    );
    assert_eq!(distinct.len(), 301, "no line twice");
    assert!(distinct.contains("start"));
    for n in 0..300 {
        assert!(
            distinct.contains(format!("line-{n}").as_str()),
            "line-{n} is missing"
        );
    }
}

/// The control plane's peak resident memory, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_streams_through_the_gateway_with_bounded_memory() {
    use sha2::Digest;
    let (_tmp, _dir, cp) = carol_up().await;
    let gateway = cp.gateway("carol", "carol-main");
    let (_, lease) = gateway
        .post(
            "/w/acme/carol-main/v1/locks",
            &json!({"path": "big.bin", "mode": "exclusive", "holder": "carol"}),
        )
        .await;
    let token = lease["token"].as_u64().unwrap().to_string();
    let pid = cp.child.as_ref().unwrap().id();
    let before = peak_rss(pid);

    // 60 MiB, sent in 1 MiB pieces.
    const PIECES: usize = 60;
    let piece = |i: usize| vec![(i % 251) as u8; 1 << 20];
    let mut sha = sha2::Sha256::new();
    for i in 0..PIECES {
        sha.update(piece(i));
    }
    let expected = hex::encode(sha.finalize());
    let body =
        futures_util::stream::iter((0..PIECES).map(move |i| Ok::<_, std::io::Error>(piece(i))));
    let resp = gateway
        .request(reqwest::Method::PUT, "/w/acme/carol-main/v1/files/big.bin")
        .header("x-fencing-token", &token)
        .header("content-length", (PIECES << 20).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let written: Value = resp.json().await.unwrap();
    assert_eq!(written["sha256"], expected, "{written}");
    // Read back through the gateway, streamed the other way.
    let back = gateway
        .request(reqwest::Method::GET, "/w/acme/carol-main/v1/files/big.bin")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&back)), expected);
    let grew = peak_rss(pid).saturating_sub(before);
    eprintln!(
        "control plane peak RSS grew {} KiB for a 60 MiB write and read",
        grew / 1024
    );
    assert!(
        grew < 24 << 20,
        "the gateway streams: its peak memory grew {grew} bytes for a 60 MiB body"
    );
}
