//! Runtime drivers: what starts, stops and observes workspace instances. Reconcilers talk
//! to the [`Driver`] trait only, so the Kubernetes driver can come without touching them.

pub mod local;

use std::future::Future;

use coditect_specs::{ObjectKey, Workspace};
use serde::Serialize;

use crate::error::DriverError;

/// A running, healthy instance as a driver sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// Where its API answers, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its process id (local driver).
    pub pid: Option<u32>,
    /// The spec hash it runs.
    pub spec_hash: String,
    /// RFC 3339 time its session expires.
    pub session_expires_at: Option<String>,
    /// Seconds its bucket is behind (None when it does not sync).
    pub sync_lag_seconds: Option<f64>,
    /// The bucket it syncs to.
    pub bucket: Option<String>,
    /// The bucket's last failure, while shipping fails (unsaved work stays local).
    pub sync_error: Option<String>,
    /// What keeps it awake, as the instance reports it (`status.activity`).
    pub activity: Option<coditect_runtime::activity::ActivityFacts>,
}

/// Each running instance's own API token, which the gateway presents on a caller's
/// behalf once access control has let the caller in (users never hold these tokens).
pub trait InstanceTokens: Send + Sync + std::fmt::Debug + 'static {
    /// The token of `key`'s instance, if one is known to run.
    fn token(&self, key: &ObjectKey) -> Option<String>;
}

/// Starts, stops and observes instances.
pub trait Driver: Send + Sync + 'static {
    /// The healthy instance of `key`, if one runs (adopting one left by an earlier
    /// control plane).
    fn observe(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
    ) -> impl Future<Output = Option<Instance>> + Send;

    /// Makes sure an instance runs `ws` with spec hash `hash`: starts one if none runs,
    /// replaces one that runs another spec (the data folder stays), and returns it.
    fn ensure(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
        hash: &str,
    ) -> impl Future<Output = Result<Instance, DriverError>> + Send;

    /// Stops the instance cleanly (it flushes its event log and databases), and with
    /// `purge` removes its data folder too.
    fn stop(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
        purge: bool,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Stops instances whose workspace is not in `known`.
    fn reap_orphans(&self, known: &[ObjectKey]) -> impl Future<Output = Vec<ObjectKey>> + Send;
}
