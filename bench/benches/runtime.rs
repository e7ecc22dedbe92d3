//! Hot paths of a workspace instance: lock acquisition (in process and through the HTTP
//! API), durable event append (one at a time and group-committed), and task submit → started
//! (by a long-polling client, and by the workspace's own agent loop).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coditect_bench::Percentiles;
use coditect_runtime::events::{EventDraft, EventType};
use coditect_runtime::locks::{LockMode, LockRequest};
use coditect_runtime::testkit::TestWorkspace;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn lock_request(i: u64) -> LockRequest {
    LockRequest {
        path: format!("src/f{i}.rs"),
        mode: LockMode::Exclusive,
        holder: "bench".into(),
        ttl_ms: None,
        wait_ms: Some(0),
    }
}

fn locks(c: &mut Criterion) {
    let rt = rt();
    let ws = rt.block_on(TestWorkspace::start());
    let counter = AtomicU64::new(0);
    let p = Percentiles::new("lock_acquire/in_process");
    c.bench_function("lock_acquire/in_process", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (ws, p, counter) = (&ws, &p, &counter);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    let lease = ws
                        .runtime
                        .locks
                        .acquire(lock_request(i))
                        .await
                        .expect("uncontended");
                    let d = t.elapsed();
                    total += d;
                    p.record(d);
                    ws.runtime.locks.release(lease.token).expect("release");
                }
                total
            }
        });
    });
    drop(p);
    let p = Percentiles::new("lock_acquire/http_api");
    c.bench_function("lock_acquire/http_api", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (ws, p, counter) = (&ws, &p, &counter);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let body = json!({"path": format!("api/f{i}.rs"), "mode": "exclusive", "holder": "bench", "wait_ms": 0});
                    let t = Instant::now();
                    let (status, lease) = ws.client.post("/v1/locks", &body).await;
                    let d = t.elapsed();
                    assert_eq!(status, 200, "{lease}");
                    total += d;
                    p.record(d);
                    ws.runtime.locks.release(lease["token"].as_u64().expect("token")).expect("release");
                }
                total
            }
        });
    });
}

fn events(c: &mut Criterion) {
    let rt = rt();
    let ws = rt.block_on(TestWorkspace::start());
    let p = Percentiles::new("event_append/durable_one_at_a_time");
    c.bench_function("event_append/durable_one_at_a_time", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (ws, p) = (&ws, &p);
            async move {
                let start = Instant::now();
                for i in 0..n {
                    let t = Instant::now();
                    ws.runtime
                        .events
                        .append(EventDraft::new(
                            "bench",
                            EventType::ToolCall,
                            json!({"i": i}),
                        ))
                        .await
                        .expect("append");
                    p.record(t.elapsed());
                }
                start.elapsed()
            }
        });
    });
    drop(p);
    let mut group = c.benchmark_group("event_append");
    const BATCH: u64 = 64;
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("durable_64_concurrent", |b| {
        b.to_async(&rt).iter(|| {
            let events = ws.runtime.events.clone();
            async move {
                let appends = (0..BATCH).map(|i| {
                    let events = events.clone();
                    tokio::spawn(async move {
                        events
                            .append(EventDraft::new(
                                "bench",
                                EventType::ToolCall,
                                json!({"i": i}),
                            ))
                            .await
                    })
                });
                for h in appends.collect::<Vec<_>>() {
                    h.await.expect("join").expect("append");
                }
            }
        });
    });
    group.finish();
}

fn tasks(c: &mut Criterion) {
    let rt = rt();
    let ws = rt.block_on(TestWorkspace::start());
    let ws = Arc::new(ws);
    let p = Percentiles::new("task_start/submit_to_running_http_api");
    c.bench_function("task_start/submit_to_running_http_api", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (ws, p) = (ws.clone(), &p);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    // An agent long-polls for work; the clock runs from submit to its start.
                    let claimer = {
                        let c = ws.client.clone();
                        tokio::spawn(async move {
                            let (_, t) = c
                                .post(
                                    "/v1/tasks/claim",
                                    &json!({"agent": "alpha", "wait_ms": 10000}),
                                )
                                .await;
                            (Instant::now(), t)
                        })
                    };
                    tokio::task::yield_now().await;
                    let t = Instant::now();
                    let (status, _) = ws
                        .client
                        .post("/v1/tasks", &json!({"agent": "alpha", "title": "bench"}))
                        .await;
                    assert_eq!(status, 200);
                    let (started, task) = claimer.await.expect("claimer");
                    assert_eq!(task["state"], "running");
                    let d = started.duration_since(t);
                    total += d;
                    p.record(d);
                }
                total
            }
        });
    });
}

/// Submit → running with the workspace's own agent loop (the offline planner) taking the
/// task: the clock stops at the task's `task_started` event; the task's finish is awaited
/// outside the clock so every iteration starts with an idle agent.
fn agent_loop(c: &mut Criterion) {
    use coditect_runtime::events::EventType;
    let rt = rt();
    let ws = Arc::new(rt.block_on(TestWorkspace::start_with_agents()));
    let p = Percentiles::new("task_start/submit_to_agent_loop");
    c.bench_function("task_start/submit_to_agent_loop", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (ws, p) = (ws.clone(), &p);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let (mut live, _) = ws.runtime.events.subscribe();
                    let t = Instant::now();
                    let (status, task) = ws
                        .client
                        .post(
                            "/v1/tasks",
                            &json!({"agent": "alpha", "title": "tell beta: bench"}),
                        )
                        .await;
                    assert_eq!(status, 200);
                    let id = task["id"].clone();
                    let mut started = None;
                    loop {
                        let e = live.recv().await.expect("event stream");
                        if e.data["task"] != id {
                            continue;
                        }
                        match e.kind {
                            EventType::TaskStarted => started = Some(t.elapsed()),
                            EventType::TaskFinished => break,
                            _ => {}
                        }
                    }
                    let d = started.expect("started before finished");
                    total += d;
                    p.record(d);
                }
                total
            }
        });
    });
}

criterion_group! {
    name = runtime;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_millis(500));
    targets = locks, events, tasks, agent_loop
}
criterion_main!(runtime);
