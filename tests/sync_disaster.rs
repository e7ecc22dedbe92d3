//! Disaster: a real `coditect workspace-runtime` syncing every second takes a stream of
//! acknowledged writes; it is SIGKILLed mid-stream and its folder deleted (the machine is
//! gone). A new instance on a fresh folder restores from the bucket before it serves: the
//! databases pass integrity_check, the event chain verifies, nothing acknowledged before
//! the last sync round is missing, and what was lost spans at most the sync interval
//! (plus the round in flight). Run against the local folder bucket and a GCS emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use coditect_runtime::clock::now_ms;
use coditect_runtime::testkit::{ApiClient, GcsEmulator, TempRoot};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::RngExt;
use serde_json::json;

const SPEC: &str = r#"
apiVersion: coditect.io/v1
kind: Workspace
metadata: {name: disaster, organization: acme, team: qa}
spec:
  owner: tester
  agents: [{name: alpha, provider: offline}]
  sync: {databasesInterval: 1s, eventsInterval: 1s}
"#;

/// Tolerance over the 1 s interval for scheduling noise on a loaded 2-core machine: the
/// replicator starts each round early by what recent rounds took, so the window is the
/// interval when rounds take what they recently took (measured: 0.5–0.97 s).
const ROUND_SLACK_MS: u64 = 250;

struct Instance {
    child: Child,
    client: ApiClient,
}

fn start(spec: &Path, root: &Path, bucket: &str, emulator: Option<&str>) -> Instance {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coditect"));
    cmd.args(["workspace-runtime", "--spec"])
        .arg(spec)
        .arg("--root")
        .arg(root)
        .args(["--bucket", bucket])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(host) = emulator {
        cmd.env("STORAGE_EMULATOR_HOST", host);
    }
    let mut child = cmd.spawn().unwrap();
    let client = coditect_runtime::testkit::ready_client(&mut child);
    Instance { child, client }
}

/// Acknowledged writes: (unique name, acknowledged at ms).
#[derive(Default)]
struct Acked {
    events: Vec<(String, u64)>,
    tasks: Vec<(String, u64)>,
}

async fn disaster(bucket: String, emulator: Option<String>) {
    let dir = TempRoot::new();
    let spec = dir.path().join("workspace.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let root = dir.path().join("machine-1");
    let mut first = start(&spec, &root, &bucket, emulator.as_deref());

    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, acked) = (first.client.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let name = format!("w{w}n{n}");
                if n % 5 == 0 {
                    let Ok((200, _)) = client
                        .try_post("/v1/tasks", &json!({"agent": "alpha", "title": name}))
                        .await
                    else {
                        return;
                    };
                    acked.lock().unwrap().tasks.push((name, now_ms()));
                } else {
                    let e =
                        json!({"agent": "alpha", "type": "agent_message", "data": {"name": name}});
                    let Ok((200, _)) = client.try_post("/v1/events", &e).await else {
                        return;
                    };
                    acked.lock().unwrap().events.push((name, now_ms()));
                }
            }
        }));
    }
    // Let it run a few sync rounds, then the machine dies mid-stream.
    let run_ms = rand::rng().random_range(2500..4000);
    tokio::time::sleep(std::time::Duration::from_millis(run_ms)).await;
    let killed_at = now_ms();
    kill(Pid::from_raw(first.child.id() as i32), Signal::SIGKILL).unwrap();
    first.child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    std::fs::remove_dir_all(&root).unwrap();

    // A fresh machine: restore before serving.
    let second = start(
        &spec,
        &dir.path().join("machine-2"),
        &bucket,
        emulator.as_deref(),
    );
    let (_, verify) = second.client.get("/v1/verify").await;
    assert_eq!(
        verify["ok"], true,
        "databases and event chain check out: {verify}"
    );
    let (_, events) = second.client.get("/v1/events?since=0&limit=1000000").await;
    let have_events: HashSet<String> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["name"].as_str().map(str::to_string))
        .collect();
    let (_, tasks) = second.client.get("/v1/tasks?limit=100000").await;
    let have_tasks: HashSet<String> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect();

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let lost_events: Vec<&(String, u64)> = acked
        .events
        .iter()
        .filter(|(n, _)| !have_events.contains(n))
        .collect();
    let lost_tasks: Vec<&(String, u64)> = acked
        .tasks
        .iter()
        .filter(|(n, _)| !have_tasks.contains(n))
        .collect();
    let oldest_lost = lost_events
        .iter()
        .chain(&lost_tasks)
        .map(|(_, at)| *at)
        .min();
    let window_ms = oldest_lost.map_or(0, |at| killed_at.saturating_sub(at));
    eprintln!(
        "disaster ({bucket}): {} events and {} tasks acknowledged over {run_ms} ms; lost {} events and {} tasks, acknowledged in the last {window_ms} ms before the kill (interval 1000 ms)",
        acked.events.len(),
        acked.tasks.len(),
        lost_events.len(),
        lost_tasks.len(),
    );
    assert!(
        acked.events.len() > 100 && acked.tasks.len() > 20,
        "the stream ran"
    );
    assert!(
        window_ms <= 1000 + ROUND_SLACK_MS,
        "lost writes acknowledged {window_ms} ms before the kill: more than the 1 s interval"
    );
    // The restored workspace goes on taking writes.
    let (status, _) = second
        .client
        .post(
            "/v1/events",
            &json!({"agent": "alpha", "type": "agent_message", "data": {}}),
        )
        .await;
    assert_eq!(status, 200);
    drop(second);
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A clean stop (SIGTERM) ships everything in a final round, whatever the intervals: a
/// restore on a fresh folder has every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_leaves_nothing_behind_in_the_bucket() {
    let dir = TempRoot::new();
    let spec = dir.path().join("workspace.yaml");
    // The default intervals (30 s, 5 s): only the final round can ship these writes.
    std::fs::write(
        &spec,
        SPEC.replace("  sync: {databasesInterval: 1s, eventsInterval: 1s}\n", ""),
    )
    .unwrap();
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let mut first = start(&spec, &dir.path().join("machine-1"), &bucket, None);
    let mut titles = Vec::new();
    for n in 0..20 {
        let (status, _) = first
            .client
            .post(
                "/v1/tasks",
                &json!({"agent": "alpha", "title": format!("t{n}")}),
            )
            .await;
        assert_eq!(status, 200);
        titles.push(format!("t{n}"));
    }
    kill(Pid::from_raw(first.child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(first.child.wait().unwrap().success());
    let second = start(&spec, &dir.path().join("machine-2"), &bucket, None);
    let (_, tasks) = second.client.get("/v1/tasks?limit=1000").await;
    let mut have: Vec<String> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect();
    have.sort_by_key(|t| t[1..].parse::<u32>().unwrap_or(0));
    assert_eq!(have, titles);
    let (_, events) = second.client.get("/v1/events?since=0&limit=100000").await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"]["stopped"] == true),
        "the clean-stop checkpoint itself was shipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_machine_is_restored_from_a_local_bucket_within_the_interval() {
    let bucket = tempfile::tempdir().unwrap();
    disaster(format!("file://{}", bucket.path().display()), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_machine_is_restored_from_gcs_within_the_interval() {
    let emulator = GcsEmulator::start();
    Box::pin(disaster(
        emulator.url("disaster"),
        Some(emulator.host.clone()),
    ))
    .await;
}
