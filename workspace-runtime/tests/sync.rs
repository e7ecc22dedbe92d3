//! Sync and restore, one suite for every bucket backend (a local folder, a real GCS
//! emulator over HTTP, and a real S3-compatible server, the mirror's store): a workspace's databases, event log and project files shipped in
//! rounds and restored into an empty folder byte for byte; a restore to an earlier time;
//! an instance on an empty folder restoring before it serves; a second instance taking
//! the workspace over and fencing the first; a store that stops mid-sync.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;

use coditect_runtime::sync::Bucket;
use coditect_runtime::sync::replicator::{Replicator, SyncError, SyncTarget};
use coditect_runtime::sync::restore::{manifest, restore};
use coditect_runtime::testkit::{GcsEmulator, S3Server, TempRoot, TestWorkspace, spec};
use common::{task_titles, write_some};
use serde_json::Value;

const PREFIX: &str = "organizations/acme/teams/qa/users/tester/workspaces/test-ws";

async fn target(url: &str, emulator: Option<String>) -> SyncTarget {
    SyncTarget {
        bucket: Bucket::open_at(url, emulator).await.unwrap(),
        prefix: PREFIX.into(),
    }
}

async fn suite(t: SyncTarget) {
    let ws = TestWorkspace::start_synced(Arc::new(TempRoot::new()), spec(), Some(t.clone())).await;
    let mut r = Replicator::start(ws.runtime.clone(), t.clone(), ws.runtime.sync.clone())
        .await
        .unwrap();
    write_some(&ws, 1).await;
    r.round(true, true).await.unwrap();
    let first = manifest(&t).await.unwrap().unwrap();
    assert_eq!(
        (first.generation, first.wal.len()),
        (1, 1),
        "one batch for all six databases"
    );
    assert!(ws.runtime.sync.get().pending_since_ms.is_none());
    assert_eq!(ws.runtime.sync.lag_seconds(), 0.0);
    // Nothing changed: no object, no manifest write.
    let uploads = ws.runtime.sync.get().uploads;
    r.round(true, true).await.unwrap();
    assert_eq!(
        ws.runtime.sync.get().uploads,
        uploads,
        "an idle round ships nothing"
    );

    let between = coditect_runtime::clock::now_ms();
    write_some(&ws, 2).await;
    r.round(true, true).await.unwrap();

    // A full restore into an empty folder equals the live workspace.
    let dest = tempfile::tempdir().unwrap();
    let report = restore(&t, dest.path(), None, &|_, _, _| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.batches, 2);
    assert_eq!(report.last_seq, ws.runtime.events.durable_seq());
    assert_eq!(
        task_titles(dest.path()),
        task_titles(ws.runtime.layout.root())
    );
    assert_eq!(task_titles(dest.path()).len(), 10);
    for f in ["src/r1.rs", "src/r2.rs"] {
        assert_eq!(
            std::fs::read(dest.path().join("projects").join(f)).unwrap(),
            std::fs::read(ws.runtime.layout.projects().join(f)).unwrap()
        );
    }
    let chain =
        coditect_runtime::sync::restore::verify_chain(&dest.path().join("sessions")).unwrap();
    assert_eq!(chain.events, report.last_seq);

    // To a time between the rounds: the first round only.
    let earlier = tempfile::tempdir().unwrap();
    restore(&t, earlier.path(), Some(between), &|_, _, _| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task_titles(earlier.path()).len(), 5);
    let rewound =
        coditect_runtime::sync::restore::verify_chain(&earlier.path().join("sessions")).unwrap();
    assert!(
        rewound.events < report.last_seq,
        "events after the time are left out"
    );

    // An instance on an empty folder restores before it serves.
    let again =
        TestWorkspace::start_synced(Arc::new(TempRoot::new()), spec(), Some(t.clone())).await;
    let (_, tasks) = again.client.get("/v1/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 10);
    let (_, events) = again.client.get("/v1/events?since=0&limit=10000").await;
    let restored: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["round"].is_u64())
        .collect();
    assert_eq!(restored.len(), 10, "every acknowledged event came back");

    // It takes the workspace over: the first instance is fenced from then on.
    let _second = Replicator::start(again.runtime.clone(), t.clone(), again.runtime.sync.clone())
        .await
        .unwrap();
    write_some(&ws, 3).await;
    assert!(matches!(
        r.round(true, true).await,
        Err(SyncError::Fenced(_))
    ));
    assert!(ws.runtime.sync.get().fenced);
    assert_eq!(manifest(&t).await.unwrap().unwrap().generation, 2);
}

