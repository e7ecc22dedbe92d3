//! One module per subcommand; each turns library results into output.

mod agents;
mod apply;
mod backup;
mod delete;
mod describe;
mod diff;
mod get;
mod loadtest;
mod manifests;
mod schema;
mod up;
mod validate;
mod version;
mod wait;
mod workspace_runtime;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let format = cli.global.output;
    let server = cli.global.server.clone();
    match cli.command {
        Command::Validate(args) => validate::run(format, &args),
        Command::Schema(args) => schema::run(format, &args),
        Command::Version => version::run(format),
        Command::WorkspaceRuntime(args) => workspace_runtime::run(&args),
        Command::Up(args) => block_on(up::run(format, &args)),
        Command::Apply(args) => block_on(apply::run(format, &server, &args)),
        Command::Get(args) => block_on(get::run(format, &server, &args)),
        Command::Describe(args) => block_on(describe::run(format, &server, &args)),
        Command::Diff(args) => block_on(diff::run(format, &server, &args)),
        Command::Delete(args) => block_on(delete::run(format, &server, &args)),
        Command::Wait(args) => block_on(wait::run(format, &server, &args)),
        Command::Loadtest(args) => block_on(loadtest::run(format, &server, &args)),
        Command::Backup(cmd) => block_on(backup::run(format, &server, &cmd)),
        Command::Agents(cmd) => block_on(agents::run(format, &server, &cmd)),
    }
}

/// Runs an async command on a fresh multi-threaded runtime.
fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(f: F) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start async runtime")?;
    runtime.block_on(f)
}

/// A kind named on the command line.
fn kind(name: &str) -> Result<coditect_specs::Kind, Failure> {
    name.parse()
        .map_err(|e: coditect_specs::resource::UnknownKind| {
            eprintln!("error: {e}");
            Failure::InvalidInput
        })
}
