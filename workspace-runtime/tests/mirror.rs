//! The hot mirror, against a real S3-compatible server (moto's) over HTTP: it holds what
//! the bucket holds, the manifest last; a mirror that goes down costs only mirror lag and
//! catches up when it returns; an instance on an empty folder restores from the mirror
//! when the bucket is down; and a takeover fences the old owner on the mirror too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;

use coditect_runtime::sync::manifest::MANIFEST;
use coditect_runtime::sync::replicator::{Replicator, SyncError, SyncTarget};
use coditect_runtime::sync::restore::{manifest, restore, verify_chain};
use coditect_runtime::sync::{Bucket, Precondition, S3Access};
use coditect_runtime::testkit::{GcsEmulator, S3Server, TcpGate, TempRoot, TestWorkspace, spec};
use common::{synced, task_titles, write_some};

const PREFIX: &str = "organizations/acme/teams/qa/users/tester/workspaces/test-ws";

fn folder_target(root: &TempRoot) -> SyncTarget {
    SyncTarget {
        bucket: futures_free_open(&format!("file://{}", root.path().display())),
        prefix: PREFIX.into(),
    }
}

fn futures_free_open(url: &str) -> Bucket {
    // A file:// bucket opens without I/O.
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(Bucket::open_at(url, None))
    })
    .unwrap()
}

fn mirror_target(server: &S3Server, access: &S3Access) -> SyncTarget {
    SyncTarget {
        bucket: Bucket::open_s3(&server.url("mirror"), access).unwrap(),
        prefix: PREFIX.into(),
    }
}

