//! Property tests over the control plane's API inputs: tokens, paths, query strings and
//! bodies as a hostile or careless client sends them. A token that is not a live one opens
//! nothing; any path or query is answered in the JSON error shape, never with a server
//! error; any body a member sends is refused or carried out within their rights, and
//! changes nothing they may not change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::OnceLock;

use coditect_control_plane::up::{ControlPlane, UpOptions, start};
use coditect_runtime::testkit::{assert_answered, json_bodies};
use proptest::prelude::*;
use serde_json::{Value, json};

struct World {
    rt: tokio::runtime::Runtime,
    cp: ControlPlane,
    http: reqwest::Client,
    bob: String,
    bob_id: String,
    _dir: tempfile::TempDir,
}

const SETUP: &str = r#"{"objects": [
  {"apiVersion": "coditect.io/v1", "kind": "Organization", "metadata": {"name": "acme"}, "spec": {"admins": ["dana"]}},
  {"apiVersion": "coditect.io/v1", "kind": "Team", "metadata": {"name": "platform", "organization": "acme"},
   "spec": {"members": [{"user": "bob"}]}}
]}"#;

/// One control plane for every case (no instances: no workspace is declared), with acme,
/// its team, and a token for bob, a member.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = UpOptions::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_path_buf(),
            "/nonexistent/coditect".into(),
        );
        opts.rate_limit.per_second = 1e9;
        opts.rate_limit.burst = u32::MAX;
        let http = reqwest::Client::new();
        let (cp, bob, bob_id) = rt.block_on(async {
            let cp = start(opts).await.unwrap();
            let admin = |req: reqwest::RequestBuilder| req.bearer_auth(&cp.admin_token);
            let setup: Value = serde_json::from_str(SETUP).unwrap();
            let resp = admin(http.post(format!("{}/apis/coditect.io/v1/apply", cp.server)))
                .json(&setup)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
            let v: Value = admin(http.post(format!("{}/apis/coditect.io/v1/tokens", cp.server)))
                .json(&json!({"user": "bob"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let bob = v["token"].as_str().unwrap().to_string();
            let id = v["record"]["id"].as_str().unwrap().to_string();
            (cp, bob, id)
        });
        World {
            rt,
            cp,
            http,
            bob,
            bob_id,
            _dir: dir,
        }
    })
}

/// Sends a request; status and JSON body (`Null` when not JSON).
fn send(
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let w = world();
    w.rt.block_on(async {
        let mut req = w.http.request(method, format!("{}{path}", w.cp.server));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("apis".to_string()),
        Just("coditect.io".to_string()),
        Just("v1".to_string()),
        Just("organizations".to_string()),
        Just("acme".to_string()),
        Just("teams".to_string()),
        Just("workspaces".to_string()),
        Just("tokens".to_string()),
        Just("audit".to_string()),
        Just("verify".to_string()),
        Just("w".to_string()),
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just("%00".to_string()),
        Just("".to_string()),
        "[a-zA-Z0-9._~%-]{1,10}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(segment(), 1..8),
        "[a-zA-Z0-9=&%._-]{0,24}",
    )
        .prop_map(|(segs, query)| format!("/{}?{query}", segs.join("/")))
}

fn method() -> impl Strategy<Value = reqwest::Method> {
    prop_oneof![
        Just(reqwest::Method::GET),
        Just(reqwest::Method::POST),
        Just(reqwest::Method::DELETE),
        Just(reqwest::Method::PUT),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_bodies(
        &[
            "objects",
            "apiVersion",
            "kind",
            "metadata",
            "name",
            "organization",
            "spec",
            "owner",
            "user",
            "clusterAdmin",
            "ttl",
            "verb",
            "as",
            "prune",
            "dryRun",
        ],
        &[
            "coditect.io/v1",
            "Workspace",
            "Organization",
            "Team",
            "acme",
            "platform",
            "bob",
            "admin",
            "30d",
            "delete",
            "workspaces",
            "-1s",
            "9999999999d",
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_token_that_is_not_live_opens_nothing(
        token in prop_oneof![
            "[ -~]{0,64}",
            "[0-9a-f]{40}".prop_map(|s| format!("cdt_{}_{s}", world().bob_id)),
            "[0-9a-f]{12}_[0-9a-f]{40}".prop_map(|s| format!("cdt_{s}")),
        ],
        path in path(),
        method in method(),
    ) {
        prop_assume!(token != world().bob && !token.trim().is_empty());
        let (status, body) = send(method.clone(), &path, Some(&token), None);
        // Health checks, unknown routes and malformed URLs aside, nothing answers a wrong
        // token but 401.
        if path.starts_with("/apis/") || path.starts_with("/w/") {
            prop_assert!(matches!(status, 400 | 401 | 404 | 405), "{method} {path} with {token:?}: {status} {body}");
        }
        prop_assert!(status != 200 || path.starts_with("/healthz") || path.starts_with("/readyz"), "{method} {path}: 200 {body}");
    }

    #[test]
    fn any_path_and_query_is_assert_answered(path in path(), method in method()) {
        for token in [world().cp.admin_token.as_str(), world().bob.as_str()] {
            let body = json!({});
            let (status, answer) = send(method.clone(), &path, Some(token), Some(&body));
            assert_answered(status, &answer, &format!("{method} {path}"));
        }
    }

    #[test]
    fn any_body_from_a_member_changes_only_what_is_theirs(
        route in prop_oneof![
            Just("/apis/coditect.io/v1/apply"),
            Just("/apis/coditect.io/v1/tokens"),
            Just("/apis/coditect.io/v1/access-reviews"),
        ],
        body in json_value(),
    ) {
        let w = world();
        let rv_before = w.cp.store.resource_version();
        let (status, answer) = send(reqwest::Method::POST, route, Some(&w.bob), Some(&body));
        assert_answered(status, &answer, &format!("POST {route} {body}"));
        if route.ends_with("/apply") {
            prop_assert_eq!(w.cp.store.resource_version(), rv_before, "bob changed the store: {} {}", status, answer);
        }
        if route.ends_with("/tokens") && status == 200 {
            prop_assert_eq!(&answer["record"]["user"], "bob", "bob made a token for someone else");
            prop_assert_eq!(&answer["record"]["clusterAdmin"], false);
        }
        let (status, answer) = send(reqwest::Method::POST, route, Some(&w.cp.admin_token), Some(&body));
        assert_answered(status, &answer, &format!("admin POST {route} {body}"));
    }
}
