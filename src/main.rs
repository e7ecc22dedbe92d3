//! The `coditect` binary: parse arguments, run one command, map the outcome to an exit
//! code. Everything else lives in the library crates and in `commands/`.

#[macro_use]
mod output;
mod cli;
mod commands;
mod exit;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    output::init_tracing(cli.global.output);
    let outcome = commands::run(cli);
    exit::report(outcome)
}
