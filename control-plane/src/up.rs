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

use crate::access::Access;
use crate::access::rate::RateLimit;
use crate::access::tls::TlsFiles;
use crate::client::config;
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
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Allow a non-loopback address without TLS.
    pub insecure: bool,
    /// Requests per second per token (cluster admins are exempt).
    pub rate_limit: RateLimit,
    /// Reconcilers of kinds that live above the control plane (the binary plugs in the
    /// Migration's); a kind without one is stored but not acted on.
    pub delegated: Vec<crate::delegated::DelegatedFactory>,
}

impl UpOptions {
    /// Options for `listen` and `data_dir` with everything else as `up` defaults it
    /// (resync every 10 s, no TLS, the default rate limit).
    pub fn new(listen: SocketAddr, data_dir: PathBuf, runtime_command: PathBuf) -> Self {
        UpOptions {
            listen,
            data_dir,
            runtime_command,
            resync: Duration::from_secs(10),
            tls: None,
            insecure: false,
            rate_limit: RateLimit::default(),
            delegated: Vec::new(),
        }
    }
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
    /// Access control could not be set up (tokens, audit trail, TLS).
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    /// The admin credential could not be written.
    #[error("write the admin credential: {0}")]
    AdminConfig(#[from] crate::client::config::ConfigError),
    /// A non-loopback address without TLS would send tokens in the clear.
    #[error(
        "refusing to listen on {addr} without TLS: tokens would cross the network in the clear; pass --tls-cert and --tls-key, or --insecure if something else encrypts the traffic"
    )]
    Insecure {
        /// The address.
        addr: SocketAddr,
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
    /// `http://ADDR` or `https://ADDR`.
    pub server: String,
    /// The cluster admin's token (also in `admin_config`).
    pub admin_token: String,
    /// `<data>/admin.yaml`: the client config holding the admin credential (mode 0600).
    pub admin_config: PathBuf,
    /// The store.
    pub store: Arc<Store>,
    /// Asks the controller to reconcile a workspace now (after a status-only wish).
    pub nudge: tokio::sync::mpsc::UnboundedSender<coditect_specs::ObjectKey>,
    /// Each instance's token.
    pub instances: Arc<dyn crate::driver::InstanceTokens>,
    /// Tokens, roles and the audit trail.
    pub access: Arc<Access>,
    /// Where each migrating user's `/u/{login}/…` goes (the migration sets it).
    pub users: Arc<crate::gateway::users::UserRoutes>,
    driver: Arc<LocalDriver>,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
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
    if !opts.listen.ip().is_loopback() && opts.tls.is_none() && !opts.insecure {
        return Err(UpError::Insecure { addr: opts.listen });
    }
    let tls = opts
        .tls
        .as_ref()
        .map(crate::access::tls::acceptor)
        .transpose()?;
    let mut owner = own_data_dir(&opts.data_dir)?;
    let store = Arc::new(Store::open(&opts.data_dir.join("controlplane.db"))?);
    let access = Arc::new(Access::open(&opts.data_dir, opts.rate_limit)?);
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
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = format!("{scheme}://{addr}");
    {
        use std::io::Write;
        let _ = write!(owner, ", listening on {server}");
    }
    let admin_config = config::admin_config_path(&opts.data_dir);
    let admin_token = write_admin_config(&access, &admin_config, &server, opts.tls.as_ref())?;
    let (stop, stopped) = watch::channel(false);
    let (nudge, nudges) = tokio::sync::mpsc::unbounded_channel();
    let users = Arc::new(crate::gateway::users::UserRoutes::persisted(store.clone())?);
    let plane = crate::delegated::Plane {
        store: store.clone(),
        instances: driver.clone(),
        users: users.clone(),
        nudge: nudge.clone(),
    };
    let controller = Controller::new(Context {
        store: store.clone(),
        driver: driver.clone(),
        resync: opts.resync,
        admission: tokio::sync::Mutex::new(()),
        audit: Some(access.audit.clone()),
        delegated: opts.delegated.iter().map(|f| (f.0)(&plane)).collect(),
    });
    let synced = controller.synced();
    let controller = tokio::spawn(controller.run(exits, nudges, wait(stopped.clone())));
    let app = router(ServerState {
        store: store.clone(),
        synced,
        http: reqwest::Client::new(),
        access: access.clone(),
        instances: driver.clone(),
        nudge: nudge.clone(),
        users: users.clone(),
    });
    let shutdown = wait(stopped);
    let serving = tokio::spawn(async move {
        coditect_runtime::api::serve_with(listener, tls, app, shutdown).await;
    });
    tracing::info!(%server, data_dir = %opts.data_dir.display(), "control plane up");
    Ok(ControlPlane {
        addr,
        server,
        admin_token,
        admin_config,
        store,
        nudge,
        instances: driver.clone(),
        access,
        users,
        driver,
        stop,
        serving,
        controller,
        _owner: owner,
    })
}

/// Writes `<data>/admin.yaml` (mode 0600) with the cluster admin's context for
/// `server`, keeping the token it already holds while that token is valid. Returns the
/// token.
fn write_admin_config(
    access: &Access,
    path: &std::path::Path,
    server: &str,
    tls: Option<&TlsFiles>,
) -> Result<String, UpError> {
    let existing = config::ClientConfig::load(path)
        .ok()
        .flatten()
        .and_then(|c| c.context(ADMIN_CONTEXT).and_then(|c| c.token.clone()));
    let (token, new) = access.tokens.bootstrap(existing.as_deref())?;
    if new {
        tracing::info!(path = %path.display(), "wrote a new admin credential");
    }
    let mut cfg = config::ClientConfig::default();
    cfg.set_context(config::Context {
        name: ADMIN_CONTEXT.to_string(),
        server: server.to_string(),
        token: Some(token.clone()),
        // A self-signed certificate is its own authority; a CA-signed one verifies
        // against the system's roots as well as itself.
        certificate_authority: tls.map(|t| std::path::absolute(&t.cert).unwrap_or(t.cert.clone())),
    });
    cfg.current_context = Some(ADMIN_CONTEXT.to_string());
    cfg.save(path)?;
    Ok(token)
}

/// The context name in `admin.yaml`.
pub const ADMIN_CONTEXT: &str = "admin@local";

async fn wait(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl ControlPlane {
    /// Stops serving and reconciling, then stops every instance cleanly (data kept).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.serving.await;
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
