//! The Kubernetes objects that run one workspace, as pure functions of its spec (so the
//! operator's requests and `coditect manifests --workloads` are the same bytes, and both
//! are validated offline against the Kubernetes OpenAPI schemas):
//!
//! * a ConfigMap with the workspace's spec, as the runtime reads it (`--spec`);
//! * a one-replica StatefulSet running `coditect workspace-runtime` — `replicas: 0` is
//!   asleep. Its volume claim template holds `databases/` and `sessions/` (live SQLite
//!   stays on a block volume, never on GCS FUSE: no file locks there, and WAL's shared
//!   memory breaks); with a `gs://` bucket `projects/` is the Cloud Storage FUSE CSI
//!   volume of the workspace's prefix;
//! * a headless Service (the pod's stable name, which the gateway routes to);
//! * the organization's ServiceAccount, ready for Workload Identity.
//!
//! The instance's API token is a Secret the driver creates once ([`token_secret`]).

use std::collections::BTreeSet;

use coditect_runtime::layout::Layout;
use coditect_specs::agent::{Credentials, SecretRef};
use coditect_specs::{Resource, Workspace};
use serde_json::{Value, json};

use super::{TEAM_LABEL, WORKSPACE_LABEL, mapping};
use crate::reconcile::{BUCKET_ANNOTATION, MIRROR_ANNOTATION};

/// The port the runtime serves on in its pod.
pub const PORT: u16 = 8080;
/// Where the pod's volume claim is mounted: the runtime's storage root.
pub const DATA_DIR: &str = "/data";
/// Where Secrets are mounted (`{dir}/{secret}/{key}`, as the runtime reads them).
pub const SECRETS_DIR: &str = "/var/run/coditect/secrets";
/// Where the spec ConfigMap is mounted.
pub const SPEC_DIR: &str = "/etc/coditect/workspace";
/// The annotation on the pod template that rolls the pod when the spec changes.
pub const SPEC_HASH_ANNOTATION: &str = "coditect.io/spec-hash";
/// The GKE Cloud Storage FUSE CSI driver.
pub const GCSFUSE_DRIVER: &str = "gcsfuse.csi.storage.gke.io";
/// A clean stop runs a final sync round (databases, events, a mirror's last attempt of
/// 5 s); the grace period leaves room for a slow bucket.
pub const GRACE_SECONDS: i64 = 60;
/// The organization's ServiceAccount, in its namespace.
pub const SERVICE_ACCOUNT: &str = "coditect-workspace";

/// How the operator runs workspaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadOptions {
    /// The `coditect` image (`ghcr.io/coditect/coditect:0.1.0`).
    pub image: String,
    /// The storage class of the data volume; the cluster's default when `None`.
    pub storage_class: Option<String>,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            image: format!("ghcr.io/coditect/coditect:{}", env!("CARGO_PKG_VERSION")),
            storage_class: None,
        }
    }
}

/// What a workspace's objects depend on besides its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired<'a> {
    /// The workspace as its driver runs it (the organization's bucket in its annotations).
    pub workspace: &'a Workspace,
    /// Its spec hash (rolls the pod when it changes).
    pub spec_hash: &'a str,
    /// Awake (one replica) or asleep (none).
    pub awake: bool,
    /// Whether deleting the workspace deletes its volume too (`delete --purge`).
    pub purge: bool,
    /// The Workspace object that owns them (its `uid` known), for garbage collection.
    pub owner: Option<Value>,
}

/// The names of a workspace's objects.
pub fn token_secret_name(workspace: &str) -> String {
    format!("{workspace}-api-token")
}

fn spec_config_map_name(workspace: &str) -> String {
    format!("{workspace}-spec")
}

fn labels(ws: &Workspace) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/name": "coditect-workspace",
        "app.kubernetes.io/instance": ws.metadata.name,
        "app.kubernetes.io/managed-by": "coditect",
        WORKSPACE_LABEL: ws.metadata.name,
    });
    if let Some(team) = &ws.metadata.team {
        labels[TEAM_LABEL] = json!(team);
    }
    labels
}

