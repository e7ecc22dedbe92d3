//! Auto-sleep against real instances and real agent loops, with the auto-sleeper's clock
//! in the test's hands: only an idle workspace sleeps; a model call in flight (a local
//! model server that holds the request), a queued task, a held lock, an open WebSocket
//! and a keep-alive each keep theirs awake and the status says which; the sleeping one is
//! woken by a request through the gateway, and answered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use coditect_ops::autosleep::{AutoSleeper, Step};
use coditect_runtime::testkit::TempRoot;
use coditect_specs::{Kind, ObjectKey, Resource};
use serde_json::json;

mod common;
use common::{embedded, objects};

const MINUTE: Duration = Duration::from_secs(60);

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Workspace,
        organization: Some("acme".into()),
        name: name.into(),
    }
}

/// A Chat Completions server that takes every request and never answers it (a model
/// thinking for a long time); it says when the first request has arrived.
async fn slow_model() -> (String, Arc<tokio::sync::Notify>) {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let seen = arrived.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let seen = seen.clone();
            async move {
                seen.notify_one();
                std::future::pending::<()>().await;
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), arrived)
}

fn manifests(model: &str) -> Vec<Resource> {
    let mut text = String::from(
        "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {storage: {bucket: 'file:bucket/acme'}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {workspaceDefaults: {autoSleep: {idleAfter: 1m}}}\n",
    );
    for name in ["idle", "lock", "socket", "kept"] {
        text.push_str(&format!(
            "---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {name}, organization: acme, team: t}}\nspec: {{owner: u, agents: [{{name: a, provider: offline}}]}}\n"
        ));
    }
    text.push_str(&format!(
        "---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: model, organization: acme, team: t}}\nspec:\n  owner: u\n  agents:\n    - name: slow\n      provider: openai-compatible\n      model: thinker\n      baseUrl: {model}\n      credentials: {{secretRef: {{name: slow, key: api-key}}}}\n"
    ));
    objects(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idle_workspaces_sleep_and_the_busy_ones_say_why() {
    let tmp = TempRoot::new();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("secrets/slow")).unwrap();
    std::fs::write(data.join("secrets/slow/api-key"), "sk-local").unwrap();
    let (model, arrived) = slow_model().await;
    let (cp, admin, gateway) = embedded(&data).await;
    admin.apply(&manifests(&model), false, None).await.unwrap();
    for name in ["idle", "lock", "socket", "kept", "model"] {
        admin.wait_for(&key(name), "Ready", MINUTE).await.unwrap();
    }
    // Work in progress, one kind per workspace.
    for title in ["think", "then think again"] {
        let (status, body) = gateway
            .post(
                "/w/acme/model/v1/tasks",
                &json!({"title": title, "agent": "slow"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    arrived.notified().await; // the model call is in flight
    let (status, body) = gateway
        .post(
            "/w/acme/lock/v1/locks",
            &json!({"path": "src/", "mode": "exclusive", "holder": "a", "ttl_ms": 86_400_000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (socket, _) =
        tokio_tungstenite::connect_async(gateway.ws_url("/w/acme/socket/v1/events/ws?since=0"))
            .await
            .unwrap();
    let (status, body) = gateway
        .post("/w/acme/kept/v1/keepalive", &json!({"for": "3h"}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Two hours on, as far as the auto-sleeper can tell.
    let sleeper = AutoSleeper::new(&cp);
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let steps: HashMap<String, Step> = sleeper
        .pass(later)
        .await
        .into_iter()
        .map(|(k, s)| (k.name, s))
        .collect();
    assert!(matches!(&steps["idle"], Step::Slept(_)), "{steps:?}");
    for (name, why) in [
        ("model", "model call(s) in flight"),
        ("model", "2 task(s) queued or running"),
        ("lock", "lock(s) held"),
        ("socket", "open WebSocket"),
        ("kept", "keep-alive until"),
    ] {
        assert!(
            matches!(&steps[name], Step::Kept(w) if w.contains(why)),
            "{name}: {why} in {steps:?}"
        );
    }
    // The sleeping one stops; the others say in their status why they are awake.
    let asleep = admin
        .watch_until(&key("idle"), MINUTE, |r| {
            r.status_json()["phase"] == "Asleep"
        })
        .await
        .unwrap();
    let status = asleep.status_json();
    assert_eq!(status["sleep"]["by"], "auto-sleep");
    assert!(
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "False" && c["reason"] == "Asleep")
    );
    let lock = admin.get(&key("lock")).await.unwrap();
    assert!(
        lock.status_json()["awakeBecause"]
            .as_str()
            .unwrap()
            .contains("lock")
    );

    // The WebSocket closes: next time round, that one sleeps too.
    drop(socket);
    let steps = sleeper.pass(later).await;
    assert!(
        steps
            .iter()
            .any(|(k, s)| k.name == "socket" && matches!(s, Step::Slept(_))),
        "{steps:?}"
    );

    // A request through the gateway wakes the sleeping one and is answered.
    let (status, body) = gateway.get("/w/acme/idle/v1/status").await;
    assert_eq!(
        (status, body["workspace"].as_str()),
        (200, Some("idle")),
        "{body}"
    );
    let awake = admin.get(&key("idle")).await.unwrap();
    assert_eq!(awake.status_json()["phase"], "Running");
    assert!(awake.status_json()["sleep"].is_null());
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_whose_bucket_fails_stays_awake_and_says_why_until_it_is_shipped() {
    let tmp = TempRoot::new();
    let data = tmp.path().join("data");
    let (cp, admin, gateway) = embedded(&data).await;
    let text = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {storage: {bucket: 'file:bucket/acme'}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {}\n---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: w, organization: acme, team: t}\nspec: {owner: u, agents: [{name: a, provider: offline}], sync: {eventsInterval: 1s, databasesInterval: 1s}}\n";
    admin.apply(&objects(text), false, None).await.unwrap();
    admin.wait_for(&key("w"), "Ready", MINUTE).await.unwrap();
    // Once the instance owns the workspace in the bucket (its first round done)…
    loop {
        let (_, status) = gateway.get("/w/acme/w/v1/status").await;
        if status["sync"]["bucket"]
            .as_str()
            .is_some_and(|b| !b.is_empty())
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    // …the bucket goes away (a file where its folder was: every write to it fails), and
    // there is work to ship.
    let bucket = data.join("bucket/acme");
    let aside = data.join("bucket/acme.aside");
    std::fs::rename(&bucket, &aside).unwrap();
    std::fs::write(&bucket, "not a folder").unwrap();
    let (status, _) = gateway
        .post(
            "/w/acme/w/v1/events",
            &json!({"agent": "a", "type": "agent_message", "data": {"unsaved": true}}),
        )
        .await;
    assert_eq!(status, 200);
    // The instance's next round fails, and it says so.
    loop {
        let (_, status) = gateway.get("/w/acme/w/v1/status").await;
        if status["sync"]["lastError"].is_string() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let (status, body) = gateway
        .post(
            "/apis/coditect.io/v1/organizations/acme/workspaces/w/sleep",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let held = admin
        .watch_until(&key("w"), MINUTE, |r| {
            r.status_json()["sleep"]["blocked"].is_string()
        })
        .await
        .unwrap();
    let status = held.status_json();
    assert!(
        status["sleep"]["blocked"]
            .as_str()
            .unwrap()
            .contains("unsaved work"),
        "{status}"
    );
    assert_eq!(status["phase"], "Running", "still awake: {status}");
    assert!(status["endpoint"].is_string(), "and serving: {status}");
    // The bucket comes back: the work is shipped, then it sleeps.
    std::fs::remove_file(&bucket).unwrap();
    std::fs::rename(&aside, &bucket).unwrap();
    admin
        .watch_until(&key("w"), MINUTE, |r| r.status_json()["phase"] == "Asleep")
        .await
        .unwrap();
    cp.shutdown().await;
}

/// `coditect sleep` / `wake` through the CLI, a WebSocket that wakes a sleeping workspace,
/// and a control plane SIGKILLed in the middle of a sleep and of a wake: each converges
/// when it comes back, and no acknowledged event is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_and_wake_survive_a_killed_control_plane_and_a_websocket_wakes() {
    use futures_util::StreamExt;
    let tmp = TempRoot::new();
    let mut cp = common::ControlPlane::up(tmp.path(), &["specs/examples/"]);
    common::ready(&cp, "bob-main").await;
    let gateway = cp.gateway("bob", "bob-main");
    let mut acked = Vec::new();
    for i in 0..50 {
        let (status, e) = gateway
            .post(
                "/w/acme/bob-main/v1/events",
                &json!({"agent": "a", "type": "agent_message", "data": {"i": i}}),
            )
            .await;
        assert_eq!(status, 200);
        acked.push(e["seq"].as_u64().unwrap());
    }
    let path = |action: &str| {
        format!("/apis/coditect.io/v1/organizations/acme/workspaces/bob-main/{action}")
    };

    // Killed right after the wish to sleep.
    assert_eq!(gateway.post(&path("sleep"), &json!({})).await.0, 200);
    cp.sigkill();
    let mut cp = common::ControlPlane::up(tmp.path(), &[]);
    cp.client()
        .watch_until(&common::ws_key("bob-main"), MINUTE, |r| {
            r.status_json()["phase"] == "Asleep"
        })
        .await
        .unwrap();
    let bob = cp.folder("bob", "bob-main").join("runtime.json");
    assert!(
        !bob.exists() || !common::alive(cp.pid("bob", "bob-main")),
        "bob's instance stopped"
    );
    assert!(
        common::alive(cp.pid("alice", "alice-main")),
        "alice's still runs"
    );
    // Killed right after the wish to wake.
    let gateway = cp.gateway("bob", "bob-main");
    assert_eq!(gateway.post(&path("wake"), &json!({})).await.0, 200);
    cp.sigkill();
    let cp = common::ControlPlane::up(tmp.path(), &[]);
    common::ready(&cp, "bob-main").await;

    // Asleep again, by the CLI; a WebSocket through the gateway wakes it and streams.
    let out = cp.cli(&["sleep", "workspace/bob-main"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("asleep"));
    let gateway = cp.gateway("bob", "bob-main");
    let (mut socket, _) =
        tokio_tungstenite::connect_async(gateway.ws_url("/w/acme/bob-main/v1/events/ws?since=0"))
            .await
            .unwrap();
    let mut seen = Vec::new();
    while seen.len() < acked.len() {
        let frame = socket.next().await.unwrap().unwrap();
        let e: serde_json::Value = serde_json::from_str(&frame.into_text().unwrap()).unwrap();
        if e["data"]["i"].is_u64() {
            seen.push(e["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, acked, "every acknowledged event, once, in order");
    let out = cp.cli(&["get", "workspace", "bob-main"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Running"));
    let out = cp.cli(&["wake", "bob-main"]);
    assert!(
        out.status.success(),
        "waking an awake workspace is a no-op: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `quotas.maxAwakeWorkspaces` holds: three workspaces declared into a quota of two, one
/// sleeps; a request to it puts the least recently active idle one to sleep first and is
/// answered; when every awake one is busy, a request is refused at once (503 with
/// `Retry-After`) and nothing is half-done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_awake_quota_evicts_the_least_recently_active_idle_workspace_or_refuses() {
    let tmp = TempRoot::new();
    let (cp, admin, gateway) = embedded(&tmp.path().join("data")).await;
    let mut text = String::from(
        "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {quotas: {maxWorkspaces: 10, maxAwakeWorkspaces: 2}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {}\n",
    );
    for name in ["w1", "w2", "w3"] {
        text.push_str(&format!("---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {name}, organization: acme, team: t}}\nspec: {{owner: u, agents: [{{name: a, provider: offline}}]}}\n"));
    }
    admin.apply(&objects(&text), false, None).await.unwrap();
    let settled = |r: &Resource| {
        let s = r.status_json();
        s["phase"] == "Running" || s["phase"] == "Asleep"
    };
    let mut awake = Vec::new();
    let mut asleep = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let r = admin
            .watch_until(&key(name), MINUTE, settled)
            .await
            .unwrap();
        if r.status_json()["phase"] == "Running" {
            awake.push(name);
        } else {
            assert_eq!(
                r.status_json()["sleep"]["by"],
                "quota",
                "{}",
                r.status_json()
            );
            asleep.push(name);
        }
    }
    assert_eq!(
        (awake.len(), asleep.len()),
        (2, 1),
        "awake {awake:?}, asleep {asleep:?}"
    );
    // The newest request wins a place; the least recently active idle one gives it up.
    let (older, newer) = (awake[0], awake[1]);
    assert_eq!(
        gateway.get(&format!("/w/acme/{newer}/v1/status")).await.0,
        200
    );
    let sleeper = asleep[0];
    let (status, body) = gateway.get(&format!("/w/acme/{sleeper}/v1/status")).await;
    assert_eq!(status, 200, "{body}");
    let evicted = admin.get(&key(older)).await.unwrap();
    assert_eq!(
        evicted.status_json()["sleep"]["by"],
        "quota",
        "{}",
        evicted.status_json()
    );
    // Both awake ones busy now (a held lock each): a request to the sleeping one is
    // refused at once, and it stays asleep.
    for name in [newer, sleeper] {
        let (status, body) = gateway
            .post(
                &format!("/w/acme/{name}/v1/locks"),
                &json!({"path": "x/", "mode": "exclusive", "holder": "a", "ttl_ms": 600_000}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let resp = gateway
        .request(reqwest::Method::GET, &format!("/w/acme/{older}/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "quota_full", "{body}");
    let r = admin.get(&key(older)).await.unwrap();
    assert_eq!(r.status_json()["phase"], "Asleep");
    for name in [newer, sleeper] {
        assert_eq!(
            admin.get(&key(name)).await.unwrap().status_json()["phase"],
            "Running"
        );
    }
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_freeing_policy_frees_the_folder_once_the_bucket_copy_is_verified() {
    let tmp = TempRoot::new();
    let data = tmp.path().join("data");
    let (cp, admin, gateway) = embedded(&data).await;
    let text = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {storage: {bucket: 'file:bucket/acme'}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {}\n---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: w, organization: acme, team: t}\nspec: {owner: u, autoSleep: {idleAfter: 1h, freeLocalDisk: true}, agents: [{name: a, provider: offline}]}\n";
    admin.apply(&objects(text), false, None).await.unwrap();
    admin
        .watch_until(&key("w"), MINUTE, |r| r.status_json()["phase"] == "Running")
        .await
        .unwrap();
    let (status, body) = gateway
        .post(
            "/w/acme/w/v1/events",
            &json!({"agent": "alice", "type": "agent_message", "data": {"text": "remember me"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seq = body["seq"].as_u64().unwrap();
    let folder =
        coditect_runtime::layout::Layout::new(&data.join("workspaces"), "acme", "t", "u", "w")
            .root()
            .to_path_buf();
    assert!(folder.join("databases/sessions.db").exists());

    common::sleep_or_wake(&admin, "w", "sleep").await;
    // Freed before the workspace was reported asleep, with the check's figures.
    assert!(!folder.exists(), "{} still there", folder.display());
    let events = admin.events(&key("w")).await.unwrap();
    let freed = events.iter().find(|e| e.reason == "DiskFreed").unwrap();
    assert!(freed.message.contains("bucket copy verified"), "{freed:?}");

    // A request wakes it: restored from the bucket, the event is there.
    let (status, body) = gateway
        .get(&format!("/w/acme/w/v1/events?since={}", seq - 1))
        .await;
    assert_eq!(status, 200, "{body}");
    let first = &body.as_array().unwrap()[0];
    assert_eq!(first["seq"].as_u64().unwrap(), seq, "{body}");
    assert_eq!(first["data"]["text"], "remember me");
    assert!(folder.join("databases/sessions.db").exists());

    // The restored instance seals its own stop: the next sleep frees the folder again.
    common::sleep_or_wake(&admin, "w", "sleep").await;
    assert!(!folder.exists(), "a clean second sleep frees it again");
    let freed = admin.events(&key("w")).await.unwrap();
    assert_eq!(freed.iter().filter(|e| e.reason == "DiskFreed").count(), 2);
    cp.shutdown().await;
}
