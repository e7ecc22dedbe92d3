//! `coditect operator`: the control plane's reconcilers with the Kubernetes API as their
//! store and StatefulSets as their driver. Several replicas may run; a Lease elects the
//! one that reconciles (the others wait, ready to take over). `/healthz` answers while the
//! process runs, `/metrics` says whether this replica leads and what it has seen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use coditect_specs::{Kind, ObjectKey};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use kube::runtime::watcher;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::mpsc;

use super::WORKSPACE_LABEL;
use super::driver::KubeDriver;
use super::store::KubeStore;
use super::tokens::SecretTokens;
use super::workload::WorkloadOptions;
use crate::controller::Controller;
use crate::reconcile::Context;

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// How workspaces run.
    pub workload: WorkloadOptions,
    /// Where `/healthz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// The namespace of the leader-election Lease (the operator's own).
    pub namespace: String,
    /// This replica's name in the Lease and in Events (its pod name).
    pub identity: String,
    /// How often every object is reconciled again.
    pub resync: Duration,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// No Kubernetes client could be configured (no in-cluster account, no kubeconfig).
    #[error("cannot reach Kubernetes: {0}")]
    Client(String),
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(String),
    /// The health and metrics address could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What `/metrics` reports.
#[derive(Debug, Default)]
struct Gauges {
    leader: AtomicBool,
    workspaces: AtomicU64,
    changes: AtomicU64,
}

impl Gauges {
    fn render(&self) -> String {
        format!(
            "# HELP coditect_operator_leader Whether this replica holds the Lease and reconciles.\n\
             # TYPE coditect_operator_leader gauge\n\
             coditect_operator_leader {}\n\
             # HELP coditect_operator_workspaces Workspace objects in the cache.\n\
             # TYPE coditect_operator_workspaces gauge\n\
             coditect_operator_workspaces {}\n\
             # HELP coditect_operator_changes_total Object changes seen by the watches.\n\
             # TYPE coditect_operator_changes_total counter\n\
             coditect_operator_changes_total {}\n",
            u8::from(self.leader.load(Ordering::Relaxed)),
            self.workspaces.load(Ordering::Relaxed),
            self.changes.load(Ordering::Relaxed),
        )
    }
}

/// What the leading replica hands to work that runs beside its reconcilers.
#[derive(Debug, Clone)]
pub struct Leader {
    /// The store the reconcilers use (the watch cache).
    pub store: Arc<KubeStore>,
    /// The instances' tokens, as the driver reads them.
    pub tokens: Arc<SecretTokens>,
    /// Asks the reconciler to look at a workspace now.
    pub nudge: mpsc::UnboundedSender<ObjectKey>,
}

/// Work the leader runs beside the reconcilers, stopped when it stops leading (the CLI
/// passes the auto-sleeper, which lives in a crate above this one).
pub type Beside = Arc<dyn Fn(Leader) -> BoxFuture<'static, ()> + Send + Sync>;

/// Runs the operator until `shutdown` resolves, with `beside` running while it leads.
///
/// # Errors
/// No client, no Lease, or the health address taken.
pub async fn run(
    opts: OperatorOptions,
    beside: Option<Beside>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), OperatorError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| OperatorError::Client(e.to_string()))?;
    let gauges = Arc::new(Gauges::default());
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| OperatorError::Listen {
            addr: opts.listen,
            source,
        })?;
    let g = gauges.clone();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || async move { g.render() }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "health server stopped");
        }
    });
    tracing::info!(listen = %opts.listen, identity = %opts.identity, "operator started; waiting for the lease");
    let lease = LeaseManagerBuilder::new(client.clone(), "coditect-operator")
        .with_namespace(&opts.namespace)
        .with_identity(&opts.identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .map_err(|e| OperatorError::Lease(e.to_string()))?;
    let (mut leading, lease_task) = lease.watch().await;
    tokio::pin!(shutdown);
    loop {
        if *leading.borrow_and_update() {
            gauges.leader.store(true, Ordering::Relaxed);
            tracing::info!("leading: reconciling");
            let lost = async {
                while leading.changed().await.is_ok() {
                    if !*leading.borrow() {
                        return;
                    }
                }
            };
            tokio::select! {
                () = lead(client.clone(), &opts, gauges.clone(), beside.clone()) => {}
                () = lost => tracing::warn!("lost the lease; standing by"),
                () = &mut shutdown => break,
            }
            gauges.leader.store(false, Ordering::Relaxed);
        } else {
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { break },
                () = &mut shutdown => break,
            }
        }
    }
    // Dropping the receiver releases the Lease, so another replica takes over at once.
    drop(leading);
    let _ = lease_task.await;
    tracing::info!("operator stopped");
    Ok(())
}

