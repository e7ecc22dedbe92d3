//! The gateway in the cluster, against kube's `tower-test` mock answering as the API
//! server does (TokenReview, SubjectAccessReview, the token Secret, status writes with
//! their resourceVersion precondition, Events) and a real workspace instance on loopback
//! standing in for the pod: who gets through with which RBAC verb, what the refusals
//! say, that the instance sees its own token and never the caller's, and wake on connect
//! (including a wake written from a cache one step behind the API server).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use coditect_control_plane::kubernetes::gateway::{ClusterGateway, router};
use coditect_control_plane::kubernetes::mock::{self, Sent, status};
use coditect_control_plane::kubernetes::store::KubeStore;
use serde_json::{Value, json};
use tokio::sync::Notify;

const WS: &str = "/apis/coditect.io/v1/namespaces/acme/workspaces/alice-main";
const SECRET: &str = "/api/v1/namespaces/acme/secrets/alice-main-api-token";

#[derive(Default)]
struct World {
    objects: BTreeMap<String, Value>,
    sent: Vec<Sent>,
    version: u64,
    /// (user, verb) pairs RBAC allows on acme/alice-main.
    allowed: Vec<(&'static str, &'static str)>,
}

impl World {
    fn answer(&mut self, sent: &Sent) -> (u16, Value) {
        match (sent.method.as_str(), sent.path.as_str()) {
            ("POST", "/apis/authentication.k8s.io/v1/tokenreviews") => {
                let token = sent.body["spec"]["token"].as_str().unwrap_or("");
                let mut review = sent.body.clone();
                review["status"] = match token.strip_suffix("-token") {
                    Some(user) => {
                        json!({"authenticated": true, "user": {"username": user, "uid": format!("uid-{user}"), "groups": ["system:authenticated"]}})
                    }
                    None => json!({"authenticated": false, "error": "invalid bearer token"}),
                };
                (201, review)
            }
            ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews") => {
                let spec = &sent.body["spec"];
                let attrs = &spec["resourceAttributes"];
                let user = spec["user"].as_str().unwrap_or("");
                let verb = attrs["verb"].as_str().unwrap_or("");
                let allowed = attrs["group"] == "coditect.io"
                    && attrs["resource"] == "workspaces"
                    && attrs["namespace"] == "acme"
                    && attrs["name"] == "alice-main"
                    && self.allowed.iter().any(|(u, v)| *u == user && *v == verb);
                let mut review = sent.body.clone();
                review["status"] = if allowed {
                    json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding"})
                } else {
                    json!({"allowed": false, "reason": ""})
                };
                (201, review)
            }
            ("GET", path) => match self.objects.get(path) {
                Some(o) => (200, o.clone()),
                None => status(404, "NotFound", &format!("{path} not found")),
            },
            ("PATCH", path) if path == format!("{WS}/status") => {
                let mut o = self.objects.get(WS).cloned().unwrap();
                let expected = &sent.body["metadata"]["resourceVersion"];
                if !expected.is_null() && *expected != o["metadata"]["resourceVersion"] {
                    return status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                o["status"] = sent.body["status"].clone();
                self.version += 1;
                o["metadata"]["resourceVersion"] = json!(self.version.to_string());
                self.objects.insert(WS.into(), o.clone());
                (200, o)
            }
            ("POST", path) if path.ends_with("/events") => (201, sent.body.clone()),
            (m, p) => status(405, "MethodNotAllowed", &format!("{m} {p}")),
        }
    }
}

struct Cluster {
    world: Arc<Mutex<World>>,
    /// Told after every request the API server answered.
    answered: Arc<Notify>,
    store: Arc<KubeStore>,
    gateway: String,
    /// What the instance received: (path, authorization header).
    instance_saw: Arc<Mutex<Vec<(String, String)>>>,
    /// The token the instance takes.
    accepts: Arc<Mutex<String>>,
    instance: String,
    http: reqwest::Client,
}

fn api_server(world: Arc<Mutex<World>>, answered: Arc<Notify>) -> kube::Client {
    mock::api_server(move |sent| {
        let answer = {
            let mut w = world.lock().unwrap();
            let answer = w.answer(sent);
            w.sent.push(sent.clone());
            answer
        };
        answered.notify_waiters();
        answer
    })
}

