//! `coditect up`: the whole control plane in one process: store, controller with the
//! local driver, API server and gateway. Ctrl-C (or SIGTERM) stops the instances it runs
//! cleanly before exiting; a control plane killed outright leaves them running, and the
//! next `up` adopts them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coditect_specs::{Kind, Resource};
use tokio::sync::watch;

use crate::controller::Controller;
use crate::driver::Driver;
use crate::driver::local::{LocalConfig, LocalDriver};
use crate::reconcile::Context;
use crate::selector::LabelSelector;
use crate::server::{ServerState, router};
use crate::store::Store;

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// API and gateway address.
    pub listen: SocketAddr,
    /// Store, specs, logs and workspace folders live here.
    pub data_dir: PathBuf,
    /// The `coditect` binary that runs instances.
    pub runtime_command: PathBuf,
    /// How often converged workspaces are checked.
    pub resync: Duration,
}

/// Why `up` failed.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
    /// The address could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A started control plane.
#[derive(Debug)]
pub struct ControlPlane {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The store.
    pub store: Arc<Store>,
    driver: Arc<LocalDriver>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    controller: tokio::task::JoinHandle<()>,
}

/// Starts the control plane: binds, starts the controller and serves.
///
/// # Errors
/// [`UpError`].
pub async fn start(opts: UpOptions) -> Result<ControlPlane, UpError> {
    let store = Arc::new(Store::open(&opts.data_dir.join("controlplane.db"))?);
    let (driver, exits) = LocalDriver::new(LocalConfig {
        data_dir: opts.data_dir.clone(),
        runtime_command: opts.runtime_command.clone(),
    });
    let driver = Arc::new(driver);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| UpError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| UpError::Listen {
        addr: opts.listen,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let controller = Controller::new(Context {
        store: store.clone(),
        driver: driver.clone(),
        resync: opts.resync,
    });
    let synced = controller.synced();
    let controller = tokio::spawn(controller.run(exits, wait(stopped.clone())));
    let app = router(ServerState {
        store: store.clone(),
        synced,
        http: reqwest::Client::new(),
    });
    let shutdown = wait(stopped);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "API server failed");
        }
    });
    tracing::info!(%addr, data_dir = %opts.data_dir.display(), "control plane up");
    Ok(ControlPlane {
        addr,
        store,
        driver,
        stop,
        server,
        controller,
    })
}

async fn wait(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl ControlPlane {
    /// Stops serving and reconciling, then stops every instance cleanly (data kept).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.controller.await;
        let workspaces = self
            .store
            .list(Some(Kind::Workspace), None, &LabelSelector::default())
            .unwrap_or_default();
        for r in workspaces {
            if let Resource::Workspace(ws) = &r
                && let Err(e) = self.driver.stop(&r.key(), ws, false).await
            {
                tracing::warn!(workspace = %r.key(), error = %e, "stopping instance failed");
            }
        }
    }
}
