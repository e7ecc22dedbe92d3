//! The keys a workspace is given never show: a real `up` of the examples with every
//! provider's key set (three by environment, one by a secretRef file) runs the demo tasks
//! (their model calls fail: no network here, which puts the keys' providers in the error
//! paths too); then every file the run wrote (logs, databases, event log, bucket), the
//! control plane's own log, the status, events and metrics through the gateway, the audit
//! trail, and what the CLI prints are searched for each key — and for the control plane's
//! own credentials: a user's token and the admin's (which only `admin.yaml` holds).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashSet;
use std::path::Path;

use coditect_runtime::testkit::TempRoot;
use common::*;

const KEYS: [&str; 4] = [
    "sk-ant-api03-SECRET-aaaaaaaaaaaaaaaa",
    "AIzaSECRET-bbbbbbbbbbbbbbbbbbbbbbbb",
    "sk-proj-SECRET-cccccccccccccccccccc",
    "sk-moonshot-SECRET-dddddddddddddddd",
];

/// Every file under `dir` (but `skip`), as text.
fn everything(dir: &Path, skip: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.starts_with(skip) {
            continue;
        }
        if path.is_dir() {
            everything(&path, skip, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_appears_in_any_log_event_status_error_or_output() {
    let tmp = TempRoot::new();
    let data = tmp.path().join("data");
    let secrets = data.join("secrets/moonshot");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("api-key"), KEYS[3]).unwrap();
    let log = tmp.path().join("up.log");
    let env = [
        ("ANTHROPIC_API_KEY", KEYS[0]),
        ("GEMINI_API_KEY", KEYS[1]),
        ("OPENAI_API_KEY", KEYS[2]),
        ("MOONSHOT_API_KEY", KEYS[3]),
        ("CODITECT_LOG", "debug"),
    ];
    let cp = ControlPlane::up_with(&data, &["specs/examples/"], &env, Some(&log));
    ready(&cp, "alice-main").await;
    ready(&cp, "bob-main").await;
    // alice's four demo tasks go to the real providers, and fail there.
    let demo: HashSet<i64> = (1..=4).collect();
    let ended = tasks_finished(&cp, "alice", "alice-main", &demo).await;
    assert!(
        ended.iter().all(|(_, ok)| !ok),
        "no network here: the model calls fail {ended:?}"
    );

    // A user's token, used through the API and the gateway (and refused once).
    let created = cp.cli(&["-o", "json", "token", "create", "--user", "alice"]);
    assert!(created.status.success());
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let user_token = created["token"].as_str().unwrap().to_string();
    let as_alice = cp.gateway_as(&user_token);
    assert_eq!(as_alice.get("/w/acme/alice-main/v1/status").await.0, 200);
    let (status, refusal) = as_alice
        .delete("/apis/coditect.io/v1/organizations/acme")
        .await;
    assert_eq!(status, 403);
    let admin_token = cp.admin_token();

    let mut seen: Vec<(String, String)> = Vec::new();
    seen.push(("a refusal".into(), refusal.to_string()));
    let gateway = cp.gateway("alice", "alice-main");
    for path in [
        "/w/acme/alice-main/v1/status",
        "/w/acme/alice-main/v1/events?since=0&limit=10000",
        "/w/acme/alice-main/v1/tasks",
    ] {
        let (_, body) = gateway.get(path).await;
        seen.push((path.to_string(), body.to_string()));
    }
    let metrics = gateway
        .request(reqwest::Method::GET, "/w/acme/alice-main/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    seen.push(("metrics".into(), metrics));
    for args in [
        &["get", "workspaces", "-o", "yaml"][..],
        &["describe", "workspace", "alice-main"],
        &["describe", "workspace", "bob-main"],
        &["agents", "check", "alice-main"],
        &["token", "list"],
        &["audit"],
    ] {
        let out = cp.cli(args);
        seen.push((
            args.join(" "),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    drop(cp); // stops the instances: their last logs and the final sync round are written
    seen.push(("up.log".into(), std::fs::read_to_string(&log).unwrap()));
    everything(&data, &data.join("secrets"), &mut seen);
    // The one place the admin's token is written, by design (mode 0600, like k3s.yaml).
    seen.retain(|(place, _)| !place.ends_with("admin.yaml"));
    assert!(
        seen.iter()
            .any(|(_, text)| text.contains("model call failed")),
        "the failures were recorded"
    );
    for (place, text) in &seen {
        for key in KEYS
            .iter()
            .copied()
            .chain([user_token.as_str(), admin_token.as_str()])
        {
            assert!(!text.contains(key), "{key} appears in {place}");
        }
    }
}