fn namespace(ws: &Workspace) -> String {
    mapping::namespace(ws.metadata.organization.as_deref().unwrap_or_default())
}

fn metadata(ws: &Workspace, name: &str, owner: Option<&Value>) -> Value {
    let mut m = json!({"name": name, "namespace": namespace(ws), "labels": labels(ws)});
    if let Some(owner) = owner {
        m["ownerReferences"] = json!([owner]);
    }
    m
}

/// The owner reference of a Workspace object as Kubernetes returned it (`None` without
/// a `uid`, as in a preview).
pub fn owner_reference(object: &Value) -> Option<Value> {
    let uid = object["metadata"]["uid"].as_str()?;
    Some(json!({
        "apiVersion": mapping::api_version(),
        "kind": "Workspace",
        "name": object["metadata"]["name"],
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }))
}

/// The workspace as the runtime in the pod reads it: its API token from the Secret the
/// driver creates unless the spec names one.
fn runtime_spec(ws: &Workspace) -> Workspace {
    let mut ws = ws.clone();
    if ws.spec.api_token.is_none() {
        ws.spec.api_token = Some(Credentials {
            env: None,
            secret_ref: Some(SecretRef {
                name: token_secret_name(&ws.metadata.name),
                key: "token".into(),
            }),
        });
    }
    ws.status = None;
    ws
}

/// Every Secret the runtime reads: its token's and the agents' credentials'.
fn secrets(ws: &Workspace) -> BTreeSet<String> {
    let agents = ws.spec.agents.iter().filter_map(|a| a.credentials.as_ref());
    ws.spec
        .api_token
        .iter()
        .chain(agents)
        .filter_map(|c| c.secret_ref.as_ref().map(|s| s.name.clone()))
        .collect()
}

/// The ConfigMap holding the spec the runtime runs.
pub fn spec_config_map(d: &Desired<'_>) -> Value {
    let ws = runtime_spec(d.workspace);
    let yaml = serde_yaml::to_string(&Resource::Workspace(ws.clone())).unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(&ws, &spec_config_map_name(&ws.metadata.name), d.owner.as_ref()),
        "data": {"workspace.yaml": yaml},
    })
}

/// The headless Service that names the pod.
pub fn service(d: &Desired<'_>) -> Value {
    let ws = d.workspace;
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ws, &ws.metadata.name, d.owner.as_ref()),
        "spec": {
            "clusterIP": "None",
            "selector": {WORKSPACE_LABEL: ws.metadata.name},
            "ports": [{"name": "api", "port": PORT, "targetPort": "api", "protocol": "TCP"}],
            "publishNotReadyAddresses": false,
        },
    })
}

/// Where the instance answers inside the cluster.
pub fn endpoint(ws: &Workspace) -> String {
    let name = &ws.metadata.name;
    format!("http://{name}-0.{name}.{}.svc:{PORT}", namespace(ws))
}

/// A `gs://bucket/prefix` URL as its bucket and prefix.
fn gcs(bucket: &str) -> Option<(String, String)> {
    let rest = bucket.strip_prefix("gs://")?;
    let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Some((name.to_string(), prefix.trim_matches('/').to_string()))
}

/// The bucket URL as the pod reaches it: a relative `file:` bucket (the embedded
/// default) lives on the data volume.
fn pod_bucket(bucket: &str) -> String {
    match bucket.strip_prefix("file:") {
        Some(rest) if !rest.starts_with('/') => format!("file://{DATA_DIR}/{rest}"),
        _ => bucket.to_string(),
    }
}

