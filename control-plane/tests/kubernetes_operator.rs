//! The operator's reconciles against kube's `tower-test` mock: every request it sends
//! (verb, path, field manager, force, content type, body) for a create, a spec change,
//! sleep, wake, delete with its finalizer, and an API error going to the error policy.
//! The mock answers as the API server does (server-side apply, the status subresource,
//! merge patches with resourceVersion preconditions, 404 and 409 Status bodies); a
//! StatefulSet's pod is "ready" when the test says so, as a kubelet would report it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coditect_control_plane::error::{DriverError, ReconcileError};
use coditect_control_plane::kubernetes::driver::KubeDriver;
use coditect_control_plane::kubernetes::mapping;
use coditect_control_plane::kubernetes::mock::{self, Sent, status};
use coditect_control_plane::kubernetes::store::KubeStore;
use coditect_control_plane::kubernetes::workload::WorkloadOptions;
use coditect_control_plane::reconcile::{Action, Context, reconcile};
use coditect_control_plane::resource_store::ResourceStore;
use coditect_specs::{Kind, ObjectKey, Resource};
use serde_json::{Value, json};

#[derive(Default)]
struct World {
    objects: BTreeMap<String, Value>,
    sent: Vec<Sent>,
    /// Pods the kubelet reports ready.
    pods_ready: bool,
    /// Paths (and verbs) answered with a 500 once.
    fail_once: Vec<(String, String)>,
    version: u64,
}

impl World {
    fn bump(&mut self, o: &mut Value) {
        self.version += 1;
        o["metadata"]["resourceVersion"] = json!(self.version.to_string());
    }

    /// What the StatefulSet controller and kubelet report for a set.
    fn sts_status(&self, sts: &mut Value) {
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        let generation = sts["metadata"]["generation"].clone();
        let revision = format!(
            "r-{}",
            sts["spec"]["template"]["metadata"]["annotations"]["coditect.io/spec-hash"]
                .as_str()
                .unwrap_or("")
                .chars()
                .skip(7)
                .take(8)
                .collect::<String>()
        );
        let ready = i64::from(self.pods_ready && replicas > 0);
        sts["status"] = json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": ready,
            "currentRevision": if ready == 1 { revision.clone() } else { "r-old".into() },
            "updateRevision": revision,
        });
    }

    fn answer(&mut self, sent: &Sent) -> (u16, Value) {
        if let Some(i) = self
            .fail_once
            .iter()
            .position(|(m, p)| *m == sent.method && *p == sent.path)
        {
            self.fail_once.remove(i);
            return status(500, "InternalError", "etcdserver: request timed out");
        }
        let (path, sub) = match sent.path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (sent.path.clone(), false),
        };
        match sent.method.as_str() {
            "GET" => match self.objects.get(&path) {
                Some(o) => (200, o.clone()),
                None => status(404, "NotFound", &format!("{path} not found")),
            },
            "POST" => {
                let name = sent.body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("event")
                    .to_string();
                let at = format!("{path}/{name}");
                if self.objects.contains_key(&at) {
                    return status(409, "AlreadyExists", &format!("{name} already exists"));
                }
                let mut o = sent.body.clone();
                o["metadata"]["uid"] = json!(format!("uid-{name}"));
                self.bump(&mut o);
                self.objects.insert(at, o.clone());
                (201, o)
            }
            "PATCH" if sent.content_type == "application/apply-patch+yaml" => {
                // A resourceVersion in an applied object is a precondition.
                let expected = &sent.body["metadata"]["resourceVersion"];
                if !expected.is_null()
                    && self
                        .objects
                        .get(&path)
                        .is_some_and(|o| *expected != o["metadata"]["resourceVersion"])
                {
                    return status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                let mut o = if sub {
                    let Some(mut o) = self.objects.get(&path).cloned() else {
                        return status(404, "NotFound", &path);
                    };
                    o["status"] = sent.body["status"].clone();
                    o
                } else {
                    let old = self.objects.get(&path).cloned();
                    let mut o = sent.body.clone();
                    let spec_changed = old.as_ref().is_none_or(|old| old["spec"] != o["spec"]);
                    let generation = old
                        .as_ref()
                        .and_then(|old| old["metadata"]["generation"].as_i64())
                        .unwrap_or(0)
                        + i64::from(spec_changed);
                    o["metadata"]["generation"] = json!(generation.max(1));
                    o["metadata"]["uid"] = json!(format!(
                        "uid-{}",
                        sent.body["metadata"]["name"].as_str().unwrap_or("")
                    ));
                    o
                };
                if sent.body["kind"] == "StatefulSet" {
                    self.sts_status(&mut o);
                }
                self.bump(&mut o);
                self.objects.insert(path, o.clone());
                (200, o)
            }
            "PATCH" => {
                let Some(mut o) = self.objects.get(&path).cloned() else {
                    return status(404, "NotFound", &path);
                };
                let expected = &sent.body["metadata"]["resourceVersion"];
                if !expected.is_null() && *expected != o["metadata"]["resourceVersion"] {
                    return status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                if let Some(f) = sent.body["metadata"].get("finalizers") {
                    o["metadata"]["finalizers"] = f.clone();
                }
                self.bump(&mut o);
                let gone = o["metadata"]["deletionTimestamp"].is_string()
                    && o["metadata"]["finalizers"]
                        .as_array()
                        .is_none_or(Vec::is_empty);
                if gone {
                    self.objects.remove(&path);
                } else {
                    self.objects.insert(path, o.clone());
                }
                (200, o)
            }
            other => status(405, "MethodNotAllowed", other),
        }
    }
}

