//! `coditect workspace-runtime`: one workspace instance in the foreground.

use anyhow::Context;
use coditect_runtime::{ServeOptions, serve};

use crate::cli::WorkspaceRuntimeArgs;
use crate::exit::Failure;

pub fn run(args: &WorkspaceRuntimeArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start async runtime")?;
    let opts = ServeOptions {
        spec: args.spec.clone(),
        root: args.root.clone(),
        listen: args.listen,
        bucket: args.bucket.clone(),
        mirror: args.mirror.clone(),
    };
    runtime
        .block_on(serve(opts))
        .map_err(|e| Failure::Unavailable(e.to_string()))
}
