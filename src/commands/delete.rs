//! `coditect delete KIND NAME | -f PATH [--purge]`: marks objects for deletion and waits
//! until their finalizers have run (the instance stopped cleanly) and they are gone.

use std::time::Duration;

use coditect_control_plane::client::{Client, ClientError};
use coditect_specs::{Kind, ObjectKey};

use super::manifests;
use crate::cli::DeleteArgs;
use crate::exit::Failure;
use crate::output::OutputFormat;

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &DeleteArgs,
) -> Result<(), Failure> {
    let client = remote.client()?;
    let mut keys: Vec<ObjectKey> = if args.files.is_empty() {
        let (Some(kind), Some(name)) = (&args.kind, &args.name) else {
            eprintln!("error: name a KIND and NAME, or give -f PATH");
            return Err(Failure::InvalidInput);
        };
        vec![
            client
                .find(super::kind(kind)?, name, args.org.as_deref())
                .await?
                .key(),
        ]
    } else {
        manifests::load(&args.files, false, format)?
            .iter()
            .map(|d| d.resource.key())
            .collect()
    };
    // Workspaces before teams before organizations.
    keys.sort_by_key(|k| std::cmp::Reverse(Kind::ALL.iter().position(|x| *x == k.kind)));
    for key in keys {
        match client.delete_with(&key, args.purge, args.dry_run).await {
            Ok(()) => {}
            Err(ClientError::NotFound(_)) if !args.files.is_empty() => {
                outln!("{key} not found");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        if args.dry_run {
            outln!("{key} would be deleted (dry run)");
            continue;
        }
        if !args.no_wait {
            wait_gone(&client, &key).await?;
        }
        outln!(
            "{key} deleted{}",
            if args.purge {
                " (data purged)"
            } else {
                " (data kept)"
            }
        );
    }
    Ok(())
}

async fn wait_gone(client: &Client, key: &ObjectKey) -> Result<(), Failure> {
    match client.wait_deleted(key, Duration::from_secs(60)).await {
        Ok(()) => Ok(()),
        Err(ClientError::Other(why)) => Err(Failure::Unavailable(format!(
            "{key} is still being deleted: {why}"
        ))),
        Err(e) => Err(e.into()),
    }
}
