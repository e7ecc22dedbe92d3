//! A `Migration` applied to a real control plane, run by its reconciler against a v1
//! export on disk, a v1 endpoint on loopback and real workspace instances:
//!
//! - copied and verified Perfect, then a user promoted and cut over while their client
//!   sends without pause through `/u/{login}/` (no failure; v1 then v2; the pause
//!   measured), a flipped byte in v2 grading a user Investigate, and a rollback after v2
//!   edits putting them in the v1 layout;
//! - the control plane SIGKILLed at random points while copying and while cutting over,
//!   then started again: every user cut over Perfect, no event imported twice, no file
//!   more;
//! - bad input (a malformed `users.jsonl` line, a malformed transcript line, a missing
//!   `meta.json`, a user with nothing readable) reported at its place, the others going
//!   on, nothing left behind for the failed user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coditect_control_plane::client::Client;
use coditect_runtime::testkit::TempRoot;
use coditect_specs::{Kind, MigrationStatus, ObjectKey, Resource};
use serde_json::{Value, json};
use sha2::Digest;
use std::str::FromStr as _;

mod common;
use common::{ControlPlane, embedded, objects};

const LONG: Duration = Duration::from_secs(180);

fn migration_key() -> ObjectKey {
    ObjectKey {
        kind: Kind::Migration,
        organization: None,
        name: "spring".into(),
    }
}

fn manifest(export: &std::path::Path, endpoint: Option<&str>, extra: &str) -> String {
    let endpoint = endpoint.map_or(String::new(), |e| format!(", endpoint: '{e}'"));
    format!(
        "apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {{name: spring}}\nspec:\n  source: {{export: 'file://{}'{endpoint}}}\n  target: {{organization: acme, team: platform}}\n{extra}",
        export.display()
    )
}

fn status(r: &Resource) -> MigrationStatus {
    match r {
        Resource::Migration(m) => m.status.clone().unwrap_or_default(),
        _ => panic!("not a migration"),
    }
}

/// Follows the migration until `check` holds on its status.
async fn until(
    admin: &Client,
    what: &str,
    check: impl Fn(&MigrationStatus) -> bool,
) -> MigrationStatus {
    let r = admin
        .watch_until(&migration_key(), LONG, |r| check(&status(r)))
        .await
        .unwrap_or_else(|e| panic!("never: {what}: {e}"));
    let s = status(&r);
    assert_eq!(
        s.users.counted(),
        s.users.total,
        "every user in exactly one phase: {s:?}"
    );
    s
}

async fn records(admin: &Client) -> Vec<Value> {
    admin.migration_users("spring").await.unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap()
}

async fn record(admin: &Client, login: &str) -> Value {
    records(admin)
        .await
        .into_iter()
        .find(|r| r["login"] == login)
        .unwrap()
}