/// Reconciles while this replica leads: watches, then the controller. Everything it
/// starts is in one `JoinSet`, so it all stops when leading stops (the future is dropped).
async fn lead(
    client: kube::Client,
    opts: &OperatorOptions,
    gauges: Arc<Gauges>,
    beside: Option<Beside>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let store = Arc::new(KubeStore::new(client.clone(), Some(opts.identity.clone())));
    let mut listed = Vec::new();
    // Migrations are reconciled by the embedded control plane only (their reconciler
    // needs the gateway's user routes): the operator does not watch them.
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Migration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        listed.push(rx);
        let s = store.clone();
        tasks.spawn(async move { s.watch(kind, tx).await });
    }
    for rx in listed {
        let _ = rx.await;
    }
    let driver = Arc::new(KubeDriver::new(client.clone(), opts.workload.clone(), true));
    let tokens = driver.tokens();
    let controller = Controller::new(Context {
        store: store.clone(),
        driver,
        resync: opts.resync,
        admission: tokio::sync::Mutex::new(()),
        audit: None,
        delegated: Vec::new(),
    });
    // A pod that becomes ready, crashes or goes: look at its workspace again.
    let (nudge, nudges) = mpsc::unbounded_channel();
    tasks.spawn(follow_pods(client, nudge.clone()));
    if let Some(beside) = beside {
        tasks.spawn(beside(Leader {
            store: store.clone(),
            tokens,
            nudge: nudge.clone(),
        }));
    }
    let mut changes = crate::resource_store::ResourceStore::subscribe(&*store);
    let g = gauges.clone();
    let s = store.clone();
    tasks.spawn(async move {
        // A sleep or wake is a wish in the status (`kubectl patch --subresource=status`,
        // the quota): not a spec change, so the controller is nudged when it flips.
        let mut wished: std::collections::HashMap<ObjectKey, bool> = Default::default();
        while let Ok(c) = changes.recv().await {
            g.changes.fetch_add(1, Ordering::Relaxed);
            if let Ok(r @ coditect_specs::Resource::Workspace(_)) =
                coditect_specs::Resource::from_trusted_json(c.object.clone())
            {
                let key = r.key();
                let sleep = !c.object["status"]["sleep"].is_null();
                if wished
                    .insert(key.clone(), sleep)
                    .is_some_and(|was| was != sleep)
                {
                    let _ = nudge.send(key);
                }
            }
            let n = crate::resource_store::ResourceStore::list(
                &*s,
                Some(Kind::Workspace),
                None,
                &crate::selector::LabelSelector::default(),
            )
            .await
            .map_or(0, |l| l.len());
            g.workspaces.store(n as u64, Ordering::Relaxed);
        }
    });
    let (_exits_tx, exits) = mpsc::unbounded_channel();
    controller.run(exits, nudges, std::future::pending()).await;
}

/// Nudges a workspace whenever its StatefulSet's status changes.
async fn follow_pods(client: kube::Client, nudge: mpsc::UnboundedSender<ObjectKey>) {
    let api: Api<StatefulSet> = Api::all(client);
    let config = watcher::Config::default().labels(WORKSPACE_LABEL);
    let stream = watcher(api, config);
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let Ok(watcher::Event::Apply(sts) | watcher::Event::Delete(sts)) = event else {
            continue;
        };
        let meta = &sts.metadata;
        let (Some(ns), Some(name)) = (
            meta.namespace.clone(),
            meta.labels
                .as_ref()
                .and_then(|l| l.get(WORKSPACE_LABEL))
                .cloned(),
        ) else {
            continue;
        };
        let _ = nudge.send(ObjectKey {
            kind: Kind::Workspace,
            organization: Some(ns),
            name,
        });
    }
}
