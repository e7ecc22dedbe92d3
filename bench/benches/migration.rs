//! 1,000 v1 users migrated on this machine: a synthetic v1 export (four sandboxes per
//! user: a conflict, a binary file, an empty one, a unicode name, a deep tree, twelve
//! transcript lines), one `Migration` applied to an embedded control plane with the real
//! migration reconciler, into one organization whose awake quota (20) is far below its
//! user count — a workspace made for a later user starts into a full organization and is
//! woken when its copy is due, putting the least recently active idle one to sleep, so a
//! few instances are awake at once whatever the size.
//!
//! One measured run, not a criterion loop (a run is minutes of work, and its figures are
//! a rate and percentiles). It prints:
//!
//! * apply → every user cut over (auto-promotion): users per minute, bytes copied;
//! * the cutover pause per user (requests held at the gateway while the last changes are
//!   copied, verified and the route flipped): p50 / p99 / max;
//! * rollback of 20 users one after another: the flip (p50 / p99 / max) and the whole
//!   rollback, write-back of their v2 changes included;
//! * the most instances awake at once;
//! * the floors of the same run (fsync of 4 KiB, a loopback TCP round trip), to read the
//!   figures against.
//!
//! `CODITECT_BENCH_USERS` (default 1000), `CODITECT_BENCH_AWAKE` (20) and
//! `CODITECT_BENCH_CONCURRENCY` (8) change the sizes for a quick run.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use coditect_control_plane::client::Client;
use coditect_control_plane::selector::LabelSelector;
use coditect_control_plane::up::{ControlPlane, UpOptions, start};
use coditect_specs::{Kind, MigrationStatus, ObjectKey, Resource};

const ORG: &str = "bench";
const ROLLBACKS: usize = 20;
/// How long the migration may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(60 * 60);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("migration.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

fn key() -> ObjectKey {
    ObjectKey {
        kind: Kind::Migration,
        organization: None,
        name: "bench".into(),
    }
}

fn status(cp: &ControlPlane) -> MigrationStatus {
    match cp.store.get(&key()).expect("read the migration") {
        Some(Resource::Migration(m)) => m.status.unwrap_or_default(),
        _ => MigrationStatus::default(),
    }
}

fn awake(cp: &ControlPlane) -> usize {
    cp.store
        .list(Some(Kind::Workspace), Some(ORG), &LabelSelector::default())
        .expect("list workspaces")
        .iter()
        .filter(|r| match r {
            Resource::Workspace(w) => w.status.as_ref().is_some_and(|s| {
                s.sleep.is_none()
                    && matches!(s.phase.as_deref(), Some("Running" | "Starting" | "Waking"))
            }),
            _ => false,
        })
        .count()
}

/// Follows the store's changes until `done` holds on the migration's status; the most
/// instances awake meanwhile.
async fn follow(cp: &ControlPlane, t0: Instant, done: impl Fn(&MigrationStatus) -> bool) -> usize {
    let mut changes = cp.store.subscribe();
    let mut most = 0;
    let mut last_print = Instant::now();
    let mut last_count = Instant::now();
    loop {
        let s = status(cp);
        if done(&s) {
            return most;
        }
        assert!(
            t0.elapsed() < LIMIT,
            "not done after {:?}: {s:?}",
            t0.elapsed()
        );
        if last_print.elapsed() > Duration::from_secs(10) {
            most = most.max(awake(cp));
            eprintln!(
                "  {:>6.1} s: {} of {} cut over, {} MiB copied",
                t0.elapsed().as_secs_f64(),
                s.users.cut_over + s.users.completed,
                s.users.total,
                s.bytes_copied >> 20
            );
            last_print = Instant::now();
        }
        // Counting the awake ones reads every workspace: at most every 250 ms, so the
        // bench does not load the control plane it measures.
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(5), changes.recv()).await
            && c.object["kind"] == "Workspace"
            && last_count.elapsed() > Duration::from_millis(250)
        {
            most = most.max(awake(cp));
            last_count = Instant::now();
        }
    }
}

fn quantiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
        at(0.5),
        at(0.99),
        at(1.0),
        v.len()
    )
}

/// The floors of this run: an fsync of 4 KiB and a loopback TCP round trip, p50 in µs.
fn floors(dir: &Path) -> (f64, f64) {
    let mut f = std::fs::File::create(dir.join("fsync")).expect("floor file");
    let mut fsyncs = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&[7u8; 4096]).expect("write");
        f.sync_data().expect("fsync");
        fsyncs.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut b = [0u8; 1];
            while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
        }
    });
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut trips = Vec::new();
    let mut b = [1u8; 1];
    for _ in 0..2000 {
        let t = Instant::now();
        s.write_all(&b).expect("send");
        s.read_exact(&mut b).expect("receive");
        trips.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let p50 = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (p50(fsyncs), p50(trips))
}

