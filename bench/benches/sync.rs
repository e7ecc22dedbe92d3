//! Sync at size: snapshot + upload (what an instance does when it starts, or rolls a
//! generation) and a full restore (what a fresh machine does before it serves), for a
//! 100 MB and a 1 GB workspace, against the local-folder bucket (the embedded default)
//! and, at 100 MB, the GCS emulator over HTTP. The workspace's bulk is blob rows in its
//! `artifacts` database, the kind of data that grows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coditect_runtime::sync::Bucket;
use coditect_runtime::sync::replicator::{Replicator, SyncStatus, SyncTarget};
use coditect_runtime::sync::restore::restore;
use coditect_runtime::testkit::{GcsEmulator, TestWorkspace};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const MB: usize = 1 << 20;
const ROW: usize = 64 * 1024;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(8 * MB)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A workspace whose databases hold about `bytes`.
async fn workspace(bytes: usize) -> TestWorkspace {
    let ws = TestWorkspace::start().await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let rows = bytes / ROW;
    for chunk in 0..rows.div_ceil(64) {
        ws.runtime
            .db
            .artifacts
            .write(|tx| {
                tx.execute_batch(
                    "CREATE TABLE IF NOT EXISTS bench_fill (id INTEGER PRIMARY KEY, data BLOB)",
                )?;
                let mut stmt = tx.prepare_cached("INSERT INTO bench_fill (data) VALUES (?1)")?;
                for _ in 0..64.min(rows - chunk * 64) {
                    let row = coditect_bench::noise(&mut seed, ROW);
                    stmt.execute([row])?;
                }
                Ok(())
            })
            .expect("fill");
    }
    ws
}

fn target(bucket: Bucket) -> SyncTarget {
    SyncTarget {
        bucket,
        prefix: "organizations/bench/teams/t/users/u/workspaces/w".into(),
    }
}

fn sizes(c: &mut Criterion) {
    let rt = rt();
    let mut group = c.benchmark_group("sync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(20));
    let emulator = GcsEmulator::start();
    for (label, bytes, gcs) in [("100MB", 100 * MB, true), ("1GB", 1024 * MB, false)] {
        let ws = rt.block_on(workspace(bytes));
        let mut backends = vec![("local", None)];
        if gcs {
            backends.push(("gcs", Some(emulator.host.clone())));
        }
        for (backend, host) in backends {
            let url = |dir: &std::path::Path| match &host {
                Some(_) => emulator.url(&format!(
                    "bench-{}",
                    dir.file_name().and_then(|f| f.to_str()).unwrap_or("x")
                )),
                None => format!("file://{}", dir.display()),
            };
            // Snapshot + upload: a fresh bucket each time, as a first start sees it.
            group.bench_function(
                BenchmarkId::new(format!("snapshot_upload/{backend}"), label),
                |b| {
                    b.to_async(&rt).iter_custom(|n| {
                        let (ws, host, url) = (&ws, host.clone(), &url);
                        async move {
                            let mut total = Duration::ZERO;
                            for _ in 0..n {
                                let dir = tempfile::tempdir().expect("bucket dir");
                                let bucket = Bucket::open_at(&url(dir.path()), host.clone())
                                    .await
                                    .expect("bucket");
                                let t = Instant::now();
                                Box::pin(Replicator::start(
                                    ws.runtime.clone(),
                                    target(bucket),
                                    Arc::new(SyncStatus::default()),
                                ))
                                .await
                                .expect("snapshot and upload");
                                total += t.elapsed();
                            }
                            total
                        }
                    });
                },
            );
            // Restore: one populated bucket, a fresh folder each time.
            let dir = tempfile::tempdir().expect("bucket dir");
            let t = rt.block_on(async {
                let bucket = Bucket::open_at(&url(dir.path()), host.clone())
                    .await
                    .expect("bucket");
                let t = target(bucket);
                Box::pin(Replicator::start(
                    ws.runtime.clone(),
                    t.clone(),
                    Arc::new(SyncStatus::default()),
                ))
                .await
                .expect("populate");
                t
            });
            group.bench_function(BenchmarkId::new(format!("restore/{backend}"), label), |b| {
                b.to_async(&rt).iter_custom(|n| {
                    let t = t.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..n {
                            let dest = tempfile::tempdir().expect("dest");
                            let start = Instant::now();
                            Box::pin(restore(&t, dest.path(), None, &|_, _, _| {}))
                                .await
                                .expect("restore")
                                .expect("manifest");
                            total += start.elapsed();
                        }
                        total
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(sync, sizes);
criterion_main!(sync);
