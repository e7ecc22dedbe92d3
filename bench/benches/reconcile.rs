//! One resync pass of the Workspace reconciler over 1,000 converged workspaces: store read,
//! spec hash, driver observation, status write — the control plane's own cost per
//! workspace. The driver here reports every instance as running the current spec (it
//! exists only in this bench); process starts are measured by the startup bench.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coditect_control_plane::driver::{Driver, Instance};
use coditect_control_plane::error::DriverError;
use coditect_control_plane::reconcile::{Context, reconcile};
use coditect_control_plane::selector::LabelSelector;
use coditect_control_plane::store::Store;
use coditect_specs::{Kind, ObjectKey, Resource, Workspace};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Every instance is up and runs the current spec.
#[derive(Debug)]
struct Converged;

impl Converged {
    fn instance(ws: &Workspace) -> Instance {
        Instance {
            endpoint: "http://127.0.0.1:1".into(),
            pid: None,
            spec_hash: coditect_specs::spec_hash(&Resource::Workspace(ws.clone())),
            session_expires_at: None,
            sync_lag_seconds: None,
            bucket: None,
            mirror: None,
            mirror_lag_seconds: None,
            restorable: true,
            sync_error: None,
            activity: None,
        }
    }
}

impl Driver for Converged {
    async fn observe(&self, _: &ObjectKey, ws: &Workspace) -> Option<Instance> {
        Some(Self::instance(ws))
    }
    async fn ensure(
        &self,
        _: &ObjectKey,
        ws: &Workspace,
        _: &str,
    ) -> Result<Instance, DriverError> {
        Ok(Self::instance(ws))
    }
    async fn stop(&self, _: &ObjectKey, _: &Workspace, _: bool) -> Result<(), DriverError> {
        Ok(())
    }
    async fn reap_orphans(&self, _: &[ObjectKey]) -> Vec<ObjectKey> {
        Vec::new()
    }
}

fn reconcile_1000(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(&dir.path().join("cp.db")).expect("store"));
    let mut text = String::from(
        "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {}\n",
    );
    for i in 0..1000 {
        text.push_str(&format!("---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: ws-{i}, organization: acme, team: t}}\nspec: {{owner: u, agents: [{{name: a, provider: offline}}]}}\n"));
    }
    let (docs, diags) = coditect_specs::parse_str("bench.yaml", Path::new("."), &text);
    assert!(diags.is_empty());
    let objects: Vec<Resource> = docs.into_iter().map(|d| d.resource).collect();
    store.apply(&objects, false).expect("apply");
    let ctx = Context {
        store: store.clone(),
        driver: Arc::new(Converged),
        resync: Duration::from_secs(10),
        admission: tokio::sync::Mutex::new(()),
        audit: None,
        delegated: Vec::new(),
    };
    let keys: Vec<ObjectKey> = store
        .list(Some(Kind::Workspace), None, &LabelSelector::default())
        .expect("list")
        .iter()
        .map(Resource::key)
        .collect();
    // The first pass writes each workspace's status; later passes find nothing to change.
    rt.block_on(async {
        for k in &keys {
            reconcile(k, &ctx).await.expect("reconcile");
        }
    });
    let mut group = c.benchmark_group("reconcile");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("resync_pass_1000_converged_workspaces", |b| {
        b.to_async(&rt).iter(|| async {
            for k in &keys {
                reconcile(k, &ctx).await.expect("reconcile");
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = reconcile_benches;
    config = Criterion::default().sample_size(10);
    targets = reconcile_1000
}
criterion_main!(reconcile_benches);
