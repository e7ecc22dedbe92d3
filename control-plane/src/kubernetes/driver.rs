//! The Kubernetes driver: a workspace is the objects of [`super::workload`], written with
//! server-side apply (field manager `coditect`, forced: the operator owns them). Awake is
//! `replicas: 1`, asleep `replicas: 0` — the volume claim stays, so a wake is a start on
//! local data, as on the local driver. Deleting the Workspace object lets Kubernetes'
//! garbage collector remove what it owns (owner references); its claim goes with it
//! only after `delete --purge`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource as _};
use serde::de::DeserializeOwned;
use serde_json::Value;

use coditect_specs::{ObjectKey, Workspace};

use super::tokens::SecretTokens;
use super::workload::{self, Desired, WorkloadOptions};
use super::{FIELD_MANAGER, mapping};
use crate::driver::{Driver, Instance};
use crate::error::DriverError;

/// Runs workspaces as StatefulSets.
#[derive(Clone)]
pub struct KubeDriver {
    client: Client,
    options: WorkloadOptions,
    http: reqwest::Client,
    /// Whether to ask a ready instance for its status (sync lag, activity) through its
    /// Service; the operator does, in the cluster.
    ask_instances: bool,
    tokens: std::sync::Arc<SecretTokens>,
}

impl std::fmt::Debug for KubeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDriver")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn api_error(key: &ObjectKey, what: &str, e: &kube::Error) -> DriverError {
    DriverError::Api {
        workspace: key.to_string(),
        reason: format!("{what}: {e}"),
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl KubeDriver {
    /// A driver over `client`. With `ask_instances`, a ready instance is asked for its
    /// status through its Service (the operator runs in the cluster, where that resolves).
    pub fn new(client: Client, options: WorkloadOptions, ask_instances: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        KubeDriver {
            tokens: std::sync::Arc::new(SecretTokens::new(client.clone())),
            client,
            options,
            http,
            ask_instances,
        }
    }

    /// The instances' tokens this driver has read (for the auto-sleeper's questions).
    pub fn tokens(&self) -> std::sync::Arc<SecretTokens> {
        self.tokens.clone()
    }

    fn api<K>(&self, ws: &Workspace) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> + DeserializeOwned,
        K::DynamicType: Default,
    {
        let ns = mapping::namespace(ws.metadata.organization.as_deref().unwrap_or_default());
        Api::namespaced(self.client.clone(), &ns)
    }

    async fn apply<K>(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
        object: &Value,
    ) -> Result<K, DriverError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        self.api::<K>(ws)
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(|e| api_error(key, &format!("apply {kind} {name}"), &e))
    }

    /// The Workspace object's owner reference (its uid is only known to the API server).
    async fn owner(&self, key: &ObjectKey, ws: &Workspace) -> Result<Option<Value>, DriverError> {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &mapping::namespace(ws.metadata.organization.as_deref().unwrap_or_default()),
            &super::store::api_resource(coditect_specs::Kind::Workspace),
        );
        match api.get(&ws.metadata.name).await {
            Ok(o) => Ok(serde_json::to_value(&o)
                .ok()
                .and_then(|v| workload::owner_reference(&v))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(api_error(key, "read the Workspace", &e)),
        }
    }

    /// Creates the instance's API token once; an existing one is kept (clients hold it).
    async fn ensure_token(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
        owner: Option<&Value>,
    ) -> Result<(), DriverError> {
        if ws.spec.api_token.is_some() {
            return Ok(());
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let secret: Secret = serde_json::from_value(workload::token_secret(ws, &token, owner))
            .map_err(|e| api_error(key, "build the token Secret", &kube::Error::SerdeError(e)))?;
        match self
            .api::<Secret>(ws)
            .create(&PostParams::default(), &secret)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(api_error(key, "create the token Secret", &e)),
        }
    }

    async fn write(&self, key: &ObjectKey, d: &Desired<'_>) -> Result<StatefulSet, DriverError> {
        let ws = d.workspace;
        let org = ws.metadata.organization.as_deref().unwrap_or_default();
        self.apply::<ServiceAccount>(key, ws, &workload::service_account(org))
            .await?;
        self.ensure_token(key, ws, d.owner.as_ref()).await?;
        self.apply::<ConfigMap>(key, ws, &workload::spec_config_map(d))
            .await?;
        self.apply::<Service>(key, ws, &workload::service(d))
            .await?;
        self.apply::<StatefulSet>(key, ws, &workload::stateful_set(d, &self.options))
            .await
    }

    /// The instance a StatefulSet runs, once its pod is ready on the current revision.
    async fn ready(&self, ws: &Workspace, sts: &StatefulSet) -> Option<Instance> {
        let spec = sts.spec.as_ref()?;
        if spec.replicas.unwrap_or(1) == 0 {
            return None;
        }
        let status = sts.status.as_ref()?;
        let rolled = status.observed_generation >= sts.meta().generation
            && status.update_revision.is_some()
            && status.current_revision == status.update_revision
            && status.updated_replicas.unwrap_or(0) >= 1;
        if !rolled || status.ready_replicas.unwrap_or(0) < 1 {
            return None;
        }
        let hash = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(workload::SPEC_HASH_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        let endpoint = workload::endpoint(ws);
        let asked = if self.ask_instances {
            match self.tokens.load(ws).await {
                Some(token) => {
                    crate::driver::instance_status(&self.http, &endpoint, &token, &ws.metadata.name)
                        .await
                }
                None => None,
            }
        } else {
            None
        };
        let mut instance = match asked {
            Some(status) => Instance::from_status(
                endpoint,
                None,
                &status,
                ws.metadata
                    .annotations
                    .get(crate::reconcile::BUCKET_ANNOTATION)
                    .cloned(),
                ws.metadata
                    .annotations
                    .get(crate::reconcile::MIRROR_ANNOTATION)
                    .cloned(),
            ),
            // Ready by its probe; what it would say of its sync is not known here.
            None => Instance::from_status(endpoint, None, &Value::Null, None, None),
        };
        instance.spec_hash = hash;
        Some(instance)
    }

    fn desired<'a>(
        ws: &'a Workspace,
        hash: &'a str,
        awake: bool,
        purge: bool,
        owner: Option<Value>,
    ) -> Desired<'a> {
        Desired {
            workspace: ws,
            spec_hash: hash,
            awake,
            purge,
            owner,
        }
    }
}

