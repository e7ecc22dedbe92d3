//! `coditect apply -f PATH [--dry-run] [--prune -l SELECTOR]`.

use coditect_control_plane::client::{ApplyResponse, Client, ClientError};
use coditect_specs::Document;

use super::manifests;
use crate::cli::ApplyArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &ApplyArgs,
) -> Result<(), Failure> {
    let docs = manifests::load(&args.files, args.recursive, format)?;
    let prune = if args.prune {
        args.selector.as_deref()
    } else {
        None
    };
    let response = apply_docs(&remote.client()?, &docs, args.dry_run, prune, format).await?;
    print(format, &response, args.dry_run)
}

/// Applies loaded documents; server-side problems are printed located in their files.
pub async fn apply_docs(
    client: &Client,
    docs: &[Document],
    dry_run: bool,
    prune: Option<&str>,
    format: OutputFormat,
) -> Result<ApplyResponse, Failure> {
    match client
        .apply(&manifests::objects(docs), dry_run, prune)
        .await
    {
        Ok(r) => Ok(r),
        Err(ClientError::Invalid { reason, violations }) => {
            let diagnostics = manifests::locate(docs, &violations);
            let e = coditect_specs::SpecError::Invalid { diagnostics };
            let failure = manifests::report(format, &e);
            eprintln!("error: {reason}");
            Err(failure)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn print(format: OutputFormat, r: &ApplyResponse, dry_run: bool) -> Result<(), Failure> {
    let suffix = if dry_run { " (dry run)" } else { "" };
    match format {
        OutputFormat::Json | OutputFormat::Yaml => {
            let results: Vec<_> = r.results.iter().map(|a| serde_json::json!({"object": a.key, "action": a.action, "generation": a.generation})).collect();
            print_structured(
                format,
                &serde_json::json!({"results": results, "pruned": r.pruned, "dryRun": dry_run}),
            )?;
        }
        _ => {
            for a in &r.results {
                outln!("{} {}{suffix}", a.key, a.action);
            }
            for p in &r.pruned {
                outln!("{p} pruned{suffix}");
            }
        }
    }
    Ok(())
}
