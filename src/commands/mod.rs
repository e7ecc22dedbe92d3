//! One module per subcommand; each turns library results into output.

mod access;
mod agents;
mod apply;
mod audit;
mod backup;
mod config;
mod cost;
mod delete;
mod describe;
mod diff;
mod get;
mod inside;
mod kubernetes;
mod loadtest;
mod manifests;
mod migrate;
mod migrate_status;
mod schema;
mod sleep;
mod up;
mod validate;
mod version;
mod wait;
mod workspace_runtime;

use anyhow::Context;
use coditect_control_plane::client::Client;
use coditect_control_plane::client::config::{ConnectFlags, Connection};

use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// Where a command connects, as the flags, config files and defaults say.
#[derive(Debug, Clone)]
pub struct Remote {
    flags: ConnectFlags,
}

impl Remote {
    /// The server and credential to use.
    pub fn connection(&self) -> Result<Connection, Failure> {
        coditect_control_plane::client::config::resolve(&self.flags).map_err(|e| {
            eprintln!("error: {e}");
            Failure::InvalidInput
        })
    }

    /// A client carrying the credential.
    pub fn client(&self) -> Result<Client, Failure> {
        Ok(Client::connect(&self.connection()?)?)
    }

    /// The config file commands that edit one change: `--config`, or `~/.coditect/config`.
    pub fn config_file(&self) -> Result<std::path::PathBuf, Failure> {
        self.flags
            .config
            .clone()
            .or_else(coditect_control_plane::client::config::user_config_path)
            .ok_or_else(|| {
                Failure::Refused("no config file: pass --config (HOME is not set)".into())
            })
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let format = cli.global.output;
    let remote = &Remote {
        flags: ConnectFlags {
            server: cli.global.server.clone(),
            token: cli.global.token.clone(),
            config: cli.global.config.clone(),
            context: cli.global.context.clone(),
            data_dir: std::env::var_os("CODITECT_DATA_DIR")
                .map_or_else(|| ".coditect".into(), std::path::PathBuf::from),
        },
    };
    match cli.command {
        Command::Validate(args) => validate::run(format, &args),
        Command::Schema(args) => schema::run(format, &args),
        Command::Version => version::run(format),
        Command::WorkspaceRuntime(args) => workspace_runtime::run(&args),
        Command::Up(args) => block_on(up::run(format, &args)),
        Command::Manifests(args) => kubernetes::manifests(format, &args),
        Command::Operator(args) => block_on(kubernetes::operator(&args)),
        Command::Gateway(args) => block_on(kubernetes::gateway(&args)),
        Command::Apply(args) => block_on(apply::run(format, remote, &args)),
        Command::Get(args) => block_on(get::run(format, remote, &args)),
        Command::Describe(args) => block_on(describe::run(format, remote, &args)),
        Command::Diff(args) => block_on(diff::run(format, remote, &args)),
        Command::Delete(args) => block_on(delete::run(format, remote, &args)),
        Command::Wait(args) => block_on(wait::run(format, remote, &args)),
        Command::Loadtest(args) => block_on(loadtest::run(format, remote, &args)),
        Command::Backup(cmd) => block_on(backup::run(format, remote, &cmd)),
        Command::Migrate(cmd) => block_on(migrate::run(format, remote, &cmd)),
        Command::Agents(args) => block_on(agents::run(format, remote, &args)),
        Command::Events(args) => block_on(inside::events(format, remote, &args)),
        Command::Tasks(args) => block_on(inside::tasks(format, remote, &args)),
        Command::Locks(target) => block_on(inside::locks(format, remote, &target)),
        Command::Query(args) => block_on(inside::query(format, remote, &args)),
        Command::Open(args) => block_on(inside::open(format, remote, &args)),
        Command::Token(cmd) => block_on(access::token(format, remote, &cmd)),
        Command::Auth(cmd) => block_on(access::auth(format, remote, &cmd)),
        Command::Audit(args) => block_on(audit::run(format, remote, &args)),
        Command::Config(cmd) => config::run(format, remote, &cmd),
        Command::Sleep(args) => block_on(sleep::sleep(format, remote, &args)),
        Command::Wake(args) => block_on(sleep::wake(format, remote, &args)),
        Command::Keepalive(args) => block_on(sleep::keepalive(format, remote, &args)),
        Command::Cost(cmd) => block_on(cost::run(format, remote, &cmd)),
    }
}

/// `--since`: `1h`, `30d` (that long ago) or an RFC 3339 time.
pub(crate) fn parse_since(since: &str) -> Result<std::time::SystemTime, Failure> {
    if let Ok(at) = humantime::parse_rfc3339_weak(since) {
        return Ok(at);
    }
    let ago = humantime::parse_duration(since).map_err(|e| {
        eprintln!("error: --since {since:?}: {e} (say 1h, 30d, or an RFC 3339 time)");
        Failure::InvalidInput
    })?;
    Ok(std::time::SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH))
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
