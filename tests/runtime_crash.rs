//! Crash safety of a real `coditect workspace-runtime` process: SIGKILL it in the middle
//! of a stream of acknowledged writes, at random points, several times; after each restart
//! every acknowledged event and task is there, the event chain verifies and all six
//! databases pass `PRAGMA integrity_check`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use coditect_runtime::testkit::{ApiClient, SPEC, TempRoot};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::{RngExt, SeedableRng};
use serde_json::json;

struct Instance {
    child: Child,
    client: ApiClient,
}

/// Starts the real binary and waits for its ready line.
fn start(spec: &Path, root: &Path) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .args(["workspace-runtime", "--spec"])
        .arg(spec)
        .arg("--root")
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let client = coditect_runtime::testkit::ready_client(&mut child);
    Instance { child, client }
}

#[derive(Default, Clone)]
struct Acked {
    events: Vec<(u64, usize, usize)>,
    tasks: Vec<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_acknowledged() {
    let root = TempRoot::new();
    let spec = root.path().join("workspace.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let seed: u64 = rand::rng().random();
    eprintln!("crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..5 {
        let mut instance = start(&spec, root.path());
        let kill_at = acked.lock().unwrap().events.len() + rng.random_range(30..300);
        let (enough_tx, mut enough_rx) = tokio::sync::watch::channel(false);
        let mut writers = Vec::new();
        for w in 0..6 {
            let (client, acked, enough_tx) =
                (instance.client.clone(), acked.clone(), enough_tx.clone());
            writers.push(tokio::spawn(async move {
                for n in 0.. {
                    if n % 7 == 3 {
                        let task = json!({"agent": "alpha", "title": format!("r{round}w{w}n{n}")});
                        let Ok((status, t)) = client.try_post("/v1/tasks", &task).await else { return };
                        if status == 200 {
                            acked.lock().unwrap().tasks.push(t["id"].as_i64().unwrap());
                        }
                    } else {
                        let body = json!({"agent": "alpha", "type": "agent_message", "data": {"round": round, "w": w, "n": n}});
                        let Ok((status, e)) = client.try_post("/v1/events", &body).await else { return };
                        if status == 200 {
                            acked.lock().unwrap().events.push((e["seq"].as_u64().unwrap(), w, n));
                        }
                    }
                    if acked.lock().unwrap().events.len() >= kill_at {
                        let _ = enough_tx.send(true);
                    }
                }
            }));
        }
        let _ = enough_rx.wait_for(|e| *e).await;
        kill(Pid::from_raw(instance.child.id() as i32), Signal::SIGKILL).unwrap();
        instance.child.wait().unwrap();
        for w in writers {
            w.await.unwrap();
        }
        let total = acked.lock().unwrap().events.len();
        eprintln!("round {round}: SIGKILL at {total} acknowledged events (target {kill_at})");
        assert!(total >= kill_at, "killed before the target");
        let snapshot = acked.lock().unwrap().clone();
        check(&spec, root.path(), &snapshot).await;
    }
}

/// Restarts the instance and checks everything acknowledged is there and intact.
async fn check(spec: &Path, root: &Path, acked: &Acked) {
    let mut instance = start(spec, root);
    let c = &instance.client;
    let (_, verify) = c.get("/v1/verify").await;
    assert_eq!(verify["ok"], true, "chain and databases: {verify}");
    for (db, result) in verify["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d[0].clone(), d[1].clone()))
    {
        assert_eq!(result, "ok", "integrity_check of {db}");
    }
    let mut stored = std::collections::HashMap::new();
    let mut since = 0;
    loop {
        let (_, page) = c
            .get(&format!("/v1/events?since={since}&limit=10000"))
            .await;
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        for e in page {
            since = e["seq"].as_u64().unwrap();
            stored.insert(since, e["data"].clone());
        }
    }
    for (seq, w, n) in &acked.events {
        let data = stored
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged event {seq} is missing"));
        assert_eq!(
            (data["w"].as_u64(), data["n"].as_u64()),
            (Some(*w as u64), Some(*n as u64)),
            "event {seq} changed"
        );
    }
    let (_, r) = c
        .post(
            "/v1/query",
            &json!({"db": "sessions", "sql": "SELECT id FROM tasks"}),
        )
        .await;
    let tasks: std::collections::HashSet<i64> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_i64().unwrap())
        .collect();
    for id in &acked.tasks {
        assert!(tasks.contains(id), "acknowledged task {id} is missing");
    }
    // Stop it cleanly for the next round (SIGTERM: the graceful path).
    kill(Pid::from_raw(instance.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = instance.child.wait().unwrap();
    assert!(status.success(), "clean stop: {status}");
}
