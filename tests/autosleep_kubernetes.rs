//! The auto-sleeper beside the Kubernetes operator: the same rule as on the embedded
//! control plane, over the Kubernetes API (kube's `tower-test` mock answering as the API
//! server does) and a real instance endpoint on loopback answering `/v1/status` as a
//! workspace pod would. An idle workspace's sleep wish is written to its status on the
//! resourceVersion read, the reconciler is nudged, and an Event says why; a busy one is
//! kept, and its status says what keeps it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use coditect_control_plane::kubernetes::mock::{self, status};
use coditect_control_plane::kubernetes::store::KubeStore;
use coditect_control_plane::kubernetes::tokens::SecretTokens;
use coditect_ops::autosleep::{AUTO_SLEEP, AutoSleeper, Step};
use coditect_specs::{Kind, ObjectKey, Workspace};
use serde_json::{Value, json};

const WS: &str = "/apis/coditect.io/v1/namespaces/acme/workspaces/alice-main";

#[derive(Default)]
struct World {
    objects: BTreeMap<String, Value>,
    /// (method, path, body) of every request.
    sent: Vec<(String, String, Value)>,
    version: u64,
}

impl World {
    fn answer(&mut self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        match method {
            "GET" => match self.objects.get(path) {
                Some(o) => (200, o.clone()),
                None => status(404, "NotFound", path),
            },
            "PATCH" if path == format!("{WS}/status") => {
                let mut o = self.objects[WS].clone();
                if body["metadata"]["resourceVersion"] != o["metadata"]["resourceVersion"] {
                    return status(409, "Conflict", "the object has been modified");
                }
                o["status"] = body["status"].clone();
                self.version += 1;
                o["metadata"]["resourceVersion"] = json!(self.version.to_string());
                self.objects.insert(WS.into(), o.clone());
                (200, o)
            }
            "POST" if path.ends_with("/events") => (201, body.clone()),
            _ => status(405, "MethodNotAllowed", method),
        }
    }
}

fn api_server(world: Arc<Mutex<World>>) -> kube::Client {
    mock::api_server(move |sent| {
        let mut w = world.lock().unwrap();
        let answer = w.answer(&sent.method, &sent.path, &sent.body);
        w.sent
            .push((sent.method.clone(), sent.path.clone(), sent.body.clone()));
        answer
    })
}