/// The StatefulSet that runs the workspace (one replica awake, none asleep).
pub fn stateful_set(d: &Desired<'_>, opts: &WorkloadOptions) -> Value {
    let ws = d.workspace;
    let name = &ws.metadata.name;
    let annotations = &ws.metadata.annotations;
    let bucket = annotations.get(BUCKET_ANNOTATION).map(|b| pod_bucket(b));
    let mut args = vec![
        "workspace-runtime".to_string(),
        "--spec".into(),
        format!("{SPEC_DIR}/workspace.yaml"),
        "--root".into(),
        DATA_DIR.into(),
        "--listen".into(),
        format!("0.0.0.0:{PORT}"),
    ];
    if let Some(b) = &bucket {
        args.extend(["--bucket".into(), b.clone()]);
        if let Some(m) = annotations.get(MIRROR_ANNOTATION) {
            args.extend(["--mirror".into(), m.clone()]);
        }
    }
    let mut env = vec![json!({"name": "CODITECT_SECRETS_DIR", "value": SECRETS_DIR})];
    let mut mounts = vec![
        json!({"name": "data", "mountPath": DATA_DIR}),
        json!({"name": "spec", "mountPath": SPEC_DIR, "readOnly": true}),
        // The root filesystem is read-only; scratch space is the pod's own.
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut volumes = vec![
        json!({"name": "spec", "configMap": {"name": spec_config_map_name(name)}}),
        json!({"name": "tmp", "emptyDir": {}}),
    ];
    for (i, secret) in secrets(&runtime_spec(ws)).iter().enumerate() {
        let volume = format!("secret-{i}");
        mounts.push(json!({"name": volume, "mountPath": format!("{SECRETS_DIR}/{secret}"), "readOnly": true}));
        volumes.push(json!({"name": volume, "secret": {"secretName": secret}}));
    }
    let mut pod_annotations = json!({SPEC_HASH_ANNOTATION: d.spec_hash});
    if let Some((bucket_name, prefix)) = bucket.as_deref().and_then(gcs) {
        let m = &ws.metadata;
        let relative = Layout::relative(
            m.organization.as_deref().unwrap_or_default(),
            m.team.as_deref().unwrap_or_default(),
            &ws.spec.owner,
            name,
        );
        let dir = if prefix.is_empty() {
            format!("{}/projects", relative.display())
        } else {
            format!("{prefix}/{}/projects", relative.display())
        };
        pod_annotations["gke-gcsfuse/volumes"] = json!("true");
        env.push(json!({"name": "CODITECT_PROJECTS_ON_GCSFUSE", "value": "1"}));
        mounts.push(json!({"name": "projects", "mountPath": format!("{DATA_DIR}/{}/projects", relative.display())}));
        volumes.push(json!({
            "name": "projects",
            "csi": {
                "driver": GCSFUSE_DRIVER,
                "volumeAttributes": {
                    "bucketName": bucket_name,
                    "mountOptions": format!("implicit-dirs,only-dir={dir}"),
                },
            },
        }));
    }
    let resources = &ws.spec.resources;
    let mut claim = json!({
        "metadata": {"name": "data", "labels": labels(ws)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": resources.storage.to_string()}},
        },
    });
    if let Some(class) = &opts.storage_class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(ws, name, d.owner.as_ref()),
        "spec": {
            "replicas": i32::from(d.awake),
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {WORKSPACE_LABEL: name}},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": if d.purge { "Delete" } else { "Retain" },
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {"labels": labels(ws), "annotations": pod_annotations},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "runtime",
                        "image": opts.image,
                        "args": args,
                        "env": env,
                        "ports": [{"name": "api", "containerPort": PORT, "protocol": "TCP"}],
                        "resources": {
                            "requests": {"cpu": resources.cpu.to_string(), "memory": resources.memory.to_string()},
                            "limits": {"memory": resources.memory.to_string()},
                        },
                        "readinessProbe": {
                            "httpGet": {"path": coditect_runtime::api::PROBE_PATH, "port": "api"},
                            "periodSeconds": 2,
                            "failureThreshold": 3,
                        },
                        "volumeMounts": mounts,
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [claim],
        },
    })
}

/// The Secret with the instance's API token (created once, never overwritten).
pub fn token_secret(ws: &Workspace, token: &str, owner: Option<&Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(ws, &token_secret_name(&ws.metadata.name), owner),
        "type": "Opaque",
        "stringData": {"token": token},
    })
}

