//! `coditect loadtest`: runs the KPI scenarios, prints the table, writes the reports, and
//! exits 99 when a threshold fails.

use std::io::IsTerminal;

use anyhow::Context;
use coditect_loadtest::{LoadtestError, Options, report};

use crate::cli::LoadtestArgs;
use crate::exit::Failure;
use crate::output::OutputFormat;

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &LoadtestArgs,
) -> Result<(), Failure> {
    let conn = if args.embedded {
        None
    } else {
        Some(remote.connection()?)
    };
    let opts = Options {
        server: conn.as_ref().map(|c| c.server.clone()),
        token: conn.and_then(|c| c.token),
        data_dir: args.data_dir.clone(),
        runtime_command: std::env::current_exe().context("find the coditect binary")?,
        users: args.users,
        workspaces: args.workspaces,
        duration: args.duration.to_std(),
        warmup: args.warmup.to_std(),
        rate: args.rate,
        scenarios: args.scenarios.clone(),
        thresholds: args.thresholds.clone(),
        chaos_interval: args.chaos_interval.to_std(),
        progress: !args.quiet
            && std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none(),
    };
    let report = match coditect_loadtest::run(&opts).await {
        Ok(r) => r,
        Err(e @ (LoadtestError::Thresholds(_) | LoadtestError::UnknownScenario(_))) => {
            eprintln!("error: {e}");
            return Err(Failure::InvalidInput);
        }
        Err(e) => return Err(Failure::Unavailable(e.to_string())),
    };
    if !args.reports.is_empty() {
        std::fs::create_dir_all(&args.report_dir)
            .with_context(|| format!("create {}", args.report_dir.display()))?;
    }
    for kind in &args.reports {
        let (file, text) = match kind.as_str() {
            "json" => ("report.json", report::json(&report)),
            "junit" => ("report.xml", report::junit(&report)),
            _ => ("report.md", report::markdown(&report)),
        };
        let path = args.report_dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    match format {
        OutputFormat::Json => outln!("{}", report::json(&report)),
        _ => out!("{}", report::table(&report)),
    }
    if report.pass {
        Ok(())
    } else {
        Err(Failure::ThresholdsFailed)
    }
}