/// A workspace instance: answers every path with what it was sent, when the bearer is
/// its own token (`accepts`).
async fn instance(saw: Arc<Mutex<Vec<(String, String)>>>, accepts: Arc<Mutex<String>>) -> String {
    let app = axum::Router::new().fallback(move |req: Request| {
        let saw = saw.clone();
        let accepts = accepts.clone();
        async move {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let path = req.uri().to_string();
            saw.lock().unwrap().push((path.clone(), auth.clone()));
            if auth != format!("Bearer {}", accepts.lock().unwrap()) {
                return (http::StatusCode::UNAUTHORIZED, "wrong token".to_string());
            }
            (http::StatusCode::OK, json!({"path": path}).to_string())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

impl Cluster {
    /// Alice's workspace in `acme`, running, its token Secret in place; `allowed` is RBAC.
    async fn new(allowed: Vec<(&'static str, &'static str)>) -> Self {
        let instance_saw = Arc::new(Mutex::new(Vec::new()));
        let accepts = Arc::new(Mutex::new("instance-secret".to_string()));
        let instance = instance(instance_saw.clone(), accepts.clone()).await;
        let world = Arc::new(Mutex::new(World {
            allowed,
            ..World::default()
        }));
        let answered = Arc::new(Notify::new());
        let client = api_server(world.clone(), answered.clone());
        let store = Arc::new(KubeStore::for_gateway(
            client.clone(),
            Some("gateway-0".into()),
        ));
        let ws = json!({
            "apiVersion": "coditect.io/v1",
            "kind": "Workspace",
            "metadata": {"name": "alice-main", "namespace": "acme", "uid": "uid-ws", "generation": 1, "resourceVersion": "1", "labels": {"coditect.io/team": "platform"}},
            "spec": {"owner": "alice", "agents": [{"name": "claude", "provider": "anthropic", "model": "claude-sonnet-4-6"}]},
            "status": {"phase": "Running", "endpoint": instance, "observedGeneration": 1},
        });
        {
            let mut w = world.lock().unwrap();
            w.version = 1;
            w.objects.insert(WS.into(), ws.clone());
            w.objects.insert(
                SECRET.into(),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alice-main-api-token", "namespace": "acme"}, "data": {"token": "aW5zdGFuY2Utc2VjcmV0"}}),
            );
        }
        store.observed(ws, false);
        assert!(
            coditect_control_plane::resource_store::ResourceStore::list(
                &*store,
                None,
                None,
                &Default::default()
            )
            .await
            .unwrap()
            .len()
                == 1,
            "the Workspace is ours"
        );
        let (_listed_tx, listed) = tokio::sync::watch::channel(true);
        let pod = instance.clone();
        let gateway = ClusterGateway::new(client, store.clone())
            .with_pod_address(Arc::new(move |_| pod.clone()));
        let app = router(gateway, listed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Cluster {
            world,
            answered,
            store,
            gateway: format!("http://{addr}"),
            instance_saw,
            accepts,
            instance,
            http: reqwest::Client::new(),
        }
    }

    fn sent(&self) -> Vec<Sent> {
        self.world.lock().unwrap().sent.clone()
    }

    fn sent_to(&self, path: &str) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.path == path).collect()
    }

    async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.gateway));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the API server has answered a request for which `done` holds (a
    /// minute at most, so a gateway that never sends it fails the test, not CI).
    async fn until_sent(&self, done: impl Fn(&[Sent]) -> bool) {
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            loop {
                let notified = self.answered.notified();
                if done(&self.sent()) {
                    return;
                }
                notified.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "never sent: {:#?}", self.sent());
    }

    /// What a watch would deliver: the API server's current Workspace, changed by `f`
    /// (the operator writing status).
    fn operator_writes(&self, f: impl FnOnce(&mut Value)) {
        let mut w = self.world.lock().unwrap();
        let mut o = w.objects.get(WS).cloned().unwrap();
        f(&mut o);
        w.version += 1;
        o["metadata"]["resourceVersion"] = json!(w.version.to_string());
        w.objects.insert(WS.into(), o.clone());
        drop(w);
        self.store.observed(o, false);
    }
}

#[tokio::test]
async fn a_caller_the_cluster_vouches_for_reaches_the_pod_with_the_instances_own_token() {
    let c = Cluster::new(vec![("alice", "get"), ("alice", "use")]).await;
    let (code, body) = c
        .get(Some("alice-token"), "/w/acme/alice-main/v1/status?x=1")
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["path"], "/v1/status?x=1");
    // The instance saw its own token, never the caller's.
    let saw = c.instance_saw.lock().unwrap().clone();
    assert_eq!(
        saw,
        vec![("/v1/status?x=1".into(), "Bearer instance-secret".into())]
    );
    // Who: one TokenReview of the caller's token. May they: `get` on the Workspace.
    let reviews = c.sent_to("/apis/authentication.k8s.io/v1/tokenreviews");
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].body["spec"]["token"], "alice-token");
    let sars = c.sent_to("/apis/authorization.k8s.io/v1/subjectaccessreviews");
    assert_eq!(sars.len(), 1, "a read asks for get only");
    let spec = &sars[0].body["spec"];
    assert_eq!(spec["user"], "alice");
    assert_eq!(spec["uid"], "uid-alice");
    assert_eq!(spec["groups"], json!(["system:authenticated"]));
    assert_eq!(
        spec["resourceAttributes"],
        json!({"group": "coditect.io", "resource": "workspaces", "verb": "get", "namespace": "acme", "name": "alice-main"})
    );
    // Where: the token Secret, read once.
    assert_eq!(c.sent_to(SECRET).len(), 1);

    // A second request within the decision's lifetime asks the API server nothing.
    let before = c.sent().len();
    let (code, _) = c
        .get(Some("alice-token"), "/w/acme/alice-main/v1/agents")
        .await;
    assert_eq!(code, 200);
    assert_eq!(c.sent().len(), before, "{:#?}", &c.sent()[before..]);
    assert!(c.instance.starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn a_write_needs_the_use_verb_and_the_refusal_names_it() {
    let c = Cluster::new(vec![("bob", "get")]).await;
    let resp = c
        .http
        .post(format!("{}/w/acme/alice-main/v1/tasks", c.gateway))
        .bearer_auth("bob-token")
        .json(&json!({"title": "not yours"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["permission"], "use workspaces.coditect.io");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "bob may not use workspaces.coditect.io \"alice-main\" in namespace \"acme\""
        ),
        "{reason}"
    );
    assert!(reason.contains("verbs [\"use\"]"), "{reason}");
    let verbs: Vec<Value> = c
        .sent_to("/apis/authorization.k8s.io/v1/subjectaccessreviews")
        .iter()
        .map(|s| s.body["spec"]["resourceAttributes"]["verb"].clone())
        .collect();
    assert_eq!(verbs, vec![json!("get"), json!("use")]);
    assert!(
        c.instance_saw.lock().unwrap().is_empty(),
        "nothing reached the pod"
    );
    // Reading is what bob may do.
    let (code, _) = c
        .get(Some("bob-token"), "/w/acme/alice-main/v1/tasks")
        .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn strangers_are_told_nothing_and_bad_tokens_are_refused() {
    let c = Cluster::new(vec![("alice", "get")]).await;
    // Carol is a user of the cluster, without a role on the workspace: it is not found.
    let (code, body) = c
        .get(Some("carol-token"), "/w/acme/alice-main/v1/status")
        .await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["reason"], "workspace/acme/alice-main not found");
    // A token the API server does not accept, and none at all.
    let resp = c
        .http
        .get(format!("{}/w/acme/alice-main/v1/status", c.gateway))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["reason"],
        "the Kubernetes API does not accept this token: invalid bearer token"
    );
    // Sent again, the forged token is refused the same way without asking the API server.
    let reviews = c
        .sent_to("/apis/authentication.k8s.io/v1/tokenreviews")
        .len();
    let (code, again) = c.get(Some("forged"), "/w/acme/alice-main/v1/status").await;
    assert_eq!(code, 401);
    assert_eq!(again["reason"], body["reason"]);
    assert_eq!(
        c.sent_to("/apis/authentication.k8s.io/v1/tokenreviews")
            .len(),
        reviews,
        "a rejected token is remembered"
    );
    let (code, body) = c.get(None, "/w/acme/alice-main/v1/status").await;
    assert_eq!(code, 401);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("kubectl create token")
    );
    // Refusals are not remembered: carol asked twice is reviewed twice.
    let _ = c
        .get(Some("carol-token"), "/w/acme/alice-main/v1/status")
        .await;
    let carols = c
        .sent_to("/apis/authentication.k8s.io/v1/tokenreviews")
        .iter()
        .filter(|s| s.body["spec"]["token"] == "carol-token")
        .count();
    assert_eq!(carols, 2);
    assert!(c.instance_saw.lock().unwrap().is_empty());
}

