//! Compaction of the event log in the bucket: a workspace that shipped 10,000 rounds
//! restores by reading a bounded number of objects (counted by the bucket's own meter),
//! and a real instance SIGKILLed in the middle of a compaction (after the folded segments
//! are uploaded, before the manifest names them) leaves a bucket that `backup verify`
//! passes and that restores every acknowledged event; restarted, it finishes the job.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;

use coditect_runtime::sync::Bucket;
use coditect_runtime::sync::compact::COMPACT_AFTER;
use coditect_runtime::sync::replicator::{Replicator, SyncTarget};
use coditect_runtime::sync::restore::{manifest, restore};
use coditect_runtime::testkit::{SPEC, TempRoot, TestWorkspace, spec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

const PREFIX: &str = "organizations/acme/teams/qa/users/tester/workspaces/test-ws";

async fn target(url: &str) -> SyncTarget {
    SyncTarget {
        bucket: Bucket::open(url).await.unwrap(),
        prefix: PREFIX.into(),
    }
}

/// `rounds` rounds of one acknowledged event each, shipped in-process; the last seq.
async fn ship_rounds(url: &str, rounds: usize) -> u64 {
    let t = target(url).await;
    let ws =
        TestWorkspace::start_synced(Arc::new(TempRoot::in_memory()), spec(), Some(t.clone())).await;
    let mut r = Replicator::start(ws.runtime.clone(), t.clone(), ws.runtime.sync.clone())
        .await
        .unwrap();
    let mut last = 0;
    for i in 0..rounds {
        let e = json!({"agent": "alpha", "type": "agent_message", "data": {"round": i}});
        let (status, body) = ws.client.post("/v1/events", &e).await;
        assert_eq!(status, 200, "{body}");
        last = body["seq"].as_u64().unwrap();
        r.round(false, true).await.unwrap();
    }
    r.run(async {}).await.expect("a clean stop");
    ws.stop().await;
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rounds_restore_from_a_bounded_number_of_objects() {
    let dir = TempRoot::in_memory();
    let url = format!("file://{}", dir.path().join("bucket").display());
    let last = ship_rounds(&url, 10_000).await;

    let t = target(&url).await;
    let m = manifest(&t).await.unwrap().unwrap();
    assert!(
        m.events.len() <= COMPACT_AFTER + 1,
        "{} segments named",
        m.events.len()
    );
    // Every event segment and round object in the bucket is one the manifest names (the
    // folded ones went).
    let named: std::collections::HashSet<String> = m
        .events
        .iter()
        .map(|e| &e.object.object)
        .chain(m.wal.iter().map(|w| &w.object.object))
        .map(|o| format!("{PREFIX}/{o}"))
        .collect();
    for dir in ["sessions/", "rounds/"] {
        for o in t.bucket.list(&format!("{PREFIX}/{dir}")).await.unwrap() {
            assert!(named.contains(&o.name), "{} is named by nothing", o.name);
        }
    }

    t.bucket.meter().take(); // count the restore's reads alone
    let dest = dir.path().join("restored");
    let report = restore(&t, &dest, None, &|_, _, _| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.last_seq, last, "every event restored");
    // The bound: 6 snapshots + WAL batches (none here) + the segments + project files.
    let bound = 6 + m.wal.len() + COMPACT_AFTER + 1 + m.projects.len();
    assert!(
        report.objects <= bound,
        "{} objects read, bound {bound}",
        report.objects
    );
    // Counted by the bucket itself: the manifest plus the objects the report names.
    let reads = t.bucket.meter().take().class_b as usize;
    assert_eq!(reads, report.objects + 1, "reads counted by the bucket");
    let chain = coditect_runtime::sync::restore::verify_chain(&dest.join("sessions")).unwrap();
    assert_eq!(chain.events, last, "the whole chain verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_a_compaction_leaves_a_restorable_bucket() {
    let dir = TempRoot::new();
    let url = format!("file://{}", dir.path().join("bucket").display());
    // As many segments as a manifest keeps unfolded: the instance's first round with a new
    // event ships one more and folds them.
    let last = ship_rounds(&url, COMPACT_AFTER).await;
    let spec_file = dir.path().join("ws.yaml");
    std::fs::write(
        &spec_file,
        format!("{SPEC}  sync: {{databasesInterval: 1s, eventsInterval: 1s}}\n"),
    )
    .unwrap();
    let run = |root: &str, pause: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coditect"));
        cmd.args(["workspace-runtime", "--spec"])
            .arg(&spec_file)
            .arg("--root")
            .arg(dir.path().join(root))
            .args(["--bucket", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if pause {
            cmd.env("CODITECT_PAUSE_AT", "compaction:uploaded");
        }
        cmd.spawn().unwrap()
    };
    let mut child = run("machine-1", true);
    let client = coditect_runtime::testkit::ready_client(&mut child);
    let e = json!({"agent": "alpha", "type": "agent_message", "data": {"after": "restore"}});
    let (status, body) = client.post("/v1/events", &e).await;
    assert_eq!(status, 200, "{body}");
    let acked = body["seq"].as_u64().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let paused = tokio::task::spawn_blocking(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("paused at compaction:uploaded"))
    })
    .await
    .unwrap();
    assert!(paused, "the instance reached the fault point");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();

    let backup = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_coditect"))
            .env("CODITECT_SERVER", "http://127.0.0.1:9")
            .args(["backup"])
            .args(args)
            .args(["test-ws", "--bucket", &url])
            .output()
            .unwrap()
    };
    let verify = backup(&["verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let t = target(&url).await;
    let m = manifest(&t).await.unwrap().unwrap();
    // Killed between the uploads and the manifest: the manifest is the one before, and
    // the uploaded objects are there beside it, named by nothing.
    assert_eq!(m.events.len(), COMPACT_AFTER, "the fold was not published");
    assert_eq!(m.last_seq(), last);
    let listed = t.bucket.list(&format!("{PREFIX}/sessions/")).await.unwrap();
    assert!(
        !listed.is_empty(),
        "mid-compaction: {} objects",
        listed.len()
    );

    // Restarted on its folder: it ships the acknowledged event, folds, and a clean stop
    // leaves a compacted, verified bucket with every event.
    let mut again = run("machine-1", false);
    let _client = coditect_runtime::testkit::ready_client(&mut again);
    let stderr = std::io::BufReader::new(again.stderr.take().unwrap());
    std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .for_each(|l| eprintln!("instance: {l}"))
    });
    kill(Pid::from_raw(again.id() as i32), Signal::SIGTERM).unwrap();
    let status = again.wait().unwrap();
    assert!(status.success(), "a clean stop: {status:?}");
    let m = manifest(&t).await.unwrap().unwrap();
    assert!(
        m.events.len() <= COMPACT_AFTER,
        "{} segments",
        m.events.len()
    );
    assert!(
        m.last_seq() >= acked && acked > last,
        "the acknowledged event is in the bucket"
    );
    let verify = backup(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
