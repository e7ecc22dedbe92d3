//! Running an instance as a process: open the workspace, listen, announce the address,
//! serve until SIGTERM or Ctrl-C, then stop cleanly. The `coditect workspace-runtime`
//! command is a thin wrapper over [`serve`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::json;

use crate::layout::Layout;
use crate::priority::{BackgroundRuntime, PriorityError, off_serving};
use crate::shutdown::Shutdown;
use crate::sync::Bucket;
use crate::sync::replicator::{Replicator, SyncError, SyncTarget};
use crate::sync::seal::Seal;
use crate::workspace::{OpenError, WorkspaceRuntime, load_spec};

/// Where and what to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The Workspace manifest (one document; defaults are filled in).
    pub spec: PathBuf,
    /// The storage root the workspace folder lives under.
    pub root: PathBuf,
    /// The API address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The organization's bucket (`file:///…` or `gs://…`); none: no sync.
    pub bucket: Option<String>,
    /// Its hot mirror (`s3://…`, or another bucket URL); how to reach an `s3://` one is
    /// the spec's `coditect.io/mirror-access` annotation, else the AWS variables.
    pub mirror: Option<String>,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The workspace could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The sync thread could not start.
    #[error("sync: {0}")]
    Sync(PriorityError),
    /// The address could not be bound or served.
    #[error("serve on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Opens the workspace and serves its API until a shutdown signal.
///
/// Once listening, prints one JSON line to stdout, `{"ready":true,"addr":…,"pid":…,
/// "root":…}`, and writes the same to `runtime.json` in the workspace folder, so a parent
/// process (or a control plane restarted later) can find the instance.
///
/// # Errors
/// [`ServeError`].
pub async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    // Parsing and validating the spec (its JSON Schema compiled) is start-up work too.
    let path = opts.spec.clone();
    let spec = off_serving("start-up", move || load_spec(&path))
        .await
        .map_err(OpenError::StartUp)??;
    let target = match &opts.bucket {
        Some(url) => {
            let bucket = Bucket::open(url)
                .await
                .map_err(|e| OpenError::Restore(e.to_string()))?;
            let m = &spec.metadata;
            let prefix = Layout::relative(
                m.organization.as_deref().unwrap_or_default(),
                m.team.as_deref().unwrap_or_default(),
                &spec.spec.owner,
                &m.name,
            );
            Some(SyncTarget {
                bucket,
                prefix: prefix.display().to_string(),
            })
        }
        None => None,
    };
    let mirror = match (&opts.mirror, &target) {
        (Some(url), Some(t)) => Some(SyncTarget {
            bucket: open_mirror(url, &spec, &opts.root).await?,
            prefix: t.prefix.clone(),
        }),
        _ => None,
    };
    let ws = WorkspaceRuntime::open_mirrored(spec, &opts.root, target, mirror).await?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: opts.listen,
        source,
    })?;
    // Take SIGTERM and SIGINT before saying ready: a stop sent right after the ready line
    // must be a clean stop, not the default action (death by the signal).
    let mut shutdown = Shutdown::install();
    // Sync runs on a thread of its own whose blocking work (the uploads, digests and
    // compression of the first snapshot and of every round) is lowered, so a mass start's
    // uploads do not queue the serving requests.
    let (sync_tx, sync_rx) = tokio::sync::watch::channel(false);
    let sync = match ws.sync_target.clone() {
        Some(t) => {
            let rt = ws.clone();
            Some(
                BackgroundRuntime::spawn("sync", move || replicate(rt, t, wait_for(sync_rx)))
                    .map_err(ServeError::Sync)?,
            )
        }
        None => None,
    };
    let ready = json!({"ready": true, "addr": addr.to_string(), "pid": std::process::id(), "root": ws.root()});
    if let Err(e) = std::fs::write(ws.layout.endpoint_file(), ready.to_string()) {
        tracing::warn!(error = %e, "could not write runtime.json");
    }
    // A parent that stopped reading (it gave up on this start) is no reason to panic: the
    // announcement is in runtime.json too.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{ready}").and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "could not announce readiness on stdout");
        }
    }
    tracing::info!(%addr, workspace = %ws.spec.metadata.name, "workspace runtime listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(ws.clone().run_background(wait_for(stop_rx.clone())));
    let agents = ws.clone().start_agents();
    let app = crate::api::router(ws.clone());
    crate::api::serve(listener, app, async move {
        shutdown.wait().await;
        let _ = stop_tx.send(true);
    })
    .await;
    let _ = background.await;
    for a in &agents {
        a.abort();
    }
    for a in agents {
        let _ = a.await;
    }
    // The stop event first, then the final sync round ships it, then the checkpoints.
    if let Err(e) = ws.mark_stopped().await {
        tracing::error!(error = %e, "clean stop failed");
    }
    let _ = sync_tx.send(true);
    let seal = match sync {
        Some(sync) => sync.join().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "sync ended without a final round");
            None
        }),
        None => None,
    };
    ws.checkpoint_databases();
    // Everything is in the bucket: say under which manifest, for a disk-freeing sleep.
    if let Some(seal) = seal {
        let written = serde_json::to_vec(&seal)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(ws.layout.seal_file(), b));
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write sealed.json");
        }
    }
    let _ = std::fs::remove_file(ws.layout.endpoint_file());
    tracing::info!("workspace runtime stopped");
    Ok(())
}

/// Opens the mirror at `url` with the access the spec's annotation names.
async fn open_mirror(
    url: &str,
    spec: &coditect_specs::Workspace,
    root: &std::path::Path,
) -> Result<Bucket, OpenError> {
    let access = match spec
        .metadata
        .annotations
        .get(coditect_specs::MIRROR_ACCESS_ANNOTATION)
    {
        Some(json) => Some(
            serde_json::from_str::<coditect_specs::MirrorAccess>(json).map_err(|e| {
                OpenError::Restore(format!(
                    "annotation {}: {e}",
                    coditect_specs::MIRROR_ACCESS_ANNOTATION
                ))
            })?,
        ),
        None => None,
    };
    crate::sync::mirror::open(url, access.as_ref(), &crate::secrets::folder(root))
        .await
        .map_err(|e| OpenError::Restore(format!("mirror {url}: {e}")))
}

/// Keeps the workspace synced until `shutdown`: takes ownership in the bucket (retrying
/// while the bucket cannot be reached; the lag says so meanwhile), then runs rounds.
async fn replicate(
    ws: std::sync::Arc<WorkspaceRuntime>,
    target: SyncTarget,
    shutdown: impl std::future::Future<Output = ()>,
) -> Option<Seal> {
    tokio::pin!(shutdown);
    let since = crate::clock::now_ms();
    let replicator = loop {
        match Replicator::start(ws.clone(), target.clone(), ws.sync.clone()).await {
            Ok(r) => break r,
            Err(e @ (SyncError::Fenced(_) | SyncError::Diverged { .. })) => {
                tracing::error!(error = %e, "not syncing: the workspace belongs to another instance");
                ws.sync.fail_to_start(since, e.to_string());
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync cannot start yet; retrying");
                let text = e.to_string();
                ws.sync.fail_to_start(since, text);
                tokio::select! {
                    () = &mut shutdown => return None,
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut replicator = replicator;
    let mirror = ws
        .mirror_target
        .clone()
        .map(|m| tokio::spawn(replicator.mirror(m.bucket).run()));
    let seal = replicator.run(shutdown).await;
    // The mirror's last attempt at the final manifest (bounded) before the process goes.
    if let Some(m) = mirror {
        let _ = m.await;
    }
    seal
}

async fn wait_for(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
