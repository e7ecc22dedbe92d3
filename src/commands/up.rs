//! `coditect up [-f PATH] [--listen ADDR] [--data-dir DIR]`: the control plane in the
//! foreground. Prints where it listens, applies PATH, reports each workspace as it becomes
//! Ready, and on Ctrl-C stops the instances cleanly.

use std::time::Duration;

use anyhow::Context;
use coditect_control_plane::access::rate::RateLimit;
use coditect_control_plane::access::tls::TlsFiles;
use coditect_control_plane::client::Client;
use coditect_control_plane::client::config::Connection;
use coditect_control_plane::up::{UpOptions, start};
use coditect_runtime::shutdown::Shutdown;
use coditect_specs::{Kind, Resource};
use serde_json::json;

use super::{apply, manifests};
use crate::cli::UpArgs;
use crate::exit::Failure;
use crate::output::OutputFormat;

pub async fn run(format: OutputFormat, args: &UpArgs) -> Result<(), Failure> {
    // A bad pricing file is refused before anything starts.
    let pricing = super::cost::pricing(args.pricing.as_ref())?;
    let runtime_command = std::env::current_exe().context("find the coditect binary")?;
    let mut opts = UpOptions::new(args.listen, args.data_dir.clone(), runtime_command);
    opts.insecure = args.insecure;
    opts.delegated = vec![coditect_migrate::reconciler::MigrationReconciler::factory()];
    opts.rate_limit = RateLimit {
        per_second: args.rate_limit,
        burst: (args.rate_limit * 2.0)
            .ceil()
            .clamp(1.0, f64::from(u32::MAX)) as u32,
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        opts.tls = Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    let docs = if args.files.is_empty() {
        Vec::new()
    } else {
        manifests::load(&args.files, false, format)?
    };
    // Ctrl-C / SIGTERM are honoured from here on, at any point of `up`.
    let mut shutdown = Shutdown::install();
    let cp = start(opts)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    let server = cp.server.clone();
    let client = match Client::connect(&Connection {
        server: server.clone(),
        token: Some(cp.admin_token.clone()),
        certificate_authority: opts_ca(args),
        source: None,
    }) {
        Ok(c) => c,
        Err(e) => {
            cp.shutdown().await;
            return Err(e.into());
        }
    };
    // Apply before announcing, so whoever reads the announcement finds the objects.
    let applied = if docs.is_empty() {
        None
    } else {
        let applying = apply::apply_docs(&client, &docs, false, None, format);
        let outcome = tokio::select! {
            r = applying => Some(r),
            () = shutdown.wait() => None,
        };
        match outcome {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                cp.shutdown().await;
                return Err(e);
            }
            None => {
                eprintln!("stopping before the manifests were applied");
                cp.shutdown().await;
                return Ok(());
            }
        }
    };
    if format == OutputFormat::Json {
        outln!(
            "{}",
            json!({"ready": true, "server": server, "dataDir": args.data_dir, "adminConfig": cp.admin_config})
        );
    } else {
        outln!(
            "control plane listening on {server} (data in {}; admin credential in {}, which the CLI finds from this folder)",
            args.data_dir.display(),
            cp.admin_config.display()
        );
    }
    // Auto-sleep: idle workspaces sleep, windows wake them (each workspace's policy).
    let sleeper =
        tokio::spawn(coditect_ops::autosleep::AutoSleeper::new(&cp).run(Duration::from_secs(5)));
    // Budgets: an organization past its alert threshold gets a BudgetAlert condition.
    let budgets = tokio::spawn(
        coditect_ops::budget::BudgetWatch::new(cp.store.clone(), pricing).run(BUDGET_EVERY),
    );
    if let Some(r) = applied {
        if format != OutputFormat::Json {
            apply::print(format, &r, false)?;
        }
        report_ready(&client, &docs, format);
    }
    shutdown.wait().await;
    eprintln!("stopping: workspace instances are stopped cleanly, data is kept");
    sleeper.abort();
    budgets.abort();
    cp.shutdown().await;
    Ok(())
}

/// How often budgets are checked (a month-to-date figure moves slowly).
const BUDGET_EVERY: Duration = Duration::from_secs(60);

/// Prints each applied workspace as it becomes Ready (in the background).
fn report_ready(client: &Client, docs: &[coditect_specs::Document], format: OutputFormat) {
    for doc in docs.iter().filter(|d| d.resource.kind() == Kind::Workspace) {
        let (client, key) = (client.clone(), doc.resource.key());
        tokio::spawn(async move {
            match client
                .wait_for(&key, "Ready", Duration::from_secs(120))
                .await
            {
                Ok(Resource::Workspace(ws)) => {
                    let endpoint = ws.status.and_then(|s| s.endpoint).unwrap_or_default();
                    let org = ws.metadata.organization.unwrap_or_default();
                    if format == OutputFormat::Json {
                        outln!(
                            "{}",
                            json!({"ready": key.to_string(), "endpoint": endpoint})
                        );
                    } else {
                        outln!(
                            "{key} Ready (instance {endpoint}; through the gateway: {}/w/{org}/{}/v1/status)",
                            client.server(),
                            ws.metadata.name
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("{key} not Ready: {e}"),
            }
        });
    }
}

/// The certificate `up` serves, trusted by its own client (it may be self-signed).
fn opts_ca(args: &UpArgs) -> Option<std::path::PathBuf> {
    args.tls_cert.clone()
}