/// Puts the workspace to sleep, as the operator records it.
fn asleep(o: &mut Value) {
    o["status"] = json!({
        "phase": "Asleep",
        "observedGeneration": 1,
        "sleep": {"reason": "idle for 30m", "by": "auto-sleep", "requestedAt": "2026-12-06T08:00:00Z", "asleepSince": "2026-12-06T08:00:05Z"},
    });
}

/// The operator has woken it: Running at the pod's address.
fn running(endpoint: String) -> impl FnOnce(&mut Value) {
    move |o: &mut Value| {
        o["status"] = json!({"phase": "Running", "endpoint": endpoint, "observedGeneration": 1});
    }
}

fn status_writes(sent: &[Sent]) -> Vec<Sent> {
    sent.iter()
        .filter(|s| s.method == "PATCH" && s.path == format!("{WS}/status"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_request_for_a_sleeping_workspace_wakes_it_and_is_held_until_it_serves() {
    let c = Arc::new(Cluster::new(vec![("alice", "get"), ("alice", "use")]).await);
    c.operator_writes(asleep);
    let asking = {
        let c = c.clone();
        tokio::spawn(async move {
            c.get(Some("alice-token"), "/w/acme/alice-main/v1/status")
                .await
        })
    };
    // The wake wish: the status without `sleep`, written on the resourceVersion read.
    c.until_sent(|s| !status_writes(s).is_empty()).await;
    let write = &status_writes(&c.sent())[0];
    assert!(write.body["status"]["sleep"].is_null(), "{:#}", write.body);
    assert_eq!(write.body["metadata"]["resourceVersion"], "2");
    assert!(!asking.is_finished(), "held while the pod starts");
    // The operator brings the pod up and records it Running: the held request goes.
    c.operator_writes(running(c.instance.clone()));
    let (code, body) = asking.await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["path"], "/v1/status");
    // An Event on the Workspace says who woke it.
    let events: Vec<Sent> = c
        .sent()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path.ends_with("/events"))
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].body["reason"], "WokenOnConnect");
    assert_eq!(
        events[0].body["note"],
        "a request through the gateway by alice"
    );
    assert_eq!(events[0].body["regarding"]["name"], "alice-main");
}