impl Driver for KubeDriver {
    async fn observe(&self, _key: &ObjectKey, ws: &Workspace) -> Option<Instance> {
        let sts = self
            .api::<StatefulSet>(ws)
            .get(&ws.metadata.name)
            .await
            .ok()?;
        self.ready(ws, &sts).await
    }

    async fn ensure(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
        hash: &str,
    ) -> Result<Instance, DriverError> {
        let owner = self.owner(key, ws).await?;
        let sts = self
            .write(key, &Self::desired(ws, hash, true, false, owner))
            .await?;
        match self.ready(ws, &sts).await {
            Some(instance) if instance.spec_hash == hash => Ok(instance),
            _ => {
                let status = sts.status.unwrap_or_default();
                Err(DriverError::NotReady {
                    workspace: key.to_string(),
                    reason: format!(
                        "StatefulSet {}: {} of 1 pod ready on the current revision",
                        ws.metadata.name,
                        status
                            .ready_replicas
                            .unwrap_or(0)
                            .min(status.updated_replicas.unwrap_or(0))
                    ),
                })
            }
        }
    }

    async fn stop(&self, key: &ObjectKey, ws: &Workspace, purge: bool) -> Result<(), DriverError> {
        // Read again at the next start: a workspace deleted and made again has a new one.
        self.tokens.forget(key);
        // A StatefulSet already gone (a workspace that never started) has nothing to stop.
        let existing = match self.api::<StatefulSet>(ws).get(&ws.metadata.name).await {
            Ok(s) => s,
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => return Err(api_error(key, "read the StatefulSet", &e)),
        };
        let hash = existing
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(workload::SPEC_HASH_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| {
                coditect_specs::spec_hash(&coditect_specs::Resource::Workspace(ws.clone()))
            });
        let owner = self.owner(key, ws).await?;
        // The whole desired object, at zero replicas: an apply that named only `replicas`
        // would give up every other field.
        let d = Self::desired(ws, &hash, false, purge, owner);
        self.apply::<StatefulSet>(key, ws, &workload::stateful_set(&d, &self.options))
            .await?;
        Ok(())
    }

    async fn reap_orphans(&self, _known: &[ObjectKey]) -> Vec<ObjectKey> {
        // What a Workspace object owns goes with it (owner references): Kubernetes'
        // garbage collector reaps, not the driver.
        Vec::new()
    }
}