fn main() {
    if coditect_bench::serve_instance_if_asked() {
        return;
    }
    coditect_bench::trace_if_asked();
    let users = env_or("CODITECT_BENCH_USERS", 1000);
    let awake_quota = env_or("CODITECT_BENCH_AWAKE", 20);
    let concurrency = env_or("CODITECT_BENCH_CONCURRENCY", 8);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async move {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let (fsync_us, round_trip_us) = floors(tmp.path());
        let export = tmp.path().join("export");
        let t = Instant::now();
        coditect_migrate::synthetic::write(&export, users).expect("write the export");
        eprintln!("export of {users} users written in {:.1} s", t.elapsed().as_secs_f64());
        let mut opts = UpOptions::new(
            "127.0.0.1:0".parse().expect("an address"),
            tmp.path().join("data"),
            std::env::current_exe().expect("this bench"),
        );
        opts.delegated = vec![coditect_migrate::reconciler::MigrationReconciler::factory()];
        let cp = start(opts).await.expect("the control plane");
        let admin = Client::with_token(&cp.server, &cp.admin_token).expect("a client");
        // A v1 endpoint the users' routes point at until their cutover.
        let v1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let v1_addr = v1.local_addr().expect("addr");
        tokio::spawn(async move {
            let app = axum::Router::new().fallback(|| async { "v1" });
            let _ = axum::serve(v1, app).await;
        });
        let text = format!(
            "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {{name: {ORG}}}\nspec: {{storage: {{bucket: 'file:bucket/{ORG}'}}, quotas: {{maxWorkspaces: {users}, maxAwakeWorkspaces: {awake_quota}}}}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {{name: t, organization: {ORG}}}\nspec: {{}}\n---\napiVersion: coditect.io/v1\nkind: Migration\nmetadata: {{name: bench}}\nspec:\n  source: {{export: 'file://{}', endpoint: 'http://{v1_addr}'}}\n  target: {{organization: {ORG}, team: t}}\n  users: {{batchSize: {}, concurrency: {concurrency}}}\n  cutover: {{autoPromote: true}}\n",
            export.display(),
            concurrency * 2
        );
        let t0 = Instant::now();
        admin
            .apply(&objects(&text), false, None)
            .await
            .expect("apply");
        let most_awake = follow(&cp, t0, |s| s.users.total == users as u32 && s.users.cut_over == users as u32).await;
        let took = t0.elapsed();
        let s = status(&cp);
        let records: Vec<serde_json::Value> = cp
            .store
            .migration_users("bench")
            .expect("records")
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let pauses: Vec<f64> = records.iter().filter_map(|r| r["pauseMs"].as_f64()).collect();
        let perfect = records.iter().filter(|r| r["grade"] == "Perfect").count();
        println!("MIGRATION users={users} awake_quota={awake_quota} concurrency={concurrency}");
        println!(
            "  apply → all cut over: {:.1} s = {:.0} users/minute; {} MiB copied; {perfect} of {users} Perfect",
            took.as_secs_f64(),
            users as f64 / took.as_secs_f64() * 60.0,
            s.bytes_copied >> 20
        );
        println!("  cutover pause: {}", quantiles(pauses.clone()));
        println!("  most instances awake at once: {most_awake}");
        // Rollbacks, one user after another.
        let mut flips = Vec::new();
        let mut whole = Vec::new();
        for (i, r) in records.iter().take(ROLLBACKS).enumerate() {
            let login = r["login"].as_str().expect("a login").to_string();
            let t = Instant::now();
            admin
                .migration_action("bench", "rollback", std::slice::from_ref(&login), false)
                .await
                .expect("rollback");
            follow(&cp, t0, |s| s.users.rolled_back as usize > i).await;
            whole.push(t.elapsed().as_secs_f64() * 1e3);
            let rec = cp
                .store
                .migration_users("bench")
                .expect("records")
                .into_iter()
                .find(|(l, _)| *l == login)
                .map(|(_, r)| r)
                .expect("the record");
            if let Some(ms) = rec["rollbackMs"].as_f64() {
                flips.push(ms);
            }
        }
        println!("  rollback, the route flip: {}", quantiles(flips));
        println!("  rollback, asked → RolledBack (write-back included): {}", quantiles(whole));
        let p99 = {
            let mut p = pauses;
            p.sort_by(f64::total_cmp);
            p.get(((0.99 * p.len() as f64).ceil() as usize).clamp(1, p.len().max(1)) - 1)
                .copied()
                .unwrap_or(0.0)
        };
        println!(
            "  floors: fsync 4 KiB p50 {fsync_us:.0} µs, loopback round trip p50 {round_trip_us:.1} µs; pause p99 = {:.0} fsyncs = {:.0} round trips",
            p99 * 1e3 / fsync_us,
            p99 * 1e3 / round_trip_us
        );
        drop(admin);
        cp.shutdown().await;
    });
}
