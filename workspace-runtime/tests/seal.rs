//! The seal of a clean stop and the check of the bucket against it (what lets a sleeping
//! workspace's disk be freed), and the operations the replicator counts into the manifest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use bytes::Bytes;
use coditect_runtime::sync::replicator::{Replicator, SyncTarget};
use coditect_runtime::sync::restore::manifest;
use coditect_runtime::sync::seal::{SealError, verify};
use coditect_runtime::sync::{Bucket, Precondition};
use coditect_runtime::testkit::{TempRoot, TestWorkspace, spec};
use serde_json::json;

#[tokio::test]
async fn a_clean_stop_seals_and_the_check_refuses_any_other_bucket_state() {
    let bucket_dir = TempRoot::new();
    let t = SyncTarget {
        bucket: Bucket::open(&format!("file://{}", bucket_dir.path().display()))
            .await
            .unwrap(),
        prefix: "organizations/a/teams/t/users/u/workspaces/w".into(),
    };
    let ws = TestWorkspace::start_synced(Arc::new(TempRoot::new()), spec(), Some(t.clone())).await;
    let r = Replicator::start(ws.runtime.clone(), t.clone(), ws.runtime.sync.clone())
        .await
        .unwrap();
    let e = json!({"agent": "alpha", "type": "agent_message", "data": {"n": 1}});
    assert_eq!(ws.client.post("/v1/events", &e).await.0, 200);
    std::fs::write(ws.runtime.layout.projects().join("a.txt"), "hello").unwrap();
    let seal = r.run(async {}).await.expect("everything shipped: sealed");
    assert!(seal.last_seq >= 1);

    // The operations it asked of the bucket are in the manifest, by class.
    let m = manifest(&t).await.unwrap().unwrap();
    let today = m.usage.values().last().unwrap();
    assert!(
        today.class_a >= 8,
        "6 snapshots, a blob, segments, manifests: {today:?}"
    );
    assert!(today.class_b >= 1, "the manifest read at start: {today:?}");
    assert_eq!(today.stored_bytes, m.stored_bytes());
    assert_eq!(seal.stored_bytes, m.stored_bytes());

    let objects = verify(&t, &seal).await.unwrap();
    assert!(objects >= 8, "{objects}");

    // An object the restore needs is gone: refused, named.
    let blob = format!("{}/projects/blobs/{}", t.prefix, m.projects["a.txt"].sha256);
    let saved = t.bucket.get(&blob).await.unwrap().unwrap().0;
    t.bucket.delete(&blob).await.unwrap();
    let e = verify(&t, &seal).await.unwrap_err();
    assert!(
        matches!(&e, SealError::Differs(w) if w.contains("is missing")),
        "{e}"
    );
    t.bucket
        .put(&blob, saved, Precondition::None)
        .await
        .unwrap();
    verify(&t, &seal).await.unwrap();

    // The manifest written since (another instance took over): refused.
    let (bytes, _) = t
        .bucket
        .get(&format!("{}/manifest.json", t.prefix))
        .await
        .unwrap()
        .unwrap();
    t.bucket
        .put(
            &format!("{}/manifest.json", t.prefix),
            Bytes::from(bytes.to_vec()),
            Precondition::None,
        )
        .await
        .unwrap();
    let e = verify(&t, &seal).await.unwrap_err();
    assert!(
        matches!(&e, SealError::Differs(w) if w.contains("written since")),
        "{e}"
    );
    ws.stop().await;
}
