//! Everything we hand Kubernetes, validated offline against the Kubernetes 1.35 OpenAPI
//! schemas in strict mode (PyPI's `kubernetes-validate`, which `.ci/run` installs): the
//! CRDs, the kustomize base under `ops/deploy/` (rendered with `kubectl kustomize`), and
//! every object the operator generates for the examples. The example objects are checked
//! against the generated CRD schemas. The committed CRDs must be what the types generate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use coditect_control_plane::kubernetes::workload::{self, Desired, WorkloadOptions};
use coditect_control_plane::kubernetes::{crd, mapping};
use coditect_control_plane::reconcile::BUCKET_ANNOTATION;
use coditect_specs::{Kind, Resource};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> Vec<Resource> {
    coditect_specs::load_effective(
        &root().join("specs/examples"),
        false,
        &coditect_specs::Catalog::default(),
    )
    .unwrap()
    .into_iter()
    .map(|d| d.resource)
    .collect()
}

/// Runs `kubernetes-validate --strict -k 1.35` over `objects`; its report on failure.
fn validate(name: &str, objects: &[Value]) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.yaml"));
    let text: String = objects
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap()))
        .collect();
    std::fs::write(&file, text).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.35", "--no-warn"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate; .ci/run does)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}

fn workloads(purge: bool, awake: bool) -> Vec<Value> {
    let all = examples();
    let mut out = Vec::new();
    for r in &all {
        let Resource::Workspace(ws) = r else { continue };
        for bucket in ["gs://acme-workspaces/v2", "file:bucket/acme"] {
            let mut placed = ws.clone();
            placed
                .metadata
                .annotations
                .insert(BUCKET_ANNOTATION.into(), bucket.into());
            let owner = json!({"apiVersion": "coditect.io/v1", "kind": "Workspace", "name": ws.metadata.name, "uid": "0b8f0e4c-6f0a-4d7e-9c55-3d2f8d1e2a10", "controller": true, "blockOwnerDeletion": true});
            let d = Desired {
                workspace: &placed,
                spec_hash: "sha256:0123456789abcdef",
                awake,
                purge,
                owner: Some(owner.clone()),
            };
            out.extend(workload::objects(&d, &WorkloadOptions::default()));
            out.push(workload::token_secret(&placed, "0123", Some(&owner)));
        }
    }
    out
}

#[test]
fn every_generated_workload_passes_strict_kubernetes_1_35_validation() {
    for (purge, awake) in [(false, true), (false, false), (true, false)] {
        let objects = workloads(purge, awake);
        assert!(objects.iter().any(|o| o["kind"] == "StatefulSet"));
        if let Err(report) = validate("workloads", &objects) {
            panic!("purge={purge} awake={awake}:\n{report}");
        }
    }
}

#[test]
fn the_crds_and_the_examples_as_kubernetes_objects_pass_strict_validation() {
    let mut objects: Vec<Value> = crd::crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    objects.extend(
        mapping::manifests(&examples())
            .into_iter()
            .filter(|o| o["kind"] == "Namespace"),
    );
    validate("crds", &objects).unwrap_or_else(|r| panic!("{r}"));
}