/// Old generations are compacted away: after rolls the bucket keeps the current and the
/// previous generation only, and a restore still brings back everything.
async fn retention(t: SyncTarget) {
    let ws = TestWorkspace::start_synced(Arc::new(TempRoot::new()), spec(), Some(t.clone())).await;
    let mut r = Replicator::start(ws.runtime.clone(), t.clone(), ws.runtime.sync.clone())
        .await
        .unwrap()
        .roll_after(2);
    for round in 1..=7 {
        write_some(&ws, round).await;
        r.round(true, true).await.unwrap();
    }
    let m = manifest(&t).await.unwrap().unwrap();
    // Rolls at rounds 3 and 6 (a roll's snapshot holds that round's writes, so the
    // generation starts with no batch).
    assert_eq!(m.generation, 3, "rolled after every two batches");
    let generations: std::collections::BTreeSet<String> = t
        .bucket
        .list(&t.name("databases/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| {
            o.name
                .trim_start_matches(&t.name("databases/"))
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        generations.into_iter().collect::<Vec<_>>(),
        ["000002", "000003"]
    );
    let dest = tempfile::tempdir().unwrap();
    restore(&t, dest.path(), None, &|_, _, _| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task_titles(dest.path()).len(), 35);
    let too_early = tempfile::tempdir().unwrap();
    assert!(
        restore(&t, too_early.path(), Some(1), &|_, _, _| {})
            .await
            .is_err(),
        "no generation that old is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_generations_are_pruned_from_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    Box::pin(retention(
        target(&format!("file://{}", dir.path().display()), None).await,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_generations_are_pruned_from_gcs() {
    let emulator = GcsEmulator::start();
    Box::pin(retention(
        target(&emulator.url(""), Some(emulator.host.clone())).await,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_syncs_to_a_local_folder_and_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    Box::pin(suite(
        target(&format!("file://{}", dir.path().display()), None).await,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_syncs_to_gcs_and_comes_back_whole() {
    let emulator = GcsEmulator::start();
    Box::pin(suite(
        target(&emulator.url(""), Some(emulator.host.clone())).await,
    ))
    .await;
}

/// The emulator stops mid-sync: the workspace keeps taking writes, sync reports the lag
/// and the error, and when the emulator returns the next round catches up; everything
/// the manifest names restores and checks out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_mid_sync_is_caught_up_when_it_returns() {
    Box::pin(async {
        let mut emulator = GcsEmulator::start();
        let t = target(&emulator.url(""), Some(emulator.host.clone())).await;
        let ws =
            TestWorkspace::start_synced(Arc::new(TempRoot::new()), spec(), Some(t.clone())).await;
        let mut r = Replicator::start(ws.runtime.clone(), t.clone(), ws.runtime.sync.clone())
            .await
            .unwrap();
        write_some(&ws, 1).await;
        r.round(true, true).await.unwrap();

        emulator.kill();
        write_some(&ws, 2).await; // the workspace does not notice
        assert!(matches!(
            r.round(true, true).await,
            Err(SyncError::Store(_))
        ));
        let state = ws.runtime.sync.get();
        assert!(
            state.pending_since_ms.is_some() && state.last_error.is_some(),
            "{state:?}"
        );
        let (_, status) = ws.client.get("/v1/status").await;
        assert!(status["sync"]["pendingSinceMs"].is_u64(), "{status}");
        let metrics = reqwest::Client::new()
            .get(format!("http://{}/metrics", ws.addr))
            .bearer_auth(&ws.runtime.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lag = metrics
            .lines()
            .find(|l| l.starts_with("coditect_sync_lag_seconds "))
            .unwrap();
        assert!(
            lag.trim_start_matches("coditect_sync_lag_seconds ")
                .parse::<f64>()
                .unwrap()
                >= 0.0,
            "{lag}"
        );
        write_some(&ws, 3).await;
        assert!(r.round(true, true).await.is_err());

        emulator.restart();
        r.round(true, true).await.unwrap();
        assert_eq!(ws.runtime.sync.lag_seconds(), 0.0, "caught up");
        let dest = tempfile::tempdir().unwrap();
        let report = restore(&t, dest.path(), None, &|_, _, _| {})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            task_titles(dest.path()).len(),
            15,
            "all three rounds' tasks"
        );
        assert_eq!(report.last_seq, ws.runtime.events.durable_seq());
        coditect_runtime::sync::restore::verify_chain(&dest.path().join("sessions")).unwrap();
    })
    .await;
}

fn s3_target(server: &S3Server) -> SyncTarget {
    SyncTarget {
        bucket: Bucket::open_s3(&server.url(""), &server.access()).unwrap(),
        prefix: PREFIX.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_syncs_to_an_s3_bucket_and_comes_back_whole() {
    let server = S3Server::start();
    Box::pin(suite(s3_target(&server))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_generations_are_pruned_from_an_s3_bucket() {
    let server = S3Server::start();
    Box::pin(retention(s3_target(&server))).await;
}
