//! Runtime drivers: what starts, stops and observes workspace instances. Reconcilers talk
//! to the [`Driver`] trait only, so the Kubernetes driver can come without touching them.

pub mod local;
pub mod start_budget;

pub use crate::kubernetes::driver as kubernetes;

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
    /// The bucket's hot mirror, when it has one.
    pub mirror: Option<String>,
    /// Seconds the mirror is behind the bucket.
    pub mirror_lag_seconds: Option<f64>,
    /// Whether the bucket holds a complete generation of it (a restore would work): the
    /// instance owns the workspace there and its first snapshots are in.
    pub restorable: bool,
    /// The bucket's last failure, while shipping fails (unsaved work stays local).
    pub sync_error: Option<String>,
    /// What keeps it awake, as the instance reports it (`status.activity`).
    pub activity: Option<coditect_runtime::activity::ActivityFacts>,
}

impl Instance {
    /// An instance at `endpoint` as its `GET /v1/status` describes it. `bucket` and
    /// `mirror` are what it was started with: until its first sync round it does not
    /// report them itself.
    pub fn from_status(
        endpoint: String,
        pid: Option<u32>,
        status: &serde_json::Value,
        bucket: Option<String>,
        mirror: Option<String>,
    ) -> Self {
        let reported = status["sync"]["bucket"].as_str().filter(|b| !b.is_empty());
        Instance {
            endpoint,
            pid,
            spec_hash: status["specHash"].as_str().unwrap_or_default().to_string(),
            session_expires_at: status["session"]["expiresAt"].as_str().map(str::to_string),
            sync_lag_seconds: status["sync"]["lagSeconds"].as_f64(),
            restorable: reported.is_some(),
            bucket: reported.map(str::to_string).or(bucket),
            mirror: status["sync"]["mirror"]["bucket"]
                .as_str()
                .map(str::to_string)
                .or(mirror),
            mirror_lag_seconds: status["sync"]["mirror"]["lagSeconds"].as_f64(),
            sync_error: status["sync"]["lastError"].as_str().map(str::to_string),
            activity: serde_json::from_value(status["activity"].clone()).ok(),
        }
    }
}

/// Asks an instance for its status (marked as a probe, so it is not activity); `None`
/// unless it answers as the workspace `name`.
pub async fn instance_status(
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    name: &str,
) -> Option<serde_json::Value> {
    let resp = http
        .get(format!("{endpoint}/v1/status"))
        .bearer_auth(token)
        .header(coditect_runtime::activity::PROBE_HEADER, "1")
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = resp.json().await.ok()?;
    (body["workspace"] == name).then_some(body)
}

/// Each running instance's own API token, which the gateway presents on a caller's
/// behalf once access control has let the caller in (users never hold these tokens).
pub trait InstanceTokens: Send + Sync + std::fmt::Debug + 'static {
    /// The token of `key`'s instance, if one is known to run.
    fn token(&self, key: &ObjectKey) -> Option<String>;

    /// The gateway is forwarding a request to `key`'s instance (a driver that paces its
    /// starts by whether workspaces are served listens; the others need not).
    fn forwarding(&self, _key: &ObjectKey) {}
}

/// What a [`Driver::free_disk`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRelease {
    /// The bucket copy was verified (this many objects) and the folder removed (this many
    /// bytes).
    Freed {
        /// Objects checked in the bucket.
        objects: usize,
        /// Bytes removed from the local disk.
        bytes: u64,
    },
    /// Nothing to free: the folder is gone already.
    AlreadyFree,
    /// The folder stays, for this reason.
    Kept(String),
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

    /// Frees the local disk of `key`'s stopped instance once its bucket copy is verified
    /// against the seal its clean stop left (the next start restores from the bucket).
    /// A driver that keeps no local disk keeps everything.
    fn free_disk(
        &self,
        key: &ObjectKey,
        ws: &Workspace,
    ) -> impl Future<Output = DiskRelease> + Send {
        let _ = (key, ws);
        async { DiskRelease::Kept("this driver does not free disks".into()) }
    }

    /// Stops instances whose workspace is not in `known`.
    fn reap_orphans(&self, known: &[ObjectKey]) -> impl Future<Output = Vec<ObjectKey>> + Send;
}
