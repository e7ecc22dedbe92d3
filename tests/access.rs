//! Access control end to end, through a real `coditect up`: the matrix of roles × verbs ×
//! objects through the API and the gateway, token revocation on the next request, `auth
//! can-i`, the audit trail and its chain, the rate limit, a real TLS handshake (and plain
//! HTTP refused on the TLS port), and the refusal to listen in the clear off loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use coditect_runtime::testkit::{ApiClient, TempRoot};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

const EXTRA: &str = "
apiVersion: coditect.io/v1
kind: Team
metadata: {name: platform, organization: acme}
spec:
  members: [{user: alice, role: admin}, {user: bob}, {user: vic, role: viewer}]
---
apiVersion: coditect.io/v1
kind: Organization
metadata: {name: globex}
spec: {admins: [gina], storage: {bucket: 'file:bucket/globex'}}
---
apiVersion: coditect.io/v1
kind: Team
metadata: {name: lab, organization: globex}
spec: {members: [{user: gina, role: admin}]}
";

const USERS: [&str; 7] = ["admin", "dana", "alice", "bob", "vic", "mallory", "gina"];

/// A token per user (the admin's is the bootstrap credential).
async fn tokens(cp: &ControlPlane) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    out.insert("admin", cp.admin_token());
    for user in &USERS[1..] {
        out.insert(*user, token_for(cp, user).await);
    }
    out
}