#[test]
fn the_validator_refuses_an_unknown_field_and_a_missing_required_one() {
    let mut objects = workloads(false, true);
    let sts = objects
        .iter_mut()
        .find(|o| o["kind"] == "StatefulSet")
        .unwrap();
    sts["spec"]["template"]["spec"]["containers"][0]["imagePullPolic"] = json!("Always");
    let report = validate("unknown", &objects).unwrap_err();
    assert!(report.contains("imagePullPolic"), "{report}");
    let mut objects = workloads(false, true);
    let svc = objects.iter_mut().find(|o| o["kind"] == "Service").unwrap();
    svc["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("port");
    let report = validate("missing", &objects).unwrap_err();
    assert!(report.contains("'port' is a required property"), "{report}");
}

#[test]
fn the_deploy_base_renders_with_kubectl_kustomize_and_passes_strict_validation() {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(root().join("ops/deploy"))
        .output()
        .expect("kubectl (Debian's kubernetes-client; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "CustomResourceDefinition",
        "Deployment",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "Service",
        "Namespace",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    validate("deploy", &objects).unwrap_or_else(|r| panic!("{r}"));
    // The operator and the gateway run from the same image, each its own command.
    for (name, command) in [
        ("coditect-operator", "operator"),
        ("coditect-gateway", "gateway"),
    ] {
        let d = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], name);
        assert_eq!(pod["containers"][0]["args"], serde_json::json!([command]));
    }
    // Each ClusterRole grants what its component calls, and the gateway nothing it does
    // not (it never lists Secrets, never writes a spec).
    let needs: &[(&str, &str, &str, &str)] = &[
        (
            "coditect-gateway",
            "authentication.k8s.io",
            "tokenreviews",
            "create",
        ),
        (
            "coditect-gateway",
            "authorization.k8s.io",
            "subjectaccessreviews",
            "create",
        ),
        ("coditect-gateway", "coditect.io", "workspaces", "watch"),
        (
            "coditect-gateway",
            "coditect.io",
            "workspaces/status",
            "patch",
        ),
        ("coditect-gateway", "", "secrets", "get"),
        ("coditect-gateway", "events.k8s.io", "events", "create"),
        (
            "coditect-operator",
            "coditect.io",
            "workspaces/status",
            "patch",
        ),
        ("coditect-operator", "apps", "statefulsets", "patch"),
        ("coditect-operator", "", "secrets", "create"),
        (
            "coditect-workspace-user",
            "coditect.io",
            "workspaces",
            "use",
        ),
        (
            "coditect-workspace-viewer",
            "coditect.io",
            "workspaces",
            "get",
        ),
    ];
    for (role, group, resource, verb) in needs {
        assert!(
            grants(&objects, role, group, resource, verb),
            "{role} lacks {verb} {resource}.{group}"
        );
    }
    for (role, group, resource, verb) in [
        ("coditect-gateway", "", "secrets", "list"),
        ("coditect-gateway", "coditect.io", "workspaces", "patch"),
        (
            "coditect-workspace-viewer",
            "coditect.io",
            "workspaces",
            "use",
        ),
    ] {
        assert!(
            !grants(&objects, role, group, resource, verb),
            "{role} should not {verb} {resource}.{group}"
        );
    }
}

/// Whether the ClusterRole `role` among `objects` allows `verb` on `resource` in `group`.
fn grants(objects: &[Value], role: &str, group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: &Value, x: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v == x || v == "*"))
    };
    objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == role)
        .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
        .any(|r| {
            has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb)
        })
}

#[test]
fn the_examples_fit_the_generated_crd_schemas_and_a_wrong_field_does_not() {
    for r in examples() {
        let schema = serde_json::to_value(crd::crd(r.kind())).unwrap()["spec"]["versions"][0]
            ["schema"]["openAPIV3Schema"]
            .clone();
        let object = mapping::to_kubernetes(&r);
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&object)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", r.key());
        if r.kind() == Kind::Workspace {
            let mut wrong = object.clone();
            wrong["spec"]["agents"][0]["provider"] = json!("skynet");
            assert!(
                !validator.is_valid(&wrong),
                "an unknown provider is refused"
            );
            let mut both = object.clone();
            both["spec"]["agents"][0]["credentials"] =
                json!({"env": "A", "secretRef": {"name": "s", "key": "k"}});
            // CEL is the API server's to run; the rule is there for it.
            let rules = &schema["properties"]["spec"]["properties"]["agents"]["items"]["properties"]
                ["credentials"]["x-kubernetes-validations"];
            assert_eq!(rules[0]["message"], "exactly one of env or secretRef");
        }
    }
}

/// Regenerate with `CODITECT_BLESS=1 cargo test -p coditect-control-plane --test kubernetes_manifests`.
#[test]
fn the_committed_crds_are_what_the_types_generate() {
    for c in crd::crds() {
        let name = c.metadata.name.clone().unwrap();
        let path = root().join(format!("ops/deploy/crds/{name}.yaml"));
        let fresh = format!(
            "# Generated from the Rust types by `coditect manifests --crds`; do not edit.\n{}",
            serde_yaml::to_string(&c).unwrap()
        );
        if std::env::var_os("CODITECT_BLESS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is stale: run CODITECT_BLESS=1 cargo test -p coditect-control-plane --test kubernetes_manifests",
            path.display()
        );
    }
}
