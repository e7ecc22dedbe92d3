//! The operator's store: the Kubernetes API. Reads come from a cache the watches keep
//! (as a kube reflector does), writes go to the API server — status with server-side
//! apply on the status subresource (field manager `coditect`: the operator owns status,
//! so a field it leaves out is removed), finalizers with a merge patch that names the
//! resourceVersion it read (a concurrent change is a conflict, retried by the reconcile
//! error policy). Every write is also put in the cache at once, so the next read of the
//! same reconcile sees it. Events are Kubernetes Events on the object.

use std::collections::BTreeMap;
use std::sync::RwLock;

use coditect_specs::{Kind, ObjectKey, Resource};
use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{FIELD_MANAGER, GROUP, VERSION, mapping};
use crate::error::StoreError;
use crate::resource_store::ResourceStore;
use crate::selector::LabelSelector;
use crate::store::{Change, ChangeType, RUNTIME_FINALIZER};

/// How Kubernetes names one of our kinds.
pub fn api_resource(kind: Kind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, kind.as_str()),
        kind.plural(),
    )
}

/// One cached object: ours, and the Kubernetes object it came from.
#[derive(Debug, Clone)]
struct Cached {
    resource: Resource,
    raw: Value,
}

/// The Kubernetes API as a [`ResourceStore`].
pub struct KubeStore {
    client: kube::Client,
    cache: RwLock<BTreeMap<ObjectKey, Cached>>,
    changes: broadcast::Sender<Change>,
    recorder: Recorder,
    /// The operator adds the runtime finalizer to a Workspace without it; the gateway,
    /// which only reads and wakes, does not.
    adds_finalizers: bool,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore").finish_non_exhaustive()
    }
}

fn api_error(what: &str, e: &kube::Error) -> StoreError {
    match e {
        kube::Error::Api(s) if s.code == 409 => {
            StoreError::Conflict(format!("{what}: {}", s.message))
        }
        _ => StoreError::Api(format!("{what}: {e}")),
    }
}

/// A resourceVersion as a number, when it is one (etcd's are); for "is this newer".
fn version(v: &Value) -> Option<u64> {
    v["metadata"]["resourceVersion"].as_str()?.parse().ok()
}