async fn token_for(cp: &ControlPlane, user: &str) -> String {
    let v = cp
        .client()
        .post_json("/apis/coditect.io/v1/tokens", &json!({"user": user}))
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// The stored object, as a manifest to apply again (status and server fields dropped).
async fn manifest(cp: &ControlPlane, path: &str) -> Value {
    let (status, mut v) = cp.gateway_as(&cp.admin_token()).get(path).await;
    assert_eq!(status, 200, "{path}: {v}");
    v.as_object_mut().unwrap().remove("status");
    let meta = v["metadata"].as_object_mut().unwrap();
    for field in [
        "resourceVersion",
        "uid",
        "generation",
        "creationTimestamp",
        "finalizers",
    ] {
        meta.remove(field);
    }
    v
}

fn allowed(status: u16) -> bool {
    // A delete that passes access control and then finds the object still holding
    // others answers 409: it was allowed.
    matches!(status, 200 | 409)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_by_verbs_by_objects_through_the_api_and_the_gateway() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;
    ready(&cp, "bob-main").await;
    let extra = tmp.path().join("extra.yaml");
    std::fs::write(&extra, EXTRA).unwrap();
    let out = cp.cli(&["apply", "-f", extra.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens = tokens(&cp).await;

    let api = "/apis/coditect.io/v1";
    // (object, GET path, who may read, update, delete, use)
    let objects = [
        (
            "organization/acme",
            format!("{api}/organizations/acme"),
            "admin dana alice bob vic",
            "admin dana",
            "admin dana",
            "",
        ),
        (
            "team/acme/platform",
            format!("{api}/organizations/acme/teams/platform"),
            "admin dana alice bob vic",
            "admin dana alice",
            "admin dana",
            "",
        ),
        (
            "workspace/acme/alice-main",
            format!("{api}/organizations/acme/workspaces/alice-main"),
            "admin dana alice bob vic",
            "admin dana alice",
            "admin dana alice",
            "admin dana alice",
        ),
        (
            "workspace/acme/bob-main",
            format!("{api}/organizations/acme/workspaces/bob-main"),
            "admin dana alice bob vic",
            "admin dana alice bob",
            "admin dana alice bob",
            "admin dana alice bob",
        ),
        (
            "organization/globex",
            format!("{api}/organizations/globex"),
            "admin gina",
            "admin gina",
            "admin gina",
            "",
        ),
        (
            "team/globex/lab",
            format!("{api}/organizations/globex/teams/lab"),
            "admin gina",
            "admin gina",
            "admin gina",
            "",
        ),
    ];
    let mut mismatches = Vec::new();
    let mut check = |what: String, expected: bool, status: u16, body: &Value| {
        if allowed(status) != expected {
            mismatches.push(format!(
                "{what}: expected {}, got {status} {body}",
                if expected { "allowed" } else { "denied" }
            ));
        }
        if !expected && status == 403 {
            let permission = body["permission"].as_str().unwrap_or_default();
            assert!(
                body["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(permission)
                    && !permission.is_empty(),
                "{what}: a refusal names the missing permission: {body}"
            );
        }
    };
    for (object, path, read, update, delete, use_) in &objects {
        let doc = manifest(&cp, path).await;
        let kind_plural = path.rsplit('/').nth(1).unwrap().to_string();
        for user in USERS {
            let as_user = cp.gateway_as(&tokens[user]);
            let may = |list: &str| list.split_whitespace().any(|u| u == user);
            let (status, body) = as_user.get(path).await;
            check(format!("{user} read {object}"), may(read), status, &body);
            // Lists are filtered, not just gets.
            let (status, list) = as_user.get(&format!("{api}/{kind_plural}")).await;
            assert_eq!(status, 200);
            let listed = list["items"].as_array().unwrap().iter().any(|i| {
                i["metadata"]["name"] == doc["metadata"]["name"]
                    && i["metadata"]["organization"] == doc["metadata"]["organization"]
            });
            assert_eq!(listed, may(read), "{user} lists {object}");
            let (status, body) = as_user
                .post(
                    &format!("{api}/apply"),
                    &json!({"objects": [doc.clone()], "dryRun": true}),
                )
                .await;
            check(
                format!("{user} update {object}"),
                may(update),
                status,
                &body,
            );
            let (status, body) = as_user.delete(&format!("{path}?dryRun=true")).await;
            check(
                format!("{user} delete {object}"),
                may(delete),
                status,
                &body,
            );
            if let Some(ws) = object.strip_prefix("workspace/acme/") {
                let (status, body) = as_user.get(&format!("/w/acme/{ws}/v1/status")).await;
                check(
                    format!("{user} read {object} through the gateway"),
                    may(read),
                    status,
                    &body,
                );
                let msg = json!({"from": "matrix", "topic": "matrix", "body": {"by": user}});
                let (status, body) = as_user
                    .post(&format!("/w/acme/{ws}/v1/messages"), &msg)
                    .await;
                check(
                    format!("{user} use {object} through the gateway"),
                    may(use_),
                    status,
                    &body,
                );
            }
        }
    }
    // Creating a workspace: a member for themselves, admins for anyone.
    for (owner, creators) in [
        ("bob", "admin dana alice bob"),
        ("alice", "admin dana alice"),
    ] {
        let doc = json!({
            "apiVersion": "coditect.io/v1", "kind": "Workspace",
            "metadata": {"name": format!("{owner}-extra"), "organization": "acme", "team": "platform"},
            "spec": {"owner": owner, "agents": [{"name": "a", "provider": "offline"}]},
        });
        for user in USERS {
            let (status, body) = cp
                .gateway_as(&tokens[user])
                .post(
                    &format!("{api}/apply"),
                    &json!({"objects": [doc], "dryRun": true}),
                )
                .await;
            let may = creators.split_whitespace().any(|u| u == user);
            check(
                format!("{user} create workspace {owner}-extra"),
                may,
                status,
                &body,
            );
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // Nothing is told of another organization's objects: 404, not 403.
    let (status, _) = cp
        .gateway_as(&tokens["mallory"])
        .get(&format!("{api}/organizations/acme/workspaces/alice-main"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = cp
        .gateway_as(&tokens["gina"])
        .get("/w/acme/bob-main/v1/status")
        .await;
    assert_eq!(status, 404);

    // Watches are filtered too: bob follows organizations and sees acme change, never globex.
    let watch = reqwest::Client::new()
        .get(format!(
            "{}{api}/organizations?watch=true&resourceVersion=0",
            cp.server
        ))
        .bearer_auth(&tokens["bob"])
        .send()
        .await
        .unwrap();
    let mut org = manifest(&cp, &format!("{api}/organizations/acme")).await;
    org["metadata"]["labels"]["seen"] = json!("yes");
    let (status, body) = cp
        .gateway_as(&tokens["admin"])
        .post(&format!("{api}/apply"), &json!({"objects": [org]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut stream = watch.bytes_stream();
    let mut text = String::new();
    while !text.contains("\"seen\"") {
        text.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
    assert!(text.contains("\"acme\""));
    assert!(
        !text.contains("globex"),
        "bob's watch showed globex: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_a_token_off_at_the_next_request_and_everything_is_audited() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "bob-main").await;
    let out = cp.cli(&[
        "-o", "json", "token", "create", "--user", "bob", "--ttl", "30d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["record"]["id"].as_str().unwrap().to_string();
    assert!(created["record"]["expiresAt"].is_string());
    let bob = cp.gateway_as(&token);

    // bob, as the CLI: who am I, and may I?
    let as_bob = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_coditect"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CODITECT_SERVER", &cp.server)
            .env("CODITECT_TOKEN", &token)
            .env("CODITECT_CONFIG", tmp.path().join("none.yaml"))
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(
        String::from_utf8_lossy(&as_bob(&["auth", "whoami"]).stdout).trim(),
        "bob"
    );
    let yes = as_bob(&["auth", "can-i", "delete", "workspace/bob-main"]);
    assert_eq!(
        (
            yes.status.code(),
            String::from_utf8_lossy(&yes.stdout).trim()
        ),
        (Some(0), "yes")
    );
    let no = as_bob(&["auth", "can-i", "delete", "workspace/alice-main"]);
    assert_eq!(
        (no.status.code(), String::from_utf8_lossy(&no.stdout).trim()),
        (Some(1), "no")
    );
    assert!(String::from_utf8_lossy(&no.stderr).contains("workspaces.delete"));
    let dry = as_bob(&["delete", "workspace", "bob-main", "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would be deleted (dry run)"));
    assert_eq!(
        bob.get("/w/acme/bob-main/v1/status").await.0,
        200,
        "still there"
    );
    let denied = as_bob(&["delete", "workspace", "alice-main"]);
    assert_eq!(denied.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("missing permission workspaces.delete")
    );
    let viewer = cp.cli(&[
        "auth",
        "can-i",
        "use",
        "workspace/bob-main",
        "--as",
        "alice",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&viewer.stdout).trim(),
        "yes",
        "alice is a team admin"
    );

    // Works through the API, the gateway and a WebSocket; then is revoked.
    assert_eq!(bob.get("/apis/coditect.io/v1/whoami").await.0, 200);
    assert_eq!(bob.get("/w/acme/bob-main/v1/status").await.0, 200);
    let ws_url = bob.ws_url("/w/acme/bob-main/v1/events/ws?since=0");
    assert!(
        tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .is_ok()
    );
    let out = cp.cli(&["token", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = bob.get("/apis/coditect.io/v1/whoami").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(bob.get("/w/acme/bob-main/v1/status").await.0, 401);
    let err = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // No token at all, and a forged one.
    let anonymous = ApiClient::new(
        cp.server.trim_start_matches("http://").parse().unwrap(),
        None,
    );
    assert_eq!(
        anonymous.get("/apis/coditect.io/v1/workspaces").await.0,
        401
    );
    assert_eq!(anonymous.get("/healthz").await.0, 200);
    let forged = format!("cdt_{id}_{}", "f".repeat(40));
    assert_eq!(
        cp.gateway_as(&forged)
            .get("/w/acme/bob-main/v1/status")
            .await
            .0,
        401
    );

    // The trail: every change and refusal, who, what, how it ended; the chain verifies.
    let out = cp.cli(&["-o", "json", "audit"]);
    assert!(out.status.success());
    let trail: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries: Vec<(String, String, String)> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["agent"].as_str().unwrap().to_string(),
                e["data"]["action"].as_str().unwrap().to_string(),
                e["data"]["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("admin", "apply", "ok"),
        ("admin", "token.create", "ok"),
        ("bob", "delete", "denied"),
        ("admin", "token.revoke", "ok"),
    ] {
        let expected = (
            expected.0.to_string(),
            expected.1.to_string(),
            expected.2.to_string(),
        );
        assert!(entries.contains(&expected), "{expected:?} in {entries:?}");
    }
    let out = cp.cli(&["audit", "--verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A changed entry breaks the chain, and verify says where.
    let mut cp = cp;
    cp.stop();
    let segment = tmp.path().join("audit/000001.jsonl");
    let text = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, text.replacen("\"denied\"", "\"ok\"", 1)).unwrap();
    let cp = ControlPlane::up(tmp.path(), &[]);
    let out = cp.cli(&["audit", "--verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BROKEN"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_limit_is_told_to_wait_and_the_admin_is_exempt() {
    let tmp = TempRoot::new();
    // 0.001 requests a second, a burst of 1: the second request must wait ~17 minutes.
    let cp = ControlPlane::up_with(tmp.path(), &[], &[("CODITECT_RATE_LIMIT", "0.001")], None);
    let token = token_for(&cp, "bob").await;
    let bob = cp.gateway_as(&token);
    assert_eq!(bob.get("/apis/coditect.io/v1/whoami").await.0, 200);
    let resp = bob
        .request(reqwest::Method::GET, "/apis/coditect.io/v1/whoami")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 60, "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    let admin = cp.gateway_as(&cp.admin_token());
    for _ in 0..20 {
        assert_eq!(admin.get("/apis/coditect.io/v1/whoami").await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_speaks_tls_and_refuses_plain_http_on_that_port() {
    let tmp = TempRoot::new();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (tmp.path().join("tls.crt"), tmp.path().join("tls.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let data = tmp.path().join("data");
    let cp = ControlPlane::up_with(
        &data,
        &[],
        &[
            ("CODITECT_TLS_CERT", cert_path.to_str().unwrap()),
            ("CODITECT_TLS_KEY", key_path.to_str().unwrap()),
        ],
        None,
    );
    assert!(cp.server.starts_with("https://"), "{}", cp.server);
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let resp = trusting
        .get(format!("{}/apis/coditect.io/v1/whoami", cp.server))
        .bearer_auth(cp.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A client that does not trust the certificate fails the handshake.
    let err = reqwest::get(format!("{}/healthz", cp.server))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // Plain HTTP to the TLS port gets no answer.
    let plain = cp.server.replacen("https://", "http://", 1);
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
    // The CLI finds the server, the token and the certificate in admin.yaml.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coditect"))
        .env("CODITECT_CONFIG", data.join("admin.yaml"))
        .env_remove("CODITECT_SERVER")
        .args(["auth", "whoami"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "admin (cluster admin)"
    );
}

#[test]
fn up_refuses_to_listen_off_loopback_in_the_clear() {
    let tmp = TempRoot::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coditect"))
        .args(["up", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without TLS") && err.contains("--insecure"),
        "{err}"
    );
}
