//! End to end on a real cluster: the CRDs installed, a workspace applied, the operator
//! (in this process) brings it up Ready, puts it to sleep (zero replicas) and wakes it,
//! then deletes it. Runs only when `KUBECONFIG` is set (and `CODITECT_IMAGE` names an
//! image the cluster can pull); otherwise it says it was skipped. It has not run in our
//! CI, which has no cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use coditect_control_plane::kubernetes::operator::{OperatorOptions, run};
use coditect_control_plane::kubernetes::store::api_resource;
use coditect_control_plane::kubernetes::workload::WorkloadOptions;
use coditect_control_plane::kubernetes::{FIELD_MANAGER, crd};
use coditect_specs::Kind;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

const NS: &str = "coditect-e2e";

/// Waits (watching, not polling) until `name` satisfies `cond`, five minutes at most.
async fn until<K>(what: &str, api: &Api<K>, name: &str, cond: impl Fn(Option<&K>) -> bool)
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + kube::Resource + 'static,
{
    tokio::time::timeout(
        Duration::from_secs(300),
        await_condition(api.clone(), name, move |o: Option<&K>| cond(o)),
    )
    .await
    .unwrap_or_else(|_| panic!("waited 5 minutes for {what}"))
    .unwrap();
}

fn ready(o: Option<&DynamicObject>) -> bool {
    o.is_some_and(|o| {
        o.data["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    })
}

#[tokio::test]
async fn a_workspace_comes_up_sleeps_wakes_and_goes_on_a_real_cluster() {
    let (Some(_), Some(image)) = (
        std::env::var_os("KUBECONFIG"),
        std::env::var("CODITECT_IMAGE").ok(),
    ) else {
        eprintln!(
            "SKIPPED: a_workspace_comes_up_sleeps_wakes_and_goes_on_a_real_cluster needs KUBECONFIG and CODITECT_IMAGE (no cluster here)"
        );
        return;
    };
    let client = kube::Client::try_default().await.unwrap();
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for c in crd::crds() {
        let name = c.metadata.name.clone().unwrap();
        crds.patch(&name, &apply, &Patch::Apply(&c)).await.unwrap();
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in [NS, "coditect-e2e-system"] {
        namespaces
            .patch(
                ns,
                &apply,
                &Patch::Apply(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                ),
            )
            .await
            .unwrap();
    }
    let orgs: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(Kind::Organization));
    orgs.patch(
        NS,
        &apply,
        &Patch::Apply(json!({
            "apiVersion": "coditect.io/v1", "kind": "Organization", "metadata": {"name": NS},
            "spec": {"storage": {"bucket": "file:bucket/e2e"}},
        })),
    )
    .await
    .unwrap();
    let workspaces: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &api_resource(Kind::Workspace));
    workspaces
        .patch("e2e", &apply, &Patch::Apply(json!({
            "apiVersion": "coditect.io/v1", "kind": "Workspace",
            "metadata": {"name": "e2e", "namespace": NS, "labels": {"coditect.io/team": "e2e"}},
            "spec": {"owner": "e2e", "resources": {"cpu": "250m", "memory": "256Mi", "storage": "1Gi"},
                     "agents": [{"name": "solo", "provider": "offline", "model": "offline"}]},
        })))
        .await
        .unwrap();
    let operator = tokio::spawn(run(
        OperatorOptions {
            workload: WorkloadOptions {
                image,
                storage_class: None,
            },
            listen: "127.0.0.1:0".parse().unwrap(),
            namespace: "coditect-e2e-system".into(),
            identity: "e2e".into(),
            resync: Duration::from_secs(30),
        },
        None,
        std::future::pending(),
    ));
    until("Ready", &workspaces, "e2e", ready).await;
    // Sleep: the wish in the status; the StatefulSet goes to zero replicas.
    workspaces
        .patch_status("e2e", &PatchParams::default(), &Patch::Merge(json!({"status": {"sleep": {"reason": "e2e", "by": "e2e", "requestedAt": "2026-12-06T00:00:00Z"}}})))
        .await
        .unwrap();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    until("zero replicas", &sets, "e2e", |s: Option<&StatefulSet>| {
        s.and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas) == Some(0)
    })
    .await;
    workspaces
        .patch_status(
            "e2e",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"sleep": null}})),
        )
        .await
        .unwrap();
    until("Ready after the wake", &workspaces, "e2e", ready).await;
    workspaces
        .delete("e2e", &DeleteParams::default())
        .await
        .unwrap();
    until(
        "the Workspace gone",
        &workspaces,
        "e2e",
        |o: Option<&DynamicObject>| o.is_none(),
    )
    .await;
    operator.abort();
}
