//! One module per subcommand; each turns library results into output.

mod schema;
mod validate;
mod version;
mod workspace_runtime;

use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let format = cli.global.output;
    match cli.command {
        Command::Validate(args) => validate::run(format, &args),
        Command::Schema(args) => schema::run(format, &args),
        Command::Version => version::run(format),
        Command::WorkspaceRuntime(args) => workspace_runtime::run(&args),
    }
}