/// A v1 endpoint: says it is v1.
async fn v1() -> String {
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"side": "v1"})) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Writes `bytes` at `path` in `ws` through the gateway, under a lock, as an agent would.
async fn write_in_v2(server: &str, token: &str, ws: &str, path: &str, bytes: &[u8]) {
    let http = reqwest::Client::new();
    let base = format!("{server}/w/acme/{ws}/v1");
    let lease: Value = http
        .post(format!("{base}/locks"))
        .bearer_auth(token)
        .json(&json!({"path": path, "mode": "exclusive", "holder": "claude", "wait_ms": 30000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fencing = lease["token"].as_u64().unwrap_or_else(|| panic!("{lease}"));
    let resp = http
        .put(format!("{base}/files/{path}"))
        .bearer_auth(token)
        .header("X-Fencing-Token", fencing.to_string())
        .header("X-Agent", "claude")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    http.delete(format!("{base}/locks/{fencing}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
}

/// A JSON answer of the workspace's API, through the gateway.
async fn get_json(server: &str, token: &str, ws: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{server}/w/acme/{ws}/v1/{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The workspace's events through the gateway.
async fn events(server: &str, token: &str, ws: &str) -> Vec<Value> {
    let v = get_json(server, token, ws, "events?since=0&limit=10000").await;
    v.as_array()
        .cloned()
        .or_else(|| v["events"].as_array().cloned())
        .unwrap_or_else(|| panic!("{v}"))
}

/// The imported events' sources: each exactly once.
async fn imported_once(server: &str, token: &str, ws: &str) -> usize {
    let sources: Vec<String> = events(server, token, ws)
        .await
        .iter()
        .filter_map(|e| e["data"]["importedFrom"].as_str().map(str::to_string))
        .collect();
    let distinct: BTreeSet<&String> = sources.iter().collect();
    assert_eq!(
        distinct.len(),
        sources.len(),
        "an event imported twice in {ws}"
    );
    sources.len()
}

/// The workspace's file paths through the gateway.
async fn tree(server: &str, token: &str, ws: &str) -> Vec<String> {
    get_json(server, token, ws, "tree").await["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_copied_verified_cut_over_under_load_graded_and_rolled_back() {
    let tmp = TempRoot::new();
    let export = tmp.path().join("export");
    let written = coditect_migrate::synthetic::write(&export, 2).unwrap();
    let endpoint = v1().await;
    let (cp, admin, _) = embedded(&tmp.path().join("data")).await;
    let token = cp.admin_token.clone();
    admin
        .apply(
            &objects(&manifest(&export, Some(&endpoint), "")),
            false,
            None,
        )
        .await
        .unwrap();
    let s = until(&admin, "both users verified", |s| s.users.verified == 2).await;
    assert_eq!(s.phase.as_deref(), Some("Waiting"));
    assert!(
        s.next
            .as_deref()
            .unwrap()
            .contains("coditect migrate promote spring")
    );
    for r in records(&admin).await {
        assert_eq!(r["grade"], "Perfect", "{r}");
        assert_eq!(r["files"], written.files_per_user, "{r}");
        assert_eq!(r["events"], written.lines_per_user, "{r}");
    }
    // Byte for byte: the binary file and the unicode name, read back through the gateway.
    let http = reqwest::Client::new();
    let bin = http
        .get(format!(
            "{}/w/acme/user0-main/v1/files/{}",
            cp.server,
            coditect_migrate::synthetic::BINARY_PATH
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bin.to_vec(), (0..=255u8).collect::<Vec<_>>());
    assert!(
        tree(&cp.server, &token, "user0-main")
            .await
            .contains(&coditect_migrate::synthetic::UNICODE_PATH.to_string())
    );
    assert_eq!(
        imported_once(&cp.server, &token, "user0-main").await,
        written.lines_per_user
    );
    // The v1 history is in the databases the timeline reads, at its original times.
    let query = |db: &'static str, sql: &'static str| {
        let (http, url, token) = (
            http.clone(),
            format!("{}/w/acme/user0-main/v1/query", cp.server),
            token.clone(),
        );
        async move {
            let v: Value = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"db": db, "sql": sql}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["rows"].clone()
        }
    };
    // Two of each sandbox's three lines are messages (user, assistant); one a tool call.
    let rows = query(
        "messages",
        "SELECT count(*), min(ts) FROM messages WHERE topic = 'imported'",
    )
    .await;
    assert_eq!(rows[0][0], 8, "{rows}");
    assert_eq!(
        rows[0][1],
        jiff::Timestamp::from_str("2026-06-01T10:00:00Z")
            .unwrap()
            .as_millisecond(),
        "{rows}"
    );
    let rows = query(
        "parsed_sessions",
        "SELECT count(*), min(ts) FROM event_digest",
    )
    .await;
    assert_eq!(rows[0][0], written.lines_per_user, "{rows}");
    assert_eq!(rows[0][1], "2026-06-01T10:00:00Z", "{rows}");

    // user0's client sends without pause through /u/user0/ while they are cut over.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(Vec::<(u16, String)>::new()));
    let client = {
        let (stop, answers) = (stop.clone(), answers.clone());
        let (url, token) = (format!("{}/u/user0/v1/status", cp.server), token.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let resp = http.get(&url).bearer_auth(&token).send().await.unwrap();
                let code = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let side = if body["side"] == "v1" { "v1" } else { "v2" };
                answers.lock().unwrap().push((code, side.to_string()));
            }
        })
    };
    let count = |side: &'static str| {
        let answers = answers.clone();
        move || {
            answers
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, s)| s == side)
                .count()
        }
    };
    let at_least = |side: &'static str, n: usize| {
        let seen = count(side);
        async move {
            tokio::time::timeout(LONG, async {
                while seen() < n {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("never {n} answers from {side}"));
        }
    };
    at_least("v1", 20).await;
    admin
        .migration_action("spring", "promote", &["user0".into()], false)
        .await
        .unwrap();
    let s = until(&admin, "user0 cut over", |s| s.users.cut_over == 1).await;
    at_least("v2", 20).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    let answered = answers.lock().unwrap().clone();
    assert!(
        answered.iter().all(|(code, _)| *code == 200),
        "every request answered: {:?}",
        answered
            .iter()
            .filter(|(c, _)| *c != 200)
            .collect::<Vec<_>>()
    );
    let mut runs: Vec<&str> = answered.iter().map(|(_, s)| s.as_str()).collect();
    runs.dedup();
    assert_eq!(runs, vec!["v1", "v2"], "no request on v1 after the flip");
    let pause = record(&admin, "user0").await["pauseMs"].as_f64().unwrap();
    assert_eq!(s.pause_p50_ms, Some(pause));
    eprintln!(
        "MIGRATION cutover pause {pause:.2} ms (copy of what changed, verification, flip), {} requests, 0 failed",
        answered.len()
    );

    // A byte flipped in user1's v2 copy: verification at cutover says Investigate, names
    // the file, and the user stays on v1 until approved.
    let mut main =
        std::fs::read(export.join("users/u00001/sandboxes/sb-gemini/files/src/main.rs")).unwrap();
    main[0] ^= 1;
    write_in_v2(&cp.server, &token, "user1-main", "src/main.rs", &main).await;
    admin
        .migration_action("spring", "promote", &["user1".into()], false)
        .await
        .unwrap();
    let s = until(&admin, "user1 needs an approval", |s| {
        s.next
            .as_deref()
            .is_some_and(|n| n.contains("user1") && n.contains("--approve"))
    })
    .await;
    assert_eq!(s.users.verified, 1);
    let r1 = record(&admin, "user1").await;
    assert_eq!(r1["grade"], "Investigate", "{r1}");
    assert!(r1["reasons"].to_string().contains("src/main.rs"), "{r1}");

    // user0 edits in v2, then is rolled back: the edits are in the v1 layout.
    let edited = b"fn main() { println!(\"edited in v2\"); }\n";
    write_in_v2(&cp.server, &token, "user0-main", "src/main.rs", edited).await;
    write_in_v2(
        &cp.server,
        &token,
        "user0-main",
        "notes/new in v2.md",
        b"new\n",
    )
    .await;
    admin
        .migration_action("spring", "rollback", &["user0".into()], false)
        .await
        .unwrap();
    until(&admin, "user0 rolled back", |s| s.users.rolled_back == 1).await;
    let r0 = record(&admin, "user0").await;
    assert!(r0["rollbackMs"].as_f64().is_some(), "{r0}");
    let user0 = "users/u00000/sandboxes";
    assert_eq!(
        std::fs::read(export.join(format!("{user0}/sb-gemini/files/src/main.rs"))).unwrap(),
        edited,
        "the edit went back to the sandbox the file came from"
    );
    assert_eq!(
        std::fs::read(export.join(format!("{user0}/sb-kimi/files/notes/new in v2.md"))).unwrap(),
        b"new\n",
        "a new file went to the most recently active sandbox"
    );
    // And user0's requests go to v1 again.
    let again: Value = http
        .get(format!("{}/u/user0/v1/status", cp.server))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["side"], "v1");
    let digest = hex::encode(sha2::Sha256::digest(edited));
    assert_eq!(digest.len(), 64);
    drop(admin);
    cp.shutdown().await;
}

/// Waits for `check` on the migration's status, then SIGKILLs the control plane.
async fn kill_when(cp: &mut ControlPlane, what: &str, check: impl Fn(&MigrationStatus) -> bool) {
    until(&cp.client(), what, check).await;
    cp.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_copying_and_while_cutting_over_then_resume_loses_and_duplicates_nothing() {
    use rand::RngExt;
    let tmp = TempRoot::new();
    let export = tmp.path().join("export");
    let users = 4;
    let written = coditect_migrate::synthetic::write(&export, users).unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("migration.yaml");
    std::fs::write(
        &file,
        manifest(
            &export,
            Some("http://127.0.0.1:9"),
            "  users: {batchSize: 2, concurrency: 2}\n  cutover: {autoPromote: true, maxPause: 30s}\n",
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let mut cp = ControlPlane::up(&data, &[&file]);
    // Killed at a random point of the copy: when the first user is being copied, synced,
    // or verified.
    let at = rand::rng().random_range(0..3);
    kill_when(&mut cp, "copying under way", |s| match at {
        0 => s.users.copying >= 1,
        1 => s.users.synced >= 1,
        _ => s.users.verified + s.users.cutting_over + s.users.cut_over >= 1,
    })
    .await;
    eprintln!("SIGKILL while copying (point {at})");
    let mut cp = ControlPlane::up(&data, &[]);
    kill_when(&mut cp, "cutover under way", |s| {
        s.users.cutting_over + s.users.cut_over >= 1
    })
    .await;
    eprintln!("SIGKILL while cutting over");
    let cp = ControlPlane::up(&data, &[]);
    let admin = cp.client();
    let s = until(&admin, "every user cut over", |s| {
        s.users.cut_over == users as u32
    })
    .await;
    assert_eq!(s.users.total, users as u32);
    let token = cp.admin_token();
    for r in records(&admin).await {
        assert_eq!(r["grade"], "Perfect", "{r}");
        let ws = format!("{}-main", r["login"].as_str().unwrap());
        assert_eq!(
            imported_once(&cp.server, &token, &ws).await,
            written.lines_per_user,
            "{ws}"
        );
        assert_eq!(
            tree(&cp.server, &token, &ws).await.len(),
            written.files_per_user,
            "{ws}"
        );
    }

    // The commands a person runs.
    let out = cp.cli(&["migrate", "status", "spring"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["CutOver", "4", "100%"]),
        "{text}"
    );
    assert!(
        text.contains("next: users are on v2 and can still roll back"),
        "{text}"
    );
    let out = cp.cli(&[
        "migrate", "status", "spring", "--users", "user1", "-o", "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["users"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["users"][0]["phase"], "CutOver", "{v}");
    assert_eq!(v["status"]["users"]["total"], 4, "{v}");
    let out = cp.cli(&["migrate", "cutover", "spring"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--users"));
    let out = cp.cli(&["migrate", "rollback", "spring", "--users", "nobody"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("no user nobody"), "{err}");
    let out = cp.cli(&["migrate", "complete", "spring"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = until(&admin, "every user completed", |s| {
        s.users.completed == users as u32
    })
    .await;
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    let out = cp.cli(&["get", "migrations"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("spring") && l.contains("Succeeded")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_at_its_place_and_the_others_go_on() {
    let tmp = TempRoot::new();
    let export = tmp.path().join("export");
    coditect_migrate::synthetic::write(&export, 3).unwrap();
    // A line of users.jsonl no user can be told from.
    let list = export.join("users.jsonl");
    let mut text = std::fs::read_to_string(&list).unwrap();
    text.push_str("{\"login\": \n");
    std::fs::write(&list, text).unwrap();
    // user0: a sandbox without meta.json; user1: a malformed transcript line (line 2).
    std::fs::remove_file(export.join("users/u00000/sandboxes/sb-codex/meta.json")).unwrap();
    let transcript = export.join("users/u00001/sandboxes/sb-claude/transcript.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    std::fs::write(
        &transcript,
        format!("{}\n{{oops\n{}\n", lines[0], lines[1..].join("\n")),
    )
    .unwrap();
    // user2: nothing readable at all.
    for sb in ["sb-claude", "sb-gemini", "sb-codex", "sb-kimi"] {
        std::fs::remove_file(export.join(format!("users/u00002/sandboxes/{sb}/meta.json")))
            .unwrap();
    }
    let (cp, admin, _) = embedded(&tmp.path().join("data")).await;
    admin
        .apply(&objects(&manifest(&export, None, "")), false, None)
        .await
        .unwrap();
    let s = until(&admin, "every user settled", |s| {
        s.users.verified + s.users.failed == 3
    })
    .await;
    assert_eq!((s.users.verified, s.users.failed), (2, 1));
    assert!(
        s.problems.iter().any(|p| p.starts_with("users.jsonl:4:")),
        "{:?}",
        s.problems
    );
    let r0 = record(&admin, "user0").await;
    assert_eq!(r0["grade"], "Investigate", "{r0}");
    assert!(
        r0["problems"]
            .to_string()
            .contains("users/u00000/sandboxes/sb-codex/meta.json"),
        "{r0}"
    );
    let r1 = record(&admin, "user1").await;
    assert_eq!(r1["grade"], "Investigate", "{r1}");
    let p = &r1["problems"][0];
    assert_eq!(
        p["object"], "users/u00001/sandboxes/sb-claude/transcript.jsonl",
        "{r1}"
    );
    assert_eq!(p["line"], 2, "{r1}");
    let r2 = record(&admin, "user2").await;
    assert_eq!(r2["phase"], "Failed", "{r2}");
    assert!(
        r2["reasons"][0].as_str().unwrap().contains("no sandbox"),
        "{r2}"
    );
    // Nothing was made for the failed user.
    let ws = ObjectKey {
        kind: Kind::Workspace,
        organization: Some("acme".into()),
        name: "user2-main".into(),
    };
    assert!(admin.get(&ws).await.is_err(), "no workspace for user2");
    drop(admin);
    cp.shutdown().await;
}