/// A workspace pod's `/v1/status`, with the activity facts `facts` holds; it insists on
/// the instance's token and on being asked as a probe (which is not activity).
async fn pod(facts: Arc<Mutex<Value>>) -> String {
    let app = axum::Router::new().route(
        "/v1/status",
        axum::routing::get(move |headers: http::HeaderMap| {
            let facts = facts.clone();
            async move {
                assert_eq!(headers["authorization"], "Bearer instance-secret");
                assert!(headers.contains_key(coditect_runtime::activity::PROBE_HEADER));
                axum::Json(json!({"activity": *facts.lock().unwrap()}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn idle_since(ms: u64) -> Value {
    json!({"lastActivityAt": "2026-12-06T08:00:00Z", "lastActivityMs": ms, "connections": 0, "tasksOpen": 0, "modelCallsInFlight": 0, "locksHeld": 0, "busy": []})
}

#[tokio::test]
async fn on_kubernetes_an_idle_workspace_is_asked_to_sleep_and_a_busy_one_is_kept() {
    let facts = Arc::new(Mutex::new(Value::Null));
    let endpoint = pod(facts.clone()).await;
    let world = Arc::new(Mutex::new(World::default()));
    let client = api_server(world.clone());
    let ws = json!({
        "apiVersion": "coditect.io/v1",
        "kind": "Workspace",
        "metadata": {"name": "alice-main", "namespace": "acme", "uid": "uid-ws", "generation": 1, "resourceVersion": "1"},
        "spec": {"owner": "alice", "agents": [{"name": "claude", "provider": "offline"}], "autoSleep": {"idleAfter": "30m"}},
        "status": {"phase": "Running", "endpoint": endpoint, "observedGeneration": 1},
    });
    {
        let mut w = world.lock().unwrap();
        w.version = 1;
        w.objects.insert(WS.into(), ws.clone());
        w.objects.insert(
            "/api/v1/namespaces/acme/secrets/alice-main-api-token".into(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alice-main-api-token", "namespace": "acme"}, "data": {"token": "aW5zdGFuY2Utc2VjcmV0"}}),
        );
    }
    let store = Arc::new(KubeStore::new(client.clone(), Some("operator-0".into())));
    store.observed(ws.clone(), false);
    // The driver reads the token when it finds the pod ready; here, the same call.
    let tokens = Arc::new(SecretTokens::new(client));
    let parsed: Workspace = serde_json::from_value(json!({
        "apiVersion": "coditect.io/v1", "kind": "Workspace",
        "metadata": {"name": "alice-main", "organization": "acme"},
        "spec": {"owner": "alice"},
    }))
    .unwrap();
    assert_eq!(
        tokens.load(&parsed).await.as_deref(),
        Some("instance-secret")
    );
    let (nudge, mut nudged) = tokio::sync::mpsc::unbounded_channel();
    let sleeper = AutoSleeper::over(store.clone(), tokens, nudge);
    let key = ObjectKey {
        kind: Kind::Workspace,
        organization: Some("acme".into()),
        name: "alice-main".into(),
    };
    let last = jiff::Timestamp::from_second(1_765_000_000).unwrap();
    let ms = u64::try_from(last.as_millisecond()).unwrap();

    // Busy: a task is open. Kept, and the status says why.
    *facts.lock().unwrap() = {
        let mut f = idle_since(ms);
        f["tasksOpen"] = json!(1);
        f["busy"] = json!(["1 task(s) queued or running"]);
        f
    };
    let later = last + jiff::SignedDuration::from_mins(45);
    let steps = sleeper.pass(later).await;
    assert_eq!(
        steps,
        vec![(
            key.clone(),
            Step::Kept("1 task(s) queued or running".into())
        )]
    );
    assert_eq!(
        world.lock().unwrap().objects[WS]["status"]["awakeBecause"],
        "1 task(s) queued or running"
    );
    assert!(nudged.try_recv().is_err(), "nothing to carry out");

    // Idle for 45 minutes, past its 30: the sleep wish, on the version read.
    *facts.lock().unwrap() = idle_since(ms);
    let steps = sleeper.pass(later).await;
    let [(k, Step::Slept(reason))] = steps.as_slice() else {
        panic!("{steps:?}");
    };
    assert_eq!(*k, key);
    let sent = world.lock().unwrap().sent.clone();
    let writes: Vec<&Value> = sent
        .iter()
        .filter(|(m, p, _)| m == "PATCH" && p == &format!("{WS}/status"))
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(writes.len(), 2, "awakeBecause, then the sleep wish");
    assert_eq!(writes[1]["metadata"]["resourceVersion"], "2");
    assert_eq!(writes[1]["status"]["sleep"]["by"], AUTO_SLEEP);
    assert_eq!(writes[1]["status"]["sleep"]["reason"], reason.as_str());
    assert_eq!(
        nudged.try_recv().unwrap(),
        key,
        "the reconciler is told at once"
    );
    let event = sent
        .iter()
        .find(|(m, p, _)| m == "POST" && p.ends_with("/events"))
        .map(|(_, _, b)| b.clone())
        .expect("an Event");
    assert_eq!(event["reason"], "AutoSleep");
    assert_eq!(event["note"], reason.as_str());
    assert_eq!(event["regarding"]["name"], "alice-main");

    // Asleep now (as the wish says): the next pass leaves it alone.
    assert!(sleeper.pass(later).await.is_empty());
}