/// The organization's ServiceAccount; annotate it with
/// `iam.gke.io/gcp-service-account` for Workload Identity.
pub fn service_account(organization: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": SERVICE_ACCOUNT,
            "namespace": mapping::namespace(organization),
            "labels": {"app.kubernetes.io/managed-by": "coditect", "coditect.io/organization": organization},
        },
    })
}

/// Everything that runs `ws` awake, in the order it is applied.
pub fn objects(d: &Desired<'_>, opts: &WorkloadOptions) -> Vec<Value> {
    vec![
        service_account(
            d.workspace
                .metadata
                .organization
                .as_deref()
                .unwrap_or_default(),
        ),
        spec_config_map(d),
        service(d),
        stateful_set(d, opts),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(bucket: &str) -> Workspace {
        let yaml = format!(
            "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata:\n  name: alice-main\n  organization: acme\n  team: platform\n  annotations:\n    coditect.io/bucket: {bucket}\nspec:\n  owner: alice\n  agents:\n  - name: claude\n    provider: anthropic\n    model: claude-sonnet-4-6\n    credentials:\n      secretRef: {{name: anthropic, key: api-key}}\n"
        );
        let (mut docs, problems) =
            coditect_specs::parse_str("w.yaml", std::path::Path::new("."), &yaml);
        assert!(problems.is_empty(), "{problems:?}");
        match docs.remove(0).resource {
            Resource::Workspace(w) => w,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_gs_bucket_mounts_projects_with_gcsfuse_and_keeps_sqlite_on_the_claim() {
        let ws = workspace("gs://acme-ws/v2");
        let d = Desired {
            workspace: &ws,
            spec_hash: "abc",
            awake: true,
            purge: false,
            owner: None,
        };
        let sts = stateful_set(&d, &WorkloadOptions::default());
        let pod = &sts["spec"]["template"];
        assert_eq!(
            pod["metadata"]["annotations"]["gke-gcsfuse/volumes"],
            "true"
        );
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        let csi = volumes.iter().find(|v| v["name"] == "projects").unwrap();
        assert_eq!(csi["csi"]["driver"], GCSFUSE_DRIVER);
        assert_eq!(csi["csi"]["volumeAttributes"]["bucketName"], "acme-ws");
        assert_eq!(
            csi["csi"]["volumeAttributes"]["mountOptions"],
            "implicit-dirs,only-dir=v2/organizations/acme/teams/platform/users/alice/workspaces/alice-main/projects"
        );
        let mounts = pod["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap();
        let projects = mounts.iter().find(|m| m["name"] == "projects").unwrap();
        assert!(
            projects["mountPath"]
                .as_str()
                .unwrap()
                .ends_with("/alice-main/projects")
        );
        // The databases stay on the claim: only projects/ is on the FUSE mount.
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "data" && m["mountPath"] == DATA_DIR)
        );
        // Secrets the spec names are mounted where the runtime reads them.
        for secret in ["anthropic", "alice-main-api-token"] {
            assert!(
                mounts
                    .iter()
                    .any(|m| m["mountPath"] == format!("{SECRETS_DIR}/{secret}")),
                "{secret}"
            );
        }
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
            "Retain"
        );
    }

    #[test]
    fn asleep_is_zero_replicas_and_a_purge_deletes_the_claim_with_the_set() {
        let ws = workspace("file:bucket/acme");
        let d = Desired {
            workspace: &ws,
            spec_hash: "abc",
            awake: false,
            purge: true,
            owner: None,
        };
        let sts = stateful_set(&d, &WorkloadOptions::default());
        assert_eq!(sts["spec"]["replicas"], 0);
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
            "Delete"
        );
        let args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap();
        assert!(
            args.contains(&json!("file:///data/bucket/acme")),
            "{args:?}"
        );
        let volumes = sts["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap();
        assert!(
            !volumes.iter().any(|v| v["name"] == "projects"),
            "no FUSE without gs://"
        );
    }
}
