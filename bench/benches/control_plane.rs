//! The control plane's KPIs: apply → Ready for 1 workspace and for 100 applied at once,
//! and WebSocket reconnect through the gateway (and directly, for comparison).
//!
//! The local driver starts instances as `<runtime command> workspace-runtime --spec …
//! --root … --listen …`. A bench binary cannot name the `coditect` binary, so it plays that
//! part itself: started with `workspace-runtime`, it serves an instance through the same
//! library call the CLI uses (`coditect_runtime::serve`).

use std::path::Path;
use std::time::{Duration, Instant};

use coditect_bench::Percentiles;
use coditect_control_plane::client::Client;
use coditect_control_plane::up::{UpOptions, start};
use coditect_specs::{Kind, ObjectKey, Resource};
use criterion::Criterion;
use futures_util::StreamExt;

const MINUTE: Duration = Duration::from_secs(60);

fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("bench.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

fn workspace(name: &str) -> Resource {
    let text = format!(
        "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {name}, organization: bench, team: t}}\nspec: {{owner: u, agents: [{{name: a, provider: offline}}]}}\n"
    );
    objects(&text).remove(0)
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::Workspace,
        organization: Some("bench".into()),
        name: name.into(),
    }
}

async fn delete_all(client: &Client, names: &[String]) {
    for n in names {
        client.delete(&key(n), true).await.expect("delete");
    }
    for n in names {
        client.wait_deleted(&key(n), MINUTE).await.expect("deleted");
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let cp = rt
        .block_on(start({
            let mut opts = UpOptions::new(
                "127.0.0.1:0".parse().expect("addr"),
                tmp.path().to_path_buf(),
                std::env::current_exe().expect("own path"),
            );
            opts.resync = MINUTE;
            opts
        }))
        .expect("control plane");
    let client = Client::with_token(&cp.server, &cp.admin_token).expect("client");
    let setup = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: bench}\nspec: {quotas: {maxWorkspaces: 100000, maxAwakeWorkspaces: 100000}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: bench}\nspec: {}\n";
    rt.block_on(client.apply(&objects(setup), false, None))
        .expect("setup");

    let mut counter = 0u64;
    let p = Percentiles::new("startup/apply_to_ready_1_workspace");
    c.bench_function("startup/apply_to_ready_1_workspace", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (client, p) = (&client, &p);
            counter += n;
            let base = counter;
            async move {
                let mut total = Duration::ZERO;
                for i in 0..n {
                    let name = format!("one-{base}-{i}");
                    let t = Instant::now();
                    client
                        .apply(&[workspace(&name)], false, None)
                        .await
                        .expect("apply");
                    client
                        .wait_for(&key(&name), "Ready", MINUTE)
                        .await
                        .expect("ready");
                    let d = t.elapsed();
                    p.record(d);
                    total += d;
                    delete_all(client, &[name]).await;
                }
                total
            }
        });
    });
    drop(p);

    let each = Percentiles::new("startup/apply_to_ready_100_workspaces_each");
    let mut group = c.benchmark_group("startup");
    group.sample_size(10);
    group.bench_function("apply_to_ready_100_workspaces_all", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (client, each) = (&client, &each);
            counter += n;
            let base = counter;
            async move {
                let mut total = Duration::ZERO;
                for i in 0..n {
                    let names: Vec<String> =
                        (0..100).map(|j| format!("many-{base}-{i}-{j}")).collect();
                    let objs: Vec<Resource> = names.iter().map(|n| workspace(n)).collect();
                    let t = Instant::now();
                    client.apply(&objs, false, None).await.expect("apply 100");
                    let waits = names.iter().map(|n| {
                        let (client, k) = (client.clone(), key(n));
                        tokio::spawn(async move {
                            client.wait_for(&k, "Ready", MINUTE).await.expect("ready");
                            Instant::now()
                        })
                    });
                    for w in waits.collect::<Vec<_>>() {
                        each.record(w.await.expect("join").duration_since(t));
                    }
                    total += t.elapsed();
                    delete_all(client, &names).await;
                }
                total
            }
        });
    });
    group.finish();
    drop(each);

    // Reconnect: one ready workspace with some history; each iteration opens the event
    // stream with `since` and waits for the first replayed event.
    let name = "reconnect".to_string();
    rt.block_on(async {
        client
            .apply(&[workspace(&name)], false, None)
            .await
            .expect("apply");
        client
            .wait_for(&key(&name), "Ready", MINUTE)
            .await
            .expect("ready")
    });
    let folder = tmp
        .path()
        .join("workspaces/organizations/bench/teams/t/users/u/workspaces/reconnect");
    let token = std::fs::read_to_string(folder.join("api-token"))
        .expect("token")
        .trim()
        .to_string();
    let endpoint = rt
        .block_on(client.get(&key(&name)))
        .expect("get")
        .status_json()["endpoint"]
        .as_str()
        .expect("endpoint")
        .trim_start_matches("http://")
        .to_string();
    let api = coditect_runtime::testkit::ApiClient::new(
        endpoint.parse().expect("addr"),
        Some(token.clone()),
    );
    rt.block_on(async {
        for i in 0..10 {
            api.post(
                "/v1/events",
                &serde_json::json!({"agent": "a", "type": "agent_message", "data": {"i": i}}),
            )
            .await;
        }
    });
    for (label, url) in [
        (
            "reconnect/through_gateway",
            format!(
                "ws://{}/w/bench/{name}/v1/events/ws?since=5&access_token={}",
                cp.addr, cp.admin_token
            ),
        ),
        (
            "reconnect/direct",
            format!("ws://{endpoint}/v1/events/ws?since=5&access_token={token}"),
        ),
    ] {
        let p = Percentiles::new(label);
        c.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|n| {
                let (p, url) = (&p, url.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let t = Instant::now();
                        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
                            .await
                            .expect("connect");
                        let first = socket.next().await.expect("a frame").expect("ok");
                        let d = t.elapsed();
                        assert!(first.is_text());
                        p.record(d);
                        total += d;
                    }
                    total
                }
            });
        });
    }
    rt.block_on(cp.shutdown());
}

fn main() {
    if coditect_bench::serve_instance_if_asked() {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
}