impl KubeStore {
    /// The operator's store over `client`; `instance` names this replica in its Events.
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        Self::reporting_as(client, "coditect-operator", instance, true)
    }

    /// The gateway's store: the same cache, Events reported as `coditect-gateway`, no
    /// finalizers added.
    pub fn for_gateway(client: kube::Client, instance: Option<String>) -> Self {
        Self::reporting_as(client, "coditect-gateway", instance, false)
    }

    fn reporting_as(
        client: kube::Client,
        controller: &str,
        instance: Option<String>,
        adds_finalizers: bool,
    ) -> Self {
        let (changes, _) = broadcast::channel(4096);
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: controller.into(),
                instance,
            },
        );
        KubeStore {
            client,
            cache: RwLock::new(BTreeMap::new()),
            changes,
            recorder,
            adds_finalizers,
        }
    }

    fn api(&self, kind: Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = api_resource(kind);
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    fn api_for(&self, key: &ObjectKey) -> Api<DynamicObject> {
        let ns = key.organization.as_deref().map(mapping::namespace);
        match key.kind {
            k if k.is_cluster_scoped() => self.api(key.kind, None),
            _ => self.api(key.kind, Some(ns.as_deref().unwrap_or_default())),
        }
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ObjectKey, Cached>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes an object a watch delivered (or a write returned) into the cache, unless the
    /// cache holds a newer one, and tells subscribers.
    pub fn observed(&self, raw: Value, deleted: bool) {
        let resource = match mapping::from_kubernetes(&raw) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an object that is not ours");
                return;
            }
        };
        let key = resource.key();
        let change = {
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            if deleted {
                cache.remove(&key);
                ChangeType::Deleted
            } else {
                let older = cache
                    .get(&key)
                    .and_then(|c| version(&c.raw))
                    .zip(version(&raw))
                    .is_some_and(|(held, new)| held > new);
                if older {
                    return;
                }
                let existed = cache
                    .insert(
                        key.clone(),
                        Cached {
                            resource: resource.clone(),
                            raw: raw.clone(),
                        },
                    )
                    .is_some();
                if existed {
                    ChangeType::Modified
                } else {
                    ChangeType::Added
                }
            }
        };
        let object = serde_json::to_value(&resource).unwrap_or(Value::Null);
        let _ = self.changes.send(Change {
            change,
            object,
            resource_version: version(&raw).unwrap_or(0),
        });
    }

    /// Reads `key` from the API server into the cache (after a 409: the cache was
    /// behind). A workspace gone is dropped from the cache.
    ///
    /// # Errors
    /// The API server's refusal.
    pub async fn refresh(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self.api_for(key).get(&key.name).await {
            Ok(o) => {
                self.observed(serde_json::to_value(&o).unwrap_or(Value::Null), false);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                if let Some(raw) = self.read_cache().get(key).map(|c| c.raw.clone()) {
                    self.observed(raw, true);
                }
                Ok(())
            }
            Err(e) => Err(api_error(&format!("read {key}"), &e)),
        }
    }

    /// Follows one kind until the watch ends; the first complete list is reported on
    /// `listed`. A Workspace seen without the runtime finalizer gets it (the invariant
    /// the embedded store keeps on apply).
    pub async fn watch(&self, kind: Kind, listed: tokio::sync::oneshot::Sender<()>) {
        let mut listed = Some(listed);
        let stream = watcher(self.api(kind, None), watcher::Config::default());
        futures_util::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let raw = serde_json::to_value(&o).unwrap_or(Value::Null);
                    if kind == Kind::Workspace && self.adds_finalizers {
                        self.keep_finalizer(&raw).await;
                    }
                    self.observed(raw, false);
                }
                Ok(watcher::Event::Delete(o)) => {
                    self.observed(serde_json::to_value(&o).unwrap_or(Value::Null), true);
                }
                Ok(watcher::Event::Init) => {}
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; it resumes"),
            }
        }
    }

    async fn keep_finalizer(&self, raw: &Value) {
        let meta = &raw["metadata"];
        let finalizers: Vec<&str> = meta["finalizers"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if meta["deletionTimestamp"].is_string() || finalizers.contains(&RUNTIME_FINALIZER) {
            return;
        }
        let Ok(resource) = mapping::from_kubernetes(raw) else {
            return;
        };
        let mut with = finalizers.clone();
        with.push(RUNTIME_FINALIZER);
        let patch =
            json!({"metadata": {"finalizers": with, "resourceVersion": meta["resourceVersion"]}});
        match self
            .api_for(&resource.key())
            .patch(
                meta["name"].as_str().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(o) => self.observed(serde_json::to_value(&o).unwrap_or(Value::Null), false),
            Err(e) => {
                tracing::warn!(error = %e, "adding the runtime finalizer failed; the next event retries")
            }
        }
    }

    /// The Team a workspace's defaults come from, as cached.
    fn with_team_defaults(&self, mut r: Resource) -> Resource {
        if let Resource::Workspace(w) = &r
            && let (Some(org), Some(team)) = (&w.metadata.organization, &w.metadata.team)
        {
            let key = ObjectKey {
                kind: Kind::Team,
                organization: Some(org.clone()),
                name: team.clone(),
            };
            let team = match self.read_cache().get(&key).map(|c| &c.resource) {
                Some(Resource::Team(t)) => Some(t.spec.clone()),
                _ => None,
            };
            coditect_specs::apply_defaults(&mut r, team.as_ref());
        }
        r
    }
}

impl ResourceStore for KubeStore {
    async fn get(&self, key: &ObjectKey) -> Result<Option<Resource>, StoreError> {
        let cached = self.read_cache().get(key).map(|c| c.resource.clone());
        Ok(cached.map(|r| self.with_team_defaults(r)))
    }

