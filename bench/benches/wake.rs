//! Wake on connect, through the gateway: a workspace asleep, one request, time to the
//! first byte of its answer (the gateway wakes it and holds the request until the
//! instance serves). Three workspaces: a fresh one; one with 1,000,000 events in its log
//! (wake must not grow with a workspace's age); one whose local folder is gone, so the
//! wake restores 100 MB of databases from the bucket first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coditect_bench::Percentiles;
use coditect_control_plane::client::Client;
use coditect_control_plane::up::{UpOptions, start};
use coditect_runtime::events::{EventDraft, EventLog, EventType};
use coditect_specs::{Kind, ObjectKey, Resource};
use criterion::Criterion;

const MINUTE: Duration = Duration::from_secs(60);
const MB: usize = 1 << 20;

fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("bench.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Workspace,
        organization: Some("bench".into()),
        name: name.into(),
    }
}

fn folder(data: &Path, name: &str) -> PathBuf {
    data.join(format!(
        "workspaces/organizations/bench/teams/t/users/u/workspaces/{name}"
    ))
}

async fn sleep(client: &Client, name: &str) {
    client
        .post_json(
            &format!("/apis/coditect.io/v1/organizations/bench/workspaces/{name}/sleep"),
            &serde_json::json!({}),
        )
        .await
        .expect("sleep");
    client
        .watch_until(&key(name), MINUTE, |r| r.status_json()["phase"] == "Asleep")
        .await
        .expect("asleep");
}

/// 1,000,000 events written into a workspace's (not yet started) event log, in the
/// format and chain its instance continues.
fn fill_events(sessions: &Path, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (log, _) = EventLog::open(sessions, 1).expect("event log");
        for i in 0..n {
            let d = EventDraft::new(
                "a",
                EventType::AgentMessage,
                serde_json::json!({"i": i, "text": "a line an agent said"}),
            );
            if i % 10_000 == 9_999 {
                log.append(d).await.expect("append");
            } else {
                log.append_nowait(d);
            }
        }
        log.append(EventDraft::new(
            "a",
            EventType::Checkpoint,
            serde_json::json!({}),
        ))
        .await
        .expect("append");
    });
}

/// About `bytes` of blob rows in the workspace's artifacts database (it is asleep).
fn fill_database(db: &Path, bytes: usize) {
    let conn = rusqlite::Connection::open(db).expect("open artifacts");
    conn.execute_batch("CREATE TABLE IF NOT EXISTS bench_fill (id INTEGER PRIMARY KEY, data BLOB)")
        .expect("table");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let row = 64 * 1024;
    for _ in 0..(bytes / row).div_ceil(64) {
        let tx = conn.unchecked_transaction().expect("tx");
        for _ in 0..64 {
            let data = coditect_bench::noise(&mut seed, row);
            tx.execute("INSERT INTO bench_fill (data) VALUES (?1)", [data])
                .expect("insert");
        }
        tx.commit().expect("commit");
    }
}

fn wakes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().to_path_buf();
    // The old workspace's log exists before its first start.
    let t = Instant::now();
    fill_events(&folder(&data, "old").join("sessions"), 1_000_000);
    eprintln!("wrote 1,000,000 events in {:?}", t.elapsed());
    let cp = rt
        .block_on(start(UpOptions::new(
            "127.0.0.1:0".parse().expect("addr"),
            data.clone(),
            std::env::current_exe().expect("own path"),
        )))
        .expect("control plane");
    let client = Client::with_token(&cp.server, &cp.admin_token).expect("client");
    let setup = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: bench}\nspec: {storage: {bucket: 'file:bucket/bench'}, quotas: {maxWorkspaces: 10, maxAwakeWorkspaces: 10}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: bench}\nspec: {}\n";
    let mut text = setup.to_string();
    for name in ["fresh", "old", "restored"] {
        text.push_str(&format!("---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {name}, organization: bench, team: t}}\nspec: {{owner: u, agents: [{{name: a, provider: offline}}]}}\n"));
    }
    rt.block_on(async {
        client
            .apply(&objects(&text), false, None)
            .await
            .expect("apply");
        for name in ["fresh", "old", "restored"] {
            client
                .wait_for(&key(name), "Ready", MINUTE)
                .await
                .expect("ready");
        }
        // 100 MB into the restored one's databases, shipped to the bucket by a sleep
        // and a wake (the wake's instance ships it; the next sleep's final round too).
        sleep(&client, "restored").await;
    });
    fill_database(
        &folder(&data, "restored").join("databases/artifacts.db"),
        100 * MB,
    );
    let http = reqwest::Client::new();
    let first_byte = |name: &'static str| {
        let (http, url, token) = (
            http.clone(),
            format!("{}/w/bench/{name}/v1/health", cp.server),
            cp.admin_token.clone(),
        );
        async move {
            let t = Instant::now();
            let resp = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("send");
            let d = t.elapsed();
            assert!(resp.status().is_success(), "{name}: {}", resp.status());
            d
        }
    };
    rt.block_on(async {
        first_byte("restored").await;
        // Check the setup: the 100 MB are in the bucket, and a wake restores them.
        sleep(&client, "restored").await;
        std::fs::remove_dir_all(folder(&data, "restored")).expect("remove folder");
        let d = first_byte("restored").await;
        let db = folder(&data, "restored").join("databases/artifacts.db");
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 90 * MB as u64,
            "restored artifacts.db is {size} bytes"
        );
        eprintln!("restored {size} bytes on a wake in {d:?}");
    });
    let mut group = c.benchmark_group("wake");
    // Each iteration also puts the workspace to sleep (a final sync round) outside the
    // timed part, which criterion cannot see: few, flat samples keep the run short.
    group
        .sample_size(10)
        .sampling_mode(criterion::SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(2));
    for (label, name) in [
        ("wake/local_data_fresh", "fresh"),
        ("wake/local_data_1m_events", "old"),
        ("wake/restore_100mb_from_bucket", "restored"),
    ] {
        let p = Percentiles::new(label);
        let restore = name == "restored";
        group.bench_function(label.trim_start_matches("wake/"), |b| {
            b.to_async(&rt).iter_custom(|n| {
                let (client, p, first_byte, data) = (&client, &p, &first_byte, &data);
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        sleep(client, name).await;
                        if restore {
                            // The machine lost the folder: the wake restores it.
                            std::fs::remove_dir_all(folder(data, name)).expect("remove folder");
                        }
                        let d = first_byte(name).await;
                        p.record(d);
                        total += d;
                    }
                    total
                }
            });
        });
    }
    group.finish();
    rt.block_on(cp.shutdown());
}

fn main() {
    if coditect_bench::serve_instance_if_asked() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    wakes(&mut c);
    c.final_summary();
}
