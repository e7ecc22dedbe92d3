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
    /// Another control plane owns the data dir.
    #[error(
        "data dir {dir} is in use by another control plane ({holder}); stop it first, or pass another --data-dir"
    )]
    DataDirInUse {
        /// The data dir.
        dir: PathBuf,
        /// Who holds it, as its lock file says (pid and address).
        holder: String,
    },
    /// The data dir or its lock file could not be created.
    #[error("data dir {dir}: {source}")]
    DataDir {
        /// The data dir.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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
    /// The data dir's lock, held for the control plane's life: one control plane per
    /// data dir (a second would re-apply, roll and stop the first one's instances).
    _owner: std::fs::File,
}

/// Takes the data dir for this process: `controlplane.lock`, locked and naming the holder.
fn own_data_dir(dir: &std::path::Path) -> Result<std::fs::File, UpError> {
    use std::io::{Read, Seek, Write};
    let io = |source| UpError::DataDir {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("controlplane.lock"))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(UpError::DataDirInUse {
                dir: dir.to_path_buf(),
                holder: holder.trim().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "pid {}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// Starts the control plane: binds, starts the controller and serves.
///
/// # Errors
/// [`UpError`].
pub async fn start(opts: UpOptions) -> Result<ControlPlane, UpError> {
    let mut owner = own_data_dir(&opts.data_dir)?;
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
    {
        use std::io::Write;
        let _ = write!(owner, ", listening on http://{addr}");
    }
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
        coditect_runtime::api::serve(listener, app, shutdown).await;
    });
    tracing::info!(%addr, data_dir = %opts.data_dir.display(), "control plane up");
    Ok(ControlPlane {
        addr,
        store,
        driver,
        stop,
        server,
        controller,
        _owner: owner,
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
