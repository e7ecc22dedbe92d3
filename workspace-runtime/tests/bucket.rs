//! One suite, three real backends: the local folder, a real GCS emulator over HTTP and a
//! real S3-compatible server (moto's) over HTTP. All
//! must honour create-only and generation preconditions (the guarantee that two instances
//! never both believe they own a workspace), list by prefix, and delete.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use bytes::Bytes;
use coditect_runtime::sync::{Bucket, Precondition, StoreError};
use coditect_runtime::testkit::{GcsEmulator, S3Server};

async fn suite(bucket: Bucket) {
    let b = &bucket;
    // Create-only.
    let first = b
        .put(
            "ws/manifest.json",
            Bytes::from_static(b"v1"),
            Precondition::DoesNotExist,
        )
        .await
        .unwrap();
    assert!(matches!(
        b.put(
            "ws/manifest.json",
            Bytes::from_static(b"v1bis"),
            Precondition::DoesNotExist
        )
        .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    // Compare-and-swap on the generation.
    let second = b
        .put(
            "ws/manifest.json",
            Bytes::from_static(b"v2"),
            Precondition::GenerationMatches(first.generation),
        )
        .await
        .unwrap();
    // A new generation (GCS counts up; on S3 it follows the ETag).
    assert_ne!(second.generation, first.generation);
    assert!(matches!(
        b.put(
            "ws/manifest.json",
            Bytes::from_static(b"stale"),
            Precondition::GenerationMatches(first.generation)
        )
        .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    let (data, meta) = b.get("ws/manifest.json").await.unwrap().unwrap();
    assert_eq!(
        (data.as_ref(), meta.generation),
        (&b"v2"[..], second.generation)
    );
    assert!(b.get("ws/none").await.unwrap().is_none());

    // Racing writers from one generation: exactly one wins.
    let bucket = Arc::new(bucket.clone());
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let bucket = bucket.clone();
            tokio::spawn(async move {
                bucket
                    .put(
                        "ws/manifest.json",
                        Bytes::from(format!("racer {i}")),
                        Precondition::GenerationMatches(second.generation),
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1, "exactly one compare-and-swap wins");

    // List by prefix, in name order; delete.
    for name in ["ws/sessions/2.jsonl", "ws/sessions/1.jsonl", "other/x"] {
        b.put(name, Bytes::from(name.to_string()), Precondition::None)
            .await
            .unwrap();
    }
    let names: Vec<String> = b
        .list("ws/sessions/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["ws/sessions/1.jsonl", "ws/sessions/2.jsonl"]);
    let sizes: Vec<u64> = b
        .list("ws/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.size)
        .collect();
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    b.delete("ws/sessions/1.jsonl").await.unwrap();
    b.delete("ws/sessions/1.jsonl").await.unwrap();
    assert!(b.get("ws/sessions/1.jsonl").await.unwrap().is_none());
    assert_eq!(b.list("ws/sessions/").await.unwrap().len(), 1);

    // A larger object survives the round trip byte for byte.
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    b.put(
        "ws/databases/big.bin",
        Bytes::from(big.clone()),
        Precondition::DoesNotExist,
    )
    .await
    .unwrap();
    assert_eq!(
        b.get("ws/databases/big.bin")
            .await
            .unwrap()
            .unwrap()
            .0
            .as_ref(),
        &big[..]
    );

    // Files stream both ways, with their checksums.
    let dir = tempfile::tempdir().unwrap();
    let (src, back) = (dir.path().join("src.bin"), dir.path().join("back.bin"));
    std::fs::write(&src, &big).unwrap();
    let put = b
        .put_file("ws/databases/file.bin", &src, Precondition::DoesNotExist)
        .await
        .unwrap();
    assert_eq!(put.size, big.len() as u64);
    assert!(matches!(
        b.put_file("ws/databases/file.bin", &src, Precondition::DoesNotExist)
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    let digest = b
        .get_to_file("ws/databases/file.bin", &back)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), big);
    assert_eq!(
        digest,
        coditect_runtime::sync::store::digest_file(&src).unwrap()
    );
    assert!(b.get_to_file("ws/none", &back).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_folder_keeps_the_bucket_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    suite(Bucket::open_at(&url, None).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcs_emulator_keeps_the_bucket_contract() {
    let emulator = GcsEmulator::start();
    let bucket = Bucket::open_at(&emulator.url("org"), Some(emulator.host.clone()))
        .await
        .unwrap();
    suite(bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_compatible_server_keeps_the_bucket_contract() {
    let server = S3Server::start();
    let bucket = Bucket::open_s3(&server.url("org"), &server.access()).unwrap();
    suite(bucket).await;
}

/// Writes once, has `stop` stop the store, then checks the next write fails as
/// unavailable (and returns).
async fn a_stopped_store_fails_the_next_write(bucket: Bucket, stop: impl FnOnce()) {
    bucket
        .put("x", Bytes::from_static(b"1"), Precondition::None)
        .await
        .unwrap();
    stop();
    match bucket
        .put("y", Bytes::from_static(b"2"), Precondition::None)
        .await
    {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_s3_server_is_an_error_not_a_hang() {
    let mut server = S3Server::start();
    let bucket = Bucket::open_s3(&server.url("org"), &server.access()).unwrap();
    a_stopped_store_fails_the_next_write(bucket, || server.kill()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_store_is_an_error_not_a_hang() {
    let mut emulator = GcsEmulator::start();
    let bucket = Bucket::open_at(&emulator.url("org"), Some(emulator.host.clone()))
        .await
        .unwrap();
    a_stopped_store_fails_the_next_write(bucket, || emulator.kill()).await;
}