/// The mock API server: answers every request from `world`, recording it.
fn api_server(world: Arc<Mutex<World>>) -> kube::Client {
    mock::api_server(move |sent| {
        let mut w = world.lock().unwrap();
        let answer = w.answer(sent);
        w.sent.push(sent.clone());
        answer
    })
}

const WS: &str = "/apis/coditect.io/v1/namespaces/acme/workspaces/alice-main";
const STS: &str = "/apis/apps/v1/namespaces/acme/statefulsets/alice-main";

fn examples() -> Vec<Resource> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/examples");
    coditect_specs::load_effective(&dir, false, &coditect_specs::Catalog::default())
        .unwrap()
        .into_iter()
        .map(|d| d.resource)
        .collect()
}

struct Operator {
    world: Arc<Mutex<World>>,
    store: Arc<KubeStore>,
    ctx: Context<KubeDriver, KubeStore>,
    key: ObjectKey,
}

impl Operator {
    /// The examples' objects as `kubectl apply` left them (Alice's workspace carrying the
    /// runtime finalizer the operator adds when it first sees it), in the API server and
    /// in the operator's cache.
    fn new() -> Self {
        let world = Arc::new(Mutex::new(World::default()));
        let client = api_server(world.clone());
        let store = Arc::new(KubeStore::new(client.clone(), Some("operator-0".into())));
        for r in examples() {
            let mut o = mapping::to_kubernetes(&r);
            let plural = r.kind().plural();
            let path = match &r.metadata().organization {
                Some(org) if r.kind() != Kind::Organization => {
                    format!(
                        "/apis/coditect.io/v1/namespaces/{org}/{plural}/{}",
                        r.metadata().name
                    )
                }
                _ => format!("/apis/coditect.io/v1/{plural}/{}", r.metadata().name),
            };
            o["metadata"]["uid"] = json!(format!("uid-{}", r.metadata().name));
            o["metadata"]["generation"] = json!(1);
            o["metadata"]["creationTimestamp"] = json!("2026-12-06T09:00:00Z");
            if r.kind() == Kind::Workspace {
                o["metadata"]["finalizers"] = json!(["coditect.io/runtime"]);
            }
            let mut w = world.lock().unwrap();
            w.bump(&mut o);
            w.objects.insert(path, o.clone());
            drop(w);
            store.observed(o, false);
        }
        let driver = Arc::new(KubeDriver::new(client, WorkloadOptions::default(), false));
        let ctx = Context {
            store: store.clone(),
            driver,
            resync: Duration::from_secs(300),
            admission: tokio::sync::Mutex::new(()),
            audit: None,
            delegated: Vec::new(),
        };
        let key = ObjectKey {
            kind: Kind::Workspace,
            organization: Some("acme".into()),
            name: "alice-main".into(),
        };
        Operator {
            world,
            store,
            ctx,
            key,
        }
    }

