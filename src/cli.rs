//! Command-line arguments (clap derive). Flags that make sense in the environment also
//! read `CODITECT_*` variables.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::OutputFormat;

/// Coditect: persistent multi-agent workspaces, run by a declarative control plane.
#[derive(Debug, Parser)]
#[command(name = "coditect", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 ok, 1 invalid input, 2 usage error, 3 workspace unavailable, 70 internal error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format: human text, or JSON / YAML for scripts (logs always go to stderr).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text, env = "CODITECT_OUTPUT")]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests: YAML, schema, names, bounds and references, with located errors.
    Validate(ValidateArgs),
    /// Print the JSON Schema of a kind (or of all kinds).
    Schema(SchemaArgs),
    /// Print the version of this binary and the API version it speaks.
    Version,
    /// Run one workspace instance in the foreground (the control plane starts these).
    WorkspaceRuntime(WorkspaceRuntimeArgs),
}

#[derive(Debug, Args)]
pub struct WorkspaceRuntimeArgs {
    /// The Workspace manifest (exactly one Workspace document).
    #[arg(long, env = "CODITECT_SPEC")]
    pub spec: PathBuf,
    /// The storage root; the workspace folder is created below it.
    #[arg(long, env = "CODITECT_ROOT", default_value = ".coditect/workspaces")]
    pub root: PathBuf,
    /// The API address; port 0 picks a free port (printed on stdout when ready).
    #[arg(long, env = "CODITECT_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A manifest file, a folder of them, or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Descend into subfolders of a folder.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print the effective objects, every default filled in.
    #[arg(long)]
    pub show_defaults: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// organization, team or workspace; all three when omitted.
    pub kind: Option<String>,
}