#[tokio::test]
async fn a_wake_written_from_a_stale_cache_is_refused_and_written_again_on_the_new_version() {
    let c = Arc::new(Cluster::new(vec![("alice", "get"), ("alice", "use")]).await);
    c.operator_writes(asleep);
    // The operator writes again (a condition), and the gateway's watch has not seen it.
    {
        let mut w = c.world.lock().unwrap();
        let o = w.objects.get_mut(WS).unwrap();
        o["status"]["conditions"] =
            json!([{"type": "Ready", "status": "False", "reason": "Asleep"}]);
        o["metadata"]["resourceVersion"] = json!("3");
        w.version = 3;
    }
    let asking = {
        let c = c.clone();
        tokio::spawn(async move {
            c.get(Some("alice-token"), "/w/acme/alice-main/v1/status")
                .await
        })
    };
    // Refused (it named version 2), the workspace read again, the wish written on 3.
    c.until_sent(|s| {
        status_writes(s)
            .iter()
            .any(|w| w.body["metadata"]["resourceVersion"] == "3")
    })
    .await;
    let writes = status_writes(&c.sent());
    assert_eq!(writes[0].body["metadata"]["resourceVersion"], "2");
    assert_eq!(writes.len(), 2, "{writes:#?}");
    let reads: Vec<Sent> = c
        .sent()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path == WS)
        .collect();
    assert_eq!(reads.len(), 1, "read once, after the 409");
    // Nothing was lost: the operator's condition is carried over, the sleep wish is gone.
    let second = &writes[1];
    assert_eq!(second.body["status"]["conditions"][0]["type"], "Ready");
    assert!(second.body["status"]["sleep"].is_null());
    c.operator_writes(running(c.instance.clone()));
    let (code, _) = asking.await.unwrap();
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_status_naming_another_address_is_not_followed() {
    let c = Cluster::new(vec![("alice", "get"), ("alice", "use")]).await;
    // Someone who may write the status points it at their own server.
    let elsewhere_saw = Arc::new(Mutex::new(Vec::new()));
    let elsewhere = instance(
        elsewhere_saw.clone(),
        Arc::new(Mutex::new("instance-secret".into())),
    )
    .await;
    c.operator_writes(running(elsewhere.clone()));
    let (code, body) = c
        .get(Some("alice-token"), "/w/acme/alice-main/v1/status")
        .await;
    assert_eq!(code, 502, "{body}");
    assert_eq!(body["error"], "untrusted_endpoint");
    assert!(
        body["reason"].as_str().unwrap().contains(&elsewhere),
        "{body}"
    );
    assert!(
        elsewhere_saw.lock().unwrap().is_empty(),
        "no request, no token went there"
    );
    assert!(c.instance_saw.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_token_the_instance_refuses_is_read_again_once() {
    let c = Cluster::new(vec![("alice", "get"), ("alice", "use")]).await;
    let (code, _) = c
        .get(Some("alice-token"), "/w/acme/alice-main/v1/status")
        .await;
    assert_eq!(code, 200);
    // The workspace is made again under the same name: a new Secret, a new token.
    *c.accepts.lock().unwrap() = "made-again".into();
    c.world.lock().unwrap().objects.get_mut(SECRET).unwrap()["data"]["token"] =
        json!("bWFkZS1hZ2Fpbg==");
    let (code, body) = c
        .get(Some("alice-token"), "/w/acme/alice-main/v1/status")
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.sent_to(SECRET).len(), 2, "read again after the refusal");
    let auths: Vec<String> = c
        .instance_saw
        .lock()
        .unwrap()
        .iter()
        .map(|(_, a)| a.clone())
        .collect();
    assert_eq!(
        auths,
        vec![
            "Bearer instance-secret".to_string(),
            "Bearer instance-secret".to_string(),
            "Bearer made-again".to_string()
        ]
    );
}