    /// Requests sent from now on.
    fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut self.world.lock().unwrap().sent)
    }

    fn object(&self, path: &str) -> Value {
        self.world
            .lock()
            .unwrap()
            .objects
            .get(path)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// What a watch would deliver after someone changed the object in the API server.
    fn change(&self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut w = self.world.lock().unwrap();
        let mut o = w.objects.get(path).cloned().unwrap();
        f(&mut o);
        w.bump(&mut o);
        w.objects.insert(path.into(), o.clone());
        drop(w);
        self.store.observed(o, false);
    }

    fn condition(&self, kind: &str) -> Value {
        self.object(WS)["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

fn applies<'a>(sent: &'a [Sent], path: &str) -> Vec<&'a Sent> {
    sent.iter()
        .filter(|s| s.path == path && s.is_apply())
        .collect()
}

#[tokio::test]
async fn a_new_workspace_becomes_a_statefulset_by_server_side_apply_and_ready_when_its_pod_is() {
    let op = Operator::new();
    // The pod is not ready yet: the workspace is Starting, and looked at again soon.
    let action = reconcile(&op.key, &op.ctx).await.unwrap();
    assert_eq!(action, Action::Requeue(Duration::from_secs(2)));
    let sent = op.take_sent();
    for (path, kind) in [
        (
            "/api/v1/namespaces/acme/serviceaccounts/coditect-workspace",
            "ServiceAccount",
        ),
        (
            "/api/v1/namespaces/acme/configmaps/alice-main-spec",
            "ConfigMap",
        ),
        ("/api/v1/namespaces/acme/services/alice-main", "Service"),
        (STS, "StatefulSet"),
    ] {
        let a = applies(&sent, path);
        assert_eq!(a.len(), 1, "one server-side apply of the {kind}: {sent:#?}");
        assert_eq!(a[0].body["kind"], kind);
    }
    let sts = &applies(&sent, STS)[0].body;
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(
        sts["metadata"]["ownerReferences"][0],
        json!({"apiVersion": "coditect.io/v1", "kind": "Workspace", "name": "alice-main", "uid": "uid-alice-main", "controller": true, "blockOwnerDeletion": true})
    );
    let hash = coditect_specs::spec_hash(&op.store.get(&op.key).await.unwrap().unwrap());
    assert_eq!(
        sts["spec"]["template"]["metadata"]["annotations"]["coditect.io/spec-hash"],
        json!(hash)
    );
    // The token Secret is created (POST), once.
    let secrets: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.method == "POST" && s.path == "/api/v1/namespaces/acme/secrets")
        .collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].body["metadata"]["name"], "alice-main-api-token");
    // Status through the status subresource, by the same field manager.
    let status_writes = applies(&sent, &format!("{WS}/status"));
    assert!(!status_writes.is_empty(), "{sent:#?}");
    assert_eq!(op.object(WS)["status"]["phase"], "Starting");
    assert_eq!(op.condition("Ready")["status"], "False");
    assert_eq!(op.condition("Ready")["reason"], "NotReady");
    // An Event on the object says what happened.
    assert!(
        sent.iter().any(|s| s.method == "POST"
            && s.path == "/apis/events.k8s.io/v1/namespaces/acme/events"
            && s.body["reason"] == "Starting"
            && s.body["regarding"]["name"] == "alice-main"),
        "{sent:#?}"
    );

    // The kubelet reports the pod ready: Running and Ready, with the in-cluster endpoint.
    op.world.lock().unwrap().pods_ready = true;
    let action = reconcile(&op.key, &op.ctx).await.unwrap();
    assert_eq!(action, Action::Requeue(Duration::from_secs(300)));
    let status = &op.object(WS)["status"];
    assert_eq!(status["phase"], "Running", "{status:#}");
    assert_eq!(
        status["endpoint"],
        "http://alice-main-0.alice-main.acme.svc:8080"
    );
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(op.condition("Ready")["status"], "True");
    let sent = op.take_sent();
    assert_eq!(
        sent.iter()
            .filter(|s| s.method == "POST" && s.path.ends_with("/secrets"))
            .count(),
        1,
        "the token is created once; the second try is told it exists (409) and keeps it"
    );
}

#[tokio::test]
async fn a_spec_change_rolls_the_pod_template_and_the_status_follows_the_generation() {
    let op = Operator::new();
    op.world.lock().unwrap().pods_ready = true;
    reconcile(&op.key, &op.ctx).await.unwrap();
    assert_eq!(op.object(WS)["status"]["phase"], "Running");
    let before =
        op.object(STS)["spec"]["template"]["metadata"]["annotations"]["coditect.io/spec-hash"]
            .clone();
    op.take_sent();
    op.change(WS, |o| {
        o["spec"]["resources"]["memory"] = json!("8Gi");
        o["metadata"]["generation"] = json!(2);
    });
    reconcile(&op.key, &op.ctx).await.unwrap();
    let sent = op.take_sent();
    let sts = &applies(&sent, STS)[0].body;
    assert_ne!(
        sts["spec"]["template"]["metadata"]["annotations"]["coditect.io/spec-hash"],
        before
    );
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"],
        "8Gi"
    );
    assert!(
        sent.iter()
            .any(|s| s.path.ends_with("/events") && s.body["reason"] == "Rolling"),
        "{sent:#?}"
    );
    assert_eq!(op.object(WS)["status"]["observedGeneration"], 2);
    assert_eq!(op.object(WS)["status"]["phase"], "Running");
}