/// The manifest bytes in `t`.
async fn manifest_bytes(t: &SyncTarget) -> Vec<u8> {
    t.bucket
        .get(&t.name(MANIFEST))
        .await
        .unwrap()
        .expect("a manifest")
        .0
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_stopped_mid_sync_costs_only_mirror_lag_and_catches_up() {
    let server = S3Server::start();
    let gate = TcpGate::new(
        server
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .unwrap(),
    );
    let access = S3Access {
        endpoint: format!("http://{}", gate.addr),
        ..server.access()
    };
    let bucket_root = TempRoot::new();
    let primary = folder_target(&bucket_root);
    let mirror = mirror_target(&server, &access);
    let (ws, mut r) = synced(&primary).await;
    let mut m = r.mirror(mirror.bucket.clone());
    write_some(&ws, 1).await;
    r.round(true, true).await.unwrap();
    m.round().await.unwrap();
    assert_eq!(
        manifest_bytes(&mirror).await,
        manifest_bytes(&primary).await,
        "the mirror holds the bucket's manifest"
    );

    // The mirror goes down mid-sync: the bucket goes on, the mirror only lags.
    gate.close();
    write_some(&ws, 2).await;
    r.round(true, true).await.unwrap();
    assert!(m.round().await.is_err(), "the mirror is down");
    write_some(&ws, 3).await;
    r.round(true, true).await.unwrap();
    let state = ws.runtime.sync.get();
    assert_eq!(
        state.last_error, None,
        "the bucket is not held back by its mirror"
    );
    let mirror_state = state.mirror.expect("the mirror's state");
    assert!(
        mirror_state.pending_since_ms.is_some() && mirror_state.last_error.is_some(),
        "{mirror_state:?}"
    );
    assert!(!mirror_state.fenced);

    // It returns: one round brings it to the bucket's newest manifest.
    gate.open();
    m.round().await.unwrap();
    assert!(!m.behind());
    assert_eq!(
        manifest_bytes(&mirror).await,
        manifest_bytes(&primary).await
    );
    let caught_up = ws.runtime.sync.get().mirror.unwrap();
    assert_eq!(caught_up.pending_since_ms, None);
    assert_eq!(
        caught_up.mirrored_seq,
        manifest(&primary).await.unwrap().unwrap().last_seq()
    );
    assert_eq!(caught_up.last_error, None);

    // Everything restores from the mirror alone, every checksum checked.
    let dest = TempRoot::new();
    let report = restore(&mirror, dest.path(), None, &|_, _, _| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        task_titles(dest.path()).len(),
        15,
        "all three rounds' tasks"
    );
    assert_eq!(report.last_seq, caught_up.mirrored_seq);
    verify_chain(&dest.path().join("sessions")).unwrap();
    assert!(dest.path().join("projects/src/r3.rs").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_on_an_empty_folder_restores_from_the_mirror_when_the_bucket_is_down() {
    let server = S3Server::start();
    let mut gcs = GcsEmulator::start();
    let primary = SyncTarget {
        bucket: Bucket::open_at(&gcs.url(""), Some(gcs.host.clone()))
            .await
            .unwrap(),
        prefix: PREFIX.into(),
    };
    let mirror = mirror_target(&server, &server.access());
    let (ws, mut r) = synced(&primary).await;
    let mut m = r.mirror(mirror.bucket.clone());
    write_some(&ws, 1).await;
    r.round(true, true).await.unwrap();
    m.round().await.unwrap();

    // The machine and the bucket are gone; the mirror answers.
    gcs.kill();
    let again = TestWorkspace::start_mirrored(
        Arc::new(TempRoot::new()),
        spec(),
        Some(primary),
        Some(mirror),
    )
    .await;
    assert_eq!(task_titles(again.runtime.layout.root()).len(), 5);
    let (_, events) = again.client.get("/v1/events?since=0&limit=10000").await;
    let rounds = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["round"].is_u64())
        .count();
    assert_eq!(rounds, 5, "every shipped event came back, once");
    assert!(again.runtime.layout.projects().join("src/r1.rs").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_fences_the_old_owner_on_the_mirror_too() {
    let server = S3Server::start();
    let bucket_root = TempRoot::new();
    let primary = folder_target(&bucket_root);
    let mirror = mirror_target(&server, &server.access());
    let (first, mut ra) = synced(&primary).await;
    let mut ma = ra.mirror(mirror.bucket.clone());
    write_some(&first, 1).await;
    ra.round(true, true).await.unwrap();
    ma.round().await.unwrap();
    write_some(&first, 2).await;
    ra.round(true, true).await.unwrap();
    let lagging = manifest_bytes(&primary).await; // the first owner's mirror has not got it

    // A second instance takes the workspace over, and mirrors.
    let (second, mut rb) = synced(&primary).await;
    let mut mb = rb.mirror(mirror.bucket.clone());
    mb.round().await.unwrap();
    assert_eq!(
        manifest_bytes(&mirror).await,
        manifest_bytes(&primary).await
    );

    // The old owner's lagging mirror may not overwrite it: the primary names another owner.
    assert!(matches!(ma.round().await, Err(SyncError::Fenced(_))));
    assert!(first.runtime.sync.get().mirror.unwrap().fenced);
    assert_eq!(
        manifest_bytes(&mirror).await,
        manifest_bytes(&primary).await
    );
    write_some(&first, 3).await;
    assert!(matches!(
        ra.round(true, true).await,
        Err(SyncError::Fenced(_))
    ));

    // Had the old owner's write slipped in first, the new owner reads again and wins.
    mirror
        .bucket
        .put(&mirror.name(MANIFEST), lagging.into(), Precondition::None)
        .await
        .unwrap();
    write_some(&second, 4).await;
    rb.round(true, true).await.unwrap();
    mb.round().await.unwrap();
    assert_eq!(
        manifest_bytes(&mirror).await,
        manifest_bytes(&primary).await
    );
    assert!(!second.runtime.sync.get().mirror.unwrap().fenced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_log_is_behind_the_bucket_does_not_take_it_over() {
    let bucket_root = TempRoot::new();
    let primary = folder_target(&bucket_root);
    let (ws, mut r) = synced(&primary).await;
    write_some(&ws, 1).await;
    r.round(true, true).await.unwrap();
    let before = manifest_bytes(&primary).await;
    // An instance started from an older copy (here: nothing at all, not synced at open).
    let stale = TestWorkspace::start().await;
    let refused = Replicator::start(
        stale.runtime.clone(),
        primary.clone(),
        stale.runtime.sync.clone(),
    )
    .await;
    assert!(
        matches!(refused, Err(SyncError::Diverged { .. })),
        "{refused:?}"
    );
    assert_eq!(
        manifest_bytes(&primary).await,
        before,
        "the bucket is left as it was"
    );
}
