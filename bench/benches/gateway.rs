//! What access control costs a request through the gateway: `GET /v1/health` of one
//! workspace directly (the instance's token), through the gateway as the cluster admin,
//! and as a team member (every rule evaluated, the rate limit counted); and the check
//! itself in-process (token hash and lookup, roles snapshot, decision).
//!
//! The budget: the gateway's p99 grows by at most 100 µs. The figure before
//! access control came from the same bench at the commit before it (the gateway then
//! passed the workspace's own token through); see bench/README.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coditect_bench::Percentiles;
use coditect_control_plane::access::{Access, RateLimit, Verb};
use coditect_control_plane::client::Client;
use coditect_control_plane::selector::LabelSelector;
use coditect_control_plane::store::Store;
use coditect_control_plane::up::{UpOptions, start};
use coditect_specs::{Kind, ObjectKey, Resource};
use criterion::Criterion;

const MINUTE: Duration = Duration::from_secs(60);

const SETUP: &str = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: bench}\nspec: {admins: [boss]}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: bench}\nspec: {members: [{user: u}, {user: v, role: viewer}]}\n---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: gw, organization: bench, team: t}\nspec: {owner: u, agents: [{name: a, provider: offline}]}\n";

fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("bench.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

fn key() -> ObjectKey {
    ObjectKey {
        kind: Kind::Workspace,
        organization: Some("bench".into()),
        name: "gw".into(),
    }
}

/// Criterion's loop over `n` GETs of `url` with `token`, each recorded in `p`.
fn bench_get(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    label: &str,
    url: String,
    token: String,
) {
    let p = Percentiles::new(label);
    c.bench_function(label, |b| {
        b.to_async(rt).iter_custom(|n| {
            let (p, url, token) = (&p, url.clone(), token.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let t = Instant::now();
                    let resp = http
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("send");
                    assert!(resp.status().is_success(), "{label}: {}", resp.status());
                    resp.bytes().await.expect("body");
                    let d = t.elapsed();
                    p.record(d);
                    total += d;
                }
                total
            }
        });
    });
}

fn through_the_gateway(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut opts = UpOptions::new(
        "127.0.0.1:0".parse().expect("addr"),
        tmp.path().to_path_buf(),
        std::env::current_exe().expect("own path"),
    );
    opts.resync = MINUTE;
    // The member's requests are counted against a limit they never reach.
    opts.rate_limit = RateLimit {
        per_second: 1e9,
        burst: u32::MAX,
    };
    let cp = rt.block_on(start(opts)).expect("control plane");
    let admin = Client::with_token(&cp.server, &cp.admin_token).expect("client");
    let member = rt.block_on(async {
        admin
            .apply(&objects(SETUP), false, None)
            .await
            .expect("setup");
        admin
            .wait_for(&key(), "Ready", MINUTE)
            .await
            .expect("ready");
        let v = admin
            .post_json(
                "/apis/coditect.io/v1/tokens",
                &serde_json::json!({"user": "u"}),
            )
            .await
            .expect("token");
        v["token"].as_str().expect("token").to_string()
    });
    let endpoint = rt.block_on(admin.get(&key())).expect("get").status_json()["endpoint"]
        .as_str()
        .expect("endpoint")
        .to_string();
    let instance_token = std::fs::read_to_string(
        tmp.path()
            .join("workspaces/organizations/bench/teams/t/users/u/workspaces/gw/api-token"),
    )
    .expect("token")
    .trim()
    .to_string();
    let http = reqwest::Client::new();
    let via = format!("{}/w/bench/gw/v1/health", cp.server);
    bench_get(
        c,
        &rt,
        &http,
        "gateway/health_direct",
        format!("{endpoint}/v1/health"),
        instance_token,
    );
    bench_get(
        c,
        &rt,
        &http,
        "gateway/health_as_admin",
        via.clone(),
        cp.admin_token.clone(),
    );
    bench_get(c, &rt, &http, "gateway/health_as_member", via, member);
    rt.block_on(cp.shutdown());
}

/// The check alone: what the gateway adds to a request before it forwards it.
fn the_check(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&tmp.path().join("controlplane.db")).expect("store");
    store.apply(&objects(SETUP), false).expect("apply");
    let access = Arc::new(
        Access::open(
            tmp.path(),
            RateLimit {
                per_second: 1e12,
                burst: u32::MAX,
            },
        )
        .expect("access"),
    );
    let (_, token) = access
        .tokens
        .create(
            &coditect_control_plane::access::NewToken {
                user: "u".into(),
                ..Default::default()
            },
            "bench",
        )
        .expect("token");
    assert_eq!(
        store
            .list(None, None, &LabelSelector::default())
            .expect("list")
            .len(),
        3
    );
    let p = Percentiles::new("access/admit_and_decide");
    c.bench_function("access/admit_and_decide", |b| {
        b.iter_custom(|n| {
            let t0 = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                let who = access.admit(Some(&token)).expect("admitted");
                let policy = access.policy(&store);
                policy
                    .decide(&who, Verb::Use, &policy.subject(&key()))
                    .expect("allowed");
                p.record(t.elapsed());
            }
            t0.elapsed()
        });
    });
    // The roles snapshot rebuilt after a spec change (once per change, not per request).
    c.bench_function("access/policy_rebuild_3_objects", |b| {
        b.iter(|| {
            let objects = store
                .list(None, None, &LabelSelector::default())
                .expect("list");
            coditect_control_plane::access::Policy::from_resources(&objects)
        });
    });
}

fn main() {
    if coditect_bench::serve_instance_if_asked() {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    the_check(&mut c);
    through_the_gateway(&mut c);
    c.final_summary();
}