#[tokio::test]
async fn sleep_is_zero_replicas_with_the_claim_kept_and_wake_is_one_again() {
    let op = Operator::new();
    op.world.lock().unwrap().pods_ready = true;
    reconcile(&op.key, &op.ctx).await.unwrap();
    op.take_sent();
    // Sleep, as `coditect sleep` or auto-sleep asks for it: the wish is in the status.
    coditect_control_plane::sleep::request_sleep(&*op.store, &op.key, "alice", "by hand")
        .await
        .unwrap();
    assert_eq!(op.object(WS)["status"]["sleep"]["reason"], "by hand");
    reconcile(&op.key, &op.ctx).await.unwrap();
    let sent = op.take_sent();
    let a = applies(&sent, STS);
    assert_eq!(a.len(), 1, "{sent:#?}");
    let sts = &a[0].body;
    assert_eq!(sts["spec"]["replicas"], 0);
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"].is_string(),
        "the whole object, not just replicas"
    );
    assert_eq!(op.object(WS)["status"]["phase"], "Asleep");
    assert!(op.object(WS)["status"]["endpoint"].is_null());
    assert!(
        !sent.iter().any(|s| s.method == "DELETE"),
        "nothing is deleted"
    );

    // Wake: one replica again, same claim.
    assert!(
        coditect_control_plane::sleep::request_wake(&*op.store, &op.key)
            .await
            .unwrap()
    );
    reconcile(&op.key, &op.ctx).await.unwrap();
    let sent = op.take_sent();
    assert_eq!(applies(&sent, STS)[0].body["spec"]["replicas"], 1);
    assert_eq!(op.object(WS)["status"]["phase"], "Running");
    assert!(
        op.object(WS)["status"]
            .get("sleep")
            .is_none_or(Value::is_null),
        "the wish is gone from the status"
    );
}

#[tokio::test]
async fn delete_stops_then_drops_the_finalizer_and_purge_lets_the_claim_go_with_the_set() {
    let op = Operator::new();
    op.world.lock().unwrap().pods_ready = true;
    reconcile(&op.key, &op.ctx).await.unwrap();
    op.take_sent();
    op.change(WS, |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-12-06T10:00:00Z");
        o["metadata"]["annotations"]["coditect.io/purge"] = json!("true");
    });
    let rv = op.object(WS)["metadata"]["resourceVersion"].clone();
    reconcile(&op.key, &op.ctx).await.unwrap();
    let sent = op.take_sent();
    let sts = &applies(&sent, STS)[0].body;
    assert_eq!(sts["spec"]["replicas"], 0);
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
        "Delete"
    );
    let finalizer = sent
        .iter()
        .find(|s| {
            s.method == "PATCH" && s.path == WS && s.content_type == "application/merge-patch+json"
        })
        .expect("a merge patch of the finalizers");
    assert_eq!(finalizer.body["metadata"]["finalizers"], json!([]));
    assert_ne!(
        finalizer.body["metadata"]["resourceVersion"], rv,
        "the version the status write returned"
    );
    let order: Vec<usize> = [
        sent.iter().position(|s| s.path == STS && s.is_apply()),
        sent.iter()
            .position(|s| s.path == WS && s.content_type == "application/merge-patch+json"),
    ]
    .into_iter()
    .map(Option::unwrap)
    .collect();
    assert!(order[0] < order[1], "stopped before the finalizer goes");
    assert!(
        op.object(WS).is_null(),
        "the object is gone with its last finalizer"
    );
    assert!(op.store.get(&op.key).await.unwrap().is_none());
}

#[tokio::test]
async fn an_api_error_fails_the_reconcile_with_the_servers_words_and_the_retry_converges() {
    let op = Operator::new();
    op.world.lock().unwrap().pods_ready = true;
    op.world
        .lock()
        .unwrap()
        .fail_once
        .push(("PATCH".into(), STS.into()));
    let err = reconcile(&op.key, &op.ctx).await.unwrap_err();
    match &err {
        ReconcileError::Driver(DriverError::Api { reason, .. }) => {
            assert!(reason.contains("apply StatefulSet alice-main"), "{reason}");
            assert!(reason.contains("etcdserver: request timed out"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(op.object(WS)["status"]["phase"], "Failed");
    assert_eq!(op.condition("Degraded")["status"], "True");
    // The error policy backs off (250 ms, doubling) and tries again: it converges.
    assert_eq!(
        coditect_control_plane::reconcile::backoff(1),
        Duration::from_millis(250)
    );
    reconcile(&op.key, &op.ctx).await.unwrap();
    assert_eq!(op.object(WS)["status"]["phase"], "Running");
    assert_eq!(op.condition("Degraded")["status"], "False");
}
