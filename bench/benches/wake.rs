//! Wake on connect, through the gateway: a workspace asleep, one request, time to the
//! first byte of its answer (the gateway wakes it and holds the request until the
//! instance serves). Five cases: a fresh workspace; one with 1,000,000 events in its log
//! and one with 1 GB of databases, both on local disk (wake must not grow with a
//! workspace's age or size); and one of 100 MB and the 1 GB one whose local folder is
//! gone, so the wake restores the databases from the bucket first.
//!
//! A fixed number of wakes per case rather than a criterion loop: each wake needs a sleep
//! first (a final sync round, outside the timed part), which criterion cannot plan
//! around, and the KPI is a p99, which needs a known count. The untimed sleep before each
//! wake is recorded too (`…/sleep_before`), since it is where a large workspace's cost
//! shows, and so is a file write right after the wake (`…/first_write_after`: a lock and
//! a write, which the artifacts database records). `CODITECT_BENCH_WAKES=N` runs N wakes of every case (a quick run); a name
//! filter as the first argument runs only the cases whose label contains it;
//! `CODITECT_LOG=info KEEP_TMP=1` keeps the data folder with each instance's log in
//! `logs/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coditect_bench::Percentiles;
use coditect_control_plane::client::Client;
use coditect_control_plane::up::{ControlPlane, UpOptions, start};
use coditect_runtime::events::{EventDraft, EventLog, EventType};
use coditect_specs::{Kind, ObjectKey, Resource};

const MINUTE: Duration = Duration::from_secs(60);
const MB: usize = 1 << 20;

/// The cases: label, workspace, whether its folder is removed before each wake, wakes.
/// A round of the 1 GB workspace takes 5–8 s, nearly all of it the untimed sleep (which
/// waits for the snapshot every new instance takes of its databases), so its cases get
/// fewer: 100 wakes from local data (~11 min), 40 restores (~6 min).
const CASES: [(&str, &str, bool, usize); 5] = [
    ("wake/local_data_fresh", "fresh", false, 200),
    ("wake/local_data_1m_events", "old", false, 200),
    ("wake/local_data_1gb", "big", false, 100),
    ("wake/restore_100mb_from_bucket", "restored", true, 200),
    ("wake/restore_1gb_from_bucket", "big", true, 40),
];

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

/// `n` events written into a workspace's (not yet started) event log, in the format and
/// chain its instance continues.
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

/// One request through the gateway; the time to its first byte (the response head).
async fn first_byte(http: &reqwest::Client, cp: &ControlPlane, name: &str) -> Duration {
    let t = Instant::now();
    let resp = http
        .get(format!("{}/w/bench/{name}/v1/health", cp.server))
        .bearer_auth(&cp.admin_token)
        .send()
        .await
        .expect("send");
    let d = t.elapsed();
    assert!(resp.status().is_success(), "{name}: {}", resp.status());
    d
}

/// Right after a wake, a file write through the gateway as an agent makes one: a lock,
/// the write (recorded in the artifacts database), then the lock released outside the
/// timed part. Its time to the write's answer.
async fn first_write(http: &reqwest::Client, cp: &ControlPlane, name: &str) -> Duration {
    let base = format!("{}/w/bench/{name}/v1", cp.server);
    let t = Instant::now();
    let lease: serde_json::Value = http
        .post(format!("{base}/locks"))
        .bearer_auth(&cp.admin_token)
        .json(&serde_json::json!({"path": "notes.md", "mode": "exclusive", "holder": "a"}))
        .send()
        .await
        .expect("lock")
        .json()
        .await
        .expect("a lease");
    let token = lease["token"].as_u64().expect("a fencing token");
    let resp = http
        .put(format!("{base}/files/notes.md"))
        .bearer_auth(&cp.admin_token)
        .header("x-fencing-token", token.to_string())
        .header("x-agent", "a")
        .body("a note an agent wrote\n")
        .send()
        .await
        .expect("write");
    let d = t.elapsed();
    assert!(
        resp.status().is_success(),
        "{name}: write {}",
        resp.status()
    );
    let resp = http
        .delete(format!("{base}/locks/{token}"))
        .bearer_auth(&cp.admin_token)
        .send()
        .await
        .expect("release");
    assert!(
        resp.status().is_success(),
        "{name}: release {}",
        resp.status()
    );
    d
}

