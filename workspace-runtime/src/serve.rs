//! Running an instance as a process: open the workspace, listen, announce the address,
//! serve until SIGTERM or Ctrl-C, then stop cleanly. The `coditect workspace-runtime`
//! command is a thin wrapper over [`serve`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::json;

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
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The workspace could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
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
    let spec = load_spec(&opts.spec)?;
    let ws = WorkspaceRuntime::open(spec, &opts.root).await?;
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
    let ready = json!({"ready": true, "addr": addr.to_string(), "pid": std::process::id(), "root": ws.root()});
    if let Err(e) = std::fs::write(ws.layout.endpoint_file(), ready.to_string()) {
        tracing::warn!(error = %e, "could not write runtime.json");
    }
    println!("{ready}");
    tracing::info!(%addr, workspace = %ws.spec.metadata.name, "workspace runtime listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(ws.clone().run_background(wait_for(stop_rx.clone())));
    let agents = ws.clone().start_agents();
    let app = crate::api::router(ws.clone());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    server
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let _ = background.await;
    for a in &agents {
        a.abort();
    }
    for a in agents {
        let _ = a.await;
    }
    if let Err(e) = ws.stop().await {
        tracing::error!(error = %e, "clean stop failed");
    }
    let _ = std::fs::remove_file(ws.layout.endpoint_file());
    tracing::info!("workspace runtime stopped");
    Ok(())
}

async fn wait_for(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
