//! What the reconcilers need of a store, as a trait: the embedded control plane keeps its
//! objects in SQLite ([`Store`]); the Kubernetes operator keeps them in the API server.
//! The reconcile rules are written once, against [`ResourceStore`].

use std::future::Future;

use coditect_specs::{Kind, ObjectKey, Resource};
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::selector::LabelSelector;
use crate::store::{Change, Store};

/// Reading objects, writing their status and server metadata, and following changes.
pub trait ResourceStore: Send + Sync + std::fmt::Debug + 'static {
    /// One object, `None` when there is none.
    fn get(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Option<Resource>, StoreError>> + Send;

    /// Objects of a kind (all when `None`), optionally of one organization, matching
    /// `selector`.
    fn list(
        &self,
        kind: Option<Kind>,
        org: Option<&str>,
        selector: &LabelSelector,
    ) -> impl Future<Output = Result<Vec<Resource>, StoreError>> + Send;

    /// Changes the status (or server metadata: finalizers) of an object with `f`, leaving
    /// its spec alone. Returns the object after the change, `None` if it is gone.
    fn update<F>(
        &self,
        key: &ObjectKey,
        f: F,
    ) -> impl Future<Output = Result<Option<Resource>, StoreError>> + Send
    where
        F: FnOnce(&mut Resource) + Send;

    /// Removes a finalizer; an object being deleted disappears with its last one.
    fn remove_finalizer(
        &self,
        key: &ObjectKey,
        finalizer: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            self.update(key, |r| {
                r.metadata_mut().finalizers.retain(|f| f != finalizer);
            })
            .await?;
            Ok(())
        }
    }

    /// Workspaces of `org` awake or being started (phase Starting, Waking or Running, no
    /// sleep wish), `except` one.
    fn count_awake(
        &self,
        org: &str,
        except: &str,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Workspaces of `org` Running with no sleep wish.
    fn list_running(
        &self,
        org: &str,
    ) -> impl Future<Output = Result<Vec<Resource>, StoreError>> + Send {
        async move {
            Ok(self
                .list(Some(Kind::Workspace), Some(org), &LabelSelector::default())
                .await?
                .into_iter()
                .filter(|r| match r {
                    Resource::Workspace(w) => w.status.as_ref().is_some_and(|s| {
                        s.sleep.is_none() && s.phase.as_deref() == Some("Running")
                    }),
                    _ => false,
                })
                .collect())
        }
    }

    /// Records a reconcile event on the object (best effort: a failure is logged).
    fn record_event(
        &self,
        key: &ObjectKey,
        event_type: &str,
        reason: &str,
        message: &str,
    ) -> impl Future<Output = ()> + Send;

    /// Live changes from now on.
    fn subscribe(&self) -> broadcast::Receiver<Change>;
}

impl ResourceStore for Store {
    async fn get(&self, key: &ObjectKey) -> Result<Option<Resource>, StoreError> {
        Store::get(self, key)
    }

    async fn list(
        &self,
        kind: Option<Kind>,
        org: Option<&str>,
        selector: &LabelSelector,
    ) -> Result<Vec<Resource>, StoreError> {
        Store::list(self, kind, org, selector)
    }

    async fn update<F>(&self, key: &ObjectKey, f: F) -> Result<Option<Resource>, StoreError>
    where
        F: FnOnce(&mut Resource) + Send,
    {
        Store::update(self, key, f)
    }

    async fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) -> Result<(), StoreError> {
        Store::remove_finalizer(self, key, finalizer)
    }

    async fn count_awake(&self, org: &str, except: &str) -> Result<u32, StoreError> {
        Store::count_awake(self, org, except)
    }

    async fn list_running(&self, org: &str) -> Result<Vec<Resource>, StoreError> {
        Store::list_running(self, org)
    }

    async fn record_event(&self, key: &ObjectKey, event_type: &str, reason: &str, message: &str) {
        Store::record_event(self, key, event_type, reason, message);
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        Store::subscribe(self)
    }
}