/// Puts `name` to sleep, fills its artifacts database to `bytes`, and ships them to the
/// bucket (a wake's instance snapshots them at start; the next sleep waits for that).
/// With `check`, proves a wake on an empty folder restores them.
async fn grow(
    cp: &ControlPlane,
    client: &Client,
    http: &reqwest::Client,
    name: &str,
    bytes: usize,
) {
    let data = cp
        .admin_config
        .parent()
        .expect("the data dir")
        .to_path_buf();
    sleep(client, name).await;
    let t = Instant::now();
    let db = folder(&data, name).join("databases/artifacts.db");
    tokio::task::spawn_blocking(move || fill_database(&db, bytes))
        .await
        .expect("fill");
    eprintln!("{name}: filled {} MB in {:?}", bytes / MB, t.elapsed());
    first_byte(http, cp, name).await;
    sleep(client, name).await;
    std::fs::remove_dir_all(folder(&data, name)).expect("remove folder");
    let d = first_byte(http, cp, name).await;
    let db = folder(&data, name).join("databases/artifacts.db");
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    assert!(
        size as usize > bytes * 9 / 10,
        "{name}: restored artifacts.db is {size} bytes"
    );
    eprintln!("{name}: restored {size} bytes on a wake in {d:?}");
}

/// The cases to run: those whose label contains the first argument that is not a flag,
/// each with `CODITECT_BENCH_WAKES` wakes when it is set.
fn selected() -> Vec<(&'static str, &'static str, bool, usize)> {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let wakes: Option<usize> = std::env::var("CODITECT_BENCH_WAKES")
        .ok()
        .and_then(|v| v.parse().ok());
    CASES
        .iter()
        .filter(|c| c.0.contains(&filter))
        .map(|&(label, name, restore, n)| (label, name, restore, wakes.unwrap_or(n)))
        .collect()
}

/// Declares the workspaces `names` and waits until they are Ready; fills the restored one
/// to 100 MB and the big one to 1 GB, shipped to the bucket.
async fn declare(cp: &ControlPlane, client: &Client, http: &reqwest::Client, names: &[&str]) {
    let mut text = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: bench}\nspec: {storage: {bucket: 'file:bucket/bench'}, quotas: {maxWorkspaces: 10, maxAwakeWorkspaces: 10}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: bench}\nspec: {}\n".to_string();
    for name in names {
        text.push_str(&format!("---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {name}, organization: bench, team: t}}\nspec: {{owner: u, agents: [{{name: a, provider: offline}}]}}\n"));
    }
    client
        .apply(&objects(&text), false, None)
        .await
        .expect("apply");
    for name in names {
        client
            .wait_for(&key(name), "Ready", MINUTE)
            .await
            .expect("ready");
    }
    if names.contains(&"restored") {
        grow(cp, client, http, "restored", 100 * MB).await;
    }
    if names.contains(&"big") {
        grow(cp, client, http, "big", 1024 * MB).await;
    }
}

/// `n` rounds of sleep (untimed by the KPI, recorded on its own), wake (restoring first
/// when `restore`: the folder is gone) and a first write.
async fn rounds(cp: &ControlPlane, client: &Client, case: (&str, &str, bool, usize)) {
    let (label, name, restore, n) = case;
    let http = reqwest::Client::new();
    let data = cp
        .admin_config
        .parent()
        .expect("the data dir")
        .to_path_buf();
    let woke = Percentiles::new(label);
    let wrote = Percentiles::new(&format!("{label}/first_write_after"));
    let slept = Percentiles::new(&format!("{label}/sleep_before"));
    let t = Instant::now();
    for _ in 0..n {
        let s = Instant::now();
        sleep(client, name).await;
        slept.record(s.elapsed());
        if restore {
            std::fs::remove_dir_all(folder(&data, name)).expect("remove folder");
        }
        woke.record(first_byte(&http, cp, name).await);
        wrote.record(first_write(&http, cp, name).await);
    }
    eprintln!("{label}: {n} wakes in {:?}", t.elapsed());
}

fn main() {
    if coditect_bench::serve_instance_if_asked() {
        return;
    }
    coditect_bench::trace_if_asked();
    let cases = selected();
    let names: Vec<&str> = ["fresh", "old", "big", "restored"]
        .into_iter()
        .filter(|n| cases.iter().any(|c| c.1 == *n))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    if names.contains(&"old") {
        // The old workspace's log exists before its first start.
        let t = Instant::now();
        fill_events(&folder(tmp.path(), "old").join("sessions"), 1_000_000);
        eprintln!("wrote 1,000,000 events in {:?}", t.elapsed());
    }
    let cp = rt
        .block_on(start(UpOptions::new(
            "127.0.0.1:0".parse().expect("addr"),
            tmp.path().to_path_buf(),
            std::env::current_exe().expect("own path"),
        )))
        .expect("control plane");
    let client = Client::with_token(&cp.server, &cp.admin_token).expect("client");
    rt.block_on(declare(&cp, &client, &reqwest::Client::new(), &names));
    for case in cases {
        rt.block_on(rounds(&cp, &client, case));
    }
    rt.block_on(cp.shutdown());
    if std::env::var_os("KEEP_TMP").is_some() {
        eprintln!("kept {}", tmp.keep().display());
    }
}
