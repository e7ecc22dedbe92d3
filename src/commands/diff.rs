//! `coditect diff -f PATH`: what `apply` would change, as unified diffs of the effective
//! objects; exit 1 when there are differences, like `kubectl diff`.

use coditect_control_plane::client::ClientError;
use coditect_specs::{Catalog, Kind};

use super::manifests;
use crate::cli::DiffArgs;
use crate::exit::Failure;
use crate::output::OutputFormat;

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &DiffArgs,
) -> Result<(), Failure> {
    let mut docs = manifests::load(&args.files, args.recursive, format)?;
    let client = remote.client()?;
    let mut live = Vec::new();
    for kind in Kind::ALL {
        live.extend(client.list(kind, None).await?);
    }
    let catalog = Catalog::new(live);
    if let Err(e) = coditect_specs::check_and_default(&mut docs, &catalog) {
        return Err(manifests::report(format, &e));
    }
    let mut changed = false;
    for doc in &docs {
        let current = match client.get(&doc.resource.key()).await {
            Ok(r) => Some(r),
            Err(ClientError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let diff = coditect_control_plane::diff::unified(current.as_ref(), &doc.resource);
        if !diff.is_empty() {
            changed = true;
            out!("{diff}");
        }
    }
    if changed {
        Err(Failure::Differences)
    } else {
        Ok(())
    }
}