    async fn list(
        &self,
        kind: Option<Kind>,
        org: Option<&str>,
        selector: &LabelSelector,
    ) -> Result<Vec<Resource>, StoreError> {
        let found: Vec<Resource> = self
            .read_cache()
            .iter()
            .filter(|(k, _)| kind.is_none_or(|kind| k.kind == kind))
            .filter(|(k, c)| {
                org.is_none_or(|o| match k.kind {
                    Kind::Organization => k.name == o,
                    Kind::Migration => false,
                    _ => k.organization.as_deref() == Some(o),
                }) && selector.matches(&c.resource.metadata().labels)
            })
            .map(|(_, c)| c.resource.clone())
            .collect();
        Ok(found
            .into_iter()
            .map(|r| self.with_team_defaults(r))
            .collect())
    }

    async fn update<F>(&self, key: &ObjectKey, f: F) -> Result<Option<Resource>, StoreError>
    where
        F: FnOnce(&mut Resource) + Send,
    {
        let Some(before) = self.read_cache().get(key).cloned() else {
            return Ok(None);
        };
        let mut next = before.resource.clone();
        f(&mut next);
        let api = self.api_for(key);
        let name = key.name.clone();
        let mut raw = before.raw.clone();
        let status = |r: &Resource| {
            serde_json::to_value(r)
                .map(|v| v["status"].clone())
                .unwrap_or(Value::Null)
        };
        let (was, is) = (status(&before.resource), status(&next));
        if was != is {
            // The resourceVersion read is a precondition: a status written from a stale
            // cache (another writer — the gateway's wake, a replica that just lost the
            // lease — changed it since) is refused with 409, and the caller retries.
            let body = json!({
                "apiVersion": mapping::api_version(),
                "kind": key.kind.as_str(),
                "metadata": {"name": name, "resourceVersion": raw["metadata"]["resourceVersion"]},
                "status": if is.is_null() { json!({}) } else { is },
            });
            let written = api
                .patch_status(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(|e| api_error(&format!("write the status of {key}"), &e))?;
            raw = serde_json::to_value(&written).unwrap_or(Value::Null);
            self.observed(raw.clone(), false);
        }
        let finalizers = &next.metadata().finalizers;
        if *finalizers != before.resource.metadata().finalizers {
            let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": raw["metadata"]["resourceVersion"]}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(written) => {
                    let gone =
                        written.metadata.deletion_timestamp.is_some() && finalizers.is_empty();
                    self.observed(serde_json::to_value(&written).unwrap_or(Value::Null), gone);
                    if gone {
                        return Ok(None);
                    }
                }
                // The last finalizer gone, the object went with it.
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
                Err(e) => return Err(api_error(&format!("write the finalizers of {key}"), &e)),
            }
        }
        Ok(self.read_cache().get(key).map(|c| c.resource.clone()))
    }

    async fn count_awake(&self, org: &str, except: &str) -> Result<u32, StoreError> {
        let n = self
            .read_cache()
            .iter()
            .filter(|(k, _)| {
                k.kind == Kind::Workspace
                    && k.organization.as_deref() == Some(org)
                    && k.name != except
            })
            .filter(|(_, c)| match &c.resource {
                Resource::Workspace(w) => w.status.as_ref().is_some_and(|s| {
                    s.sleep.is_none()
                        && matches!(s.phase.as_deref(), Some("Starting" | "Waking" | "Running"))
                }),
                _ => false,
            })
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn record_event(&self, key: &ObjectKey, event_type: &str, reason: &str, message: &str) {
        let Some(raw) = self.read_cache().get(key).map(|c| c.raw.clone()) else {
            return;
        };
        let Ok(object) = serde_json::from_value::<DynamicObject>(raw) else {
            return;
        };
        use kube::Resource as _;
        let reference = object.object_ref(&api_resource(key.kind));
        let event = Event {
            type_: if event_type == "Warning" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(message.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(object = %key, error = %e, "recording an event failed");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
