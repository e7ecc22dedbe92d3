//! Blue-green routing of a migrating user through the gateway of a real control plane,
//! with a real workspace instance and a v1 endpoint on loopback: `/u/alice/…` reaches v1
//! (the user's own credential passed through), then during the cutover the user's
//! requests are held — a client sending without pause sees no failure — and after the
//! flip they reach alice's v2 workspace; a rollback is one flip back. The pause is
//! measured and printed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use coditect_control_plane::gateway::users::Route;
use coditect_runtime::testkit::TempRoot;
use coditect_specs::{Kind, ObjectKey};
use serde_json::{Value, json};

mod common;
use common::{embedded, objects};

/// A v1 endpoint: says it is v1, and which credential it got.
async fn v1() -> String {
    let app = axum::Router::new().fallback(|req: axum::extract::Request| async move {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        axum::Json(json!({"side": "v1", "path": req.uri().path(), "auth": auth}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[derive(Default)]
struct Seen {
    sent: AtomicUsize,
    answered: std::sync::Mutex<Vec<(u16, String)>>,
}

impl Seen {
    fn count(&self, side: &str) -> usize {
        self.answered
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s == side)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_cut_over_with_requests_held_never_failed_and_rolled_back_in_one_flip() {
    let tmp = TempRoot::new();
    let (cp, admin, _) = embedded(&tmp.path().join("data")).await;
    let text = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {storage: {bucket: 'file:bucket/acme'}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {}\n---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: alice-main, organization: acme, team: t}\nspec: {owner: alice, agents: [{name: claude, provider: offline}]}\n";
    admin.apply(&objects(text), false, None).await.unwrap();
    let workspace = ObjectKey {
        kind: Kind::Workspace,
        organization: Some("acme".into()),
        name: "alice-main".into(),
    };
    admin
        .wait_for(&workspace, "Ready", Duration::from_secs(60))
        .await
        .unwrap();
    let v1 = v1().await;
    cp.users
        .set(
            "alice",
            Route::V1 {
                endpoint: v1.clone(),
            },
        )
        .unwrap();

    // Alice's client: one request after another, never pausing.
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (seen, stop) = (seen.clone(), stop.clone());
        let url = format!("{}/u/alice/v1/status", cp.server);
        let token = cp.admin_token.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                seen.sent.fetch_add(1, Ordering::SeqCst);
                let resp = http.get(&url).bearer_auth(&token).send().await.unwrap();
                let code = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let side = if body["side"] == "v1" {
                    assert_eq!(
                        body["auth"],
                        format!("Bearer {token}"),
                        "v1 gets the user's own credential"
                    );
                    "v1"
                } else if body["workspace"].is_string()
                    || body["session"].is_object()
                    || code == 200
                {
                    "v2"
                } else {
                    "?"
                };
                seen.answered.lock().unwrap().push((code, side.to_string()));
            }
        })
    };
    let until = |what: &'static str, done: Box<dyn Fn(&Seen) -> bool + Send>| {
        let seen = seen.clone();
        async move {
            let waited = tokio::time::timeout(Duration::from_secs(60), async {
                while !done(&seen) {
                    tokio::task::yield_now().await;
                }
            })
            .await;
            assert!(waited.is_ok(), "never: {what}");
        }
    };
    until("20 answers from v1", Box::new(|s| s.count("v1") >= 20)).await;

    // The cutover: held while the migration copies the last changes and verifies…
    assert!(cp.users.hold("alice"));
    let users = cp.users.clone();
    until("a request held", Box::new(move |_| users.held() == 1)).await;
    let answered_while_held = seen.answered.lock().unwrap().len();
    assert_eq!(
        seen.sent.load(Ordering::SeqCst),
        answered_while_held + 1,
        "the one request in flight is the held one"
    );
    // …then the flip, and the held request goes to v2.
    let pause = cp
        .users
        .release(
            "alice",
            Route::V2 {
                workspace: workspace.clone(),
            },
        )
        .unwrap();
    until("20 answers from v2", Box::new(|s| s.count("v2") >= 20)).await;

    // Rollback: one flip back.
    let started = std::time::Instant::now();
    cp.users
        .release("alice", Route::V1 { endpoint: v1 })
        .unwrap();
    let rollback = started.elapsed();
    let v1_before = seen.count("v1");
    until("v1 again", Box::new(move |s| s.count("v1") > v1_before + 5)).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();

    let answered = seen.answered.lock().unwrap().clone();
    assert!(
        answered
            .iter()
            .all(|(code, side)| *code == 200 && side != "?"),
        "every request answered: {:?}",
        answered
            .iter()
            .filter(|(c, s)| *c != 200 || s == "?")
            .collect::<Vec<_>>()
    );
    // In order: v1, then v2, then v1 again — no request went to the old side after a flip.
    let sides: Vec<&str> = answered.iter().map(|(_, s)| s.as_str()).collect();
    let mut runs: Vec<&str> = sides.clone();
    runs.dedup();
    assert_eq!(runs, vec!["v1", "v2", "v1"]);
    eprintln!(
        "BLUE-GREEN cutover pause {:.3} ms (held by the test until a request was waiting), rollback flip {:.3} ms, {} requests, 0 failed",
        pause.as_secs_f64() * 1000.0,
        rollback.as_secs_f64() * 1000.0,
        answered.len()
    );
    drop(admin);
    cp.shutdown().await;
}
