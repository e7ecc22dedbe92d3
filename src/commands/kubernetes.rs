//! `coditect manifests` (what `kubectl apply -f` takes: our objects, the CRDs, the
//! workloads the operator would make), `coditect operator` (the control plane on
//! Kubernetes) and `coditect gateway` (its gateway).

use coditect_control_plane::kubernetes::operator::{self, OperatorOptions};
use coditect_control_plane::kubernetes::workload::{self, Desired, WorkloadOptions};
use coditect_control_plane::kubernetes::{crd, gateway, mapping};
use coditect_control_plane::reconcile::BUCKET_ANNOTATION;
use coditect_ops::autosleep::AutoSleeper;
use coditect_runtime::shutdown::Shutdown;
use coditect_specs::Resource;
use serde_json::{Value, json};

use super::manifests;
use crate::cli::{GatewayArgs, ManifestsArgs, OperatorArgs};
use crate::exit::Failure;
use crate::output::OutputFormat;

/// `coditect manifests [--crds] [-f FILES [--workloads]]`.
pub fn manifests(format: OutputFormat, args: &ManifestsArgs) -> Result<(), Failure> {
    let mut out: Vec<Value> = Vec::new();
    if args.crds {
        out.extend(
            crd::crds()
                .iter()
                .map(|c| serde_json::to_value(c).unwrap_or(Value::Null)),
        );
    }
    if !args.files.is_empty() {
        let docs = manifests::load(&args.files, args.recursive, format)?;
        let resources: Vec<Resource> = docs.into_iter().map(|d| d.resource).collect();
        out.extend(mapping::manifests(&resources));
        if args.workloads {
            out.extend(workloads(
                &resources,
                &WorkloadOptions {
                    image: args
                        .image
                        .clone()
                        .unwrap_or_else(|| WorkloadOptions::default().image),
                    storage_class: args.storage_class.clone(),
                },
            ));
        }
    }
    if out.is_empty() {
        eprintln!("error: nothing to print: give --crds, or -f with manifests");
        return Err(Failure::InvalidInput);
    }
    print(format, &out)
}

/// What the operator would apply for each workspace, awake, with its organization's
/// bucket.
fn workloads(resources: &[Resource], opts: &WorkloadOptions) -> Vec<Value> {
    let bucket = |org: &str| {
        resources.iter().find_map(|r| match r {
            Resource::Organization(o) if o.metadata.name == org => {
                Some(o.spec.storage.bucket.clone())
            }
            _ => None,
        })
    };
    let mut out = Vec::new();
    let mut accounts = std::collections::BTreeSet::new();
    for r in resources {
        let Resource::Workspace(ws) = r else { continue };
        let org = ws.metadata.organization.clone().unwrap_or_default();
        let mut placed = ws.clone();
        if let Some(b) = bucket(&org) {
            placed
                .metadata
                .annotations
                .insert(BUCKET_ANNOTATION.into(), b);
        }
        let hash = coditect_specs::spec_hash(r);
        let d = Desired {
            workspace: &placed,
            spec_hash: &hash,
            awake: true,
            purge: false,
            owner: None,
        };
        for o in workload::objects(&d, opts) {
            if o["kind"] == "ServiceAccount" && !accounts.insert(org.clone()) {
                continue;
            }
            out.push(o);
        }
    }
    out
}

fn print(format: OutputFormat, objects: &[Value]) -> Result<(), Failure> {
    if format.is_structured() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        outln!(
            "{}",
            serde_json::to_string_pretty(&list).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    for o in objects {
        let yaml = serde_yaml::to_string(o).map_err(anyhow::Error::from)?;
        outln!("---\n{}", yaml.trim_end());
    }
    Ok(())
}

/// `coditect operator`.
pub async fn operator(args: &OperatorArgs) -> Result<(), Failure> {
    let mut shutdown = Shutdown::install();
    let opts = OperatorOptions {
        workload: WorkloadOptions {
            image: args.image.clone(),
            storage_class: args.storage_class.clone(),
        },
        listen: args.listen,
        namespace: args.namespace.clone(),
        identity: args.identity.clone(),
        resync: args.resync.to_std(),
    };
    // The same auto-sleeper as `up`'s, over the Kubernetes API, while this replica leads.
    let every = args.auto_sleep_every.to_std();
    let sleeper: Option<operator::Beside> = (!every.is_zero()).then(|| {
        let beside: operator::Beside = std::sync::Arc::new(move |leader: operator::Leader| {
            let sleeper = AutoSleeper::over(leader.store, leader.tokens, leader.nudge);
            Box::pin(sleeper.run(every))
        });
        beside
    });
    operator::run(opts, sleeper, async move { shutdown.wait().await })
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))
}

/// `coditect gateway`.
pub async fn gateway(args: &GatewayArgs) -> Result<(), Failure> {
    let mut shutdown = Shutdown::install();
    let opts = gateway::GatewayOptions {
        listen: args.listen,
        identity: args.identity.clone(),
    };
    gateway::run(opts, async move { shutdown.wait().await })
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))
}
