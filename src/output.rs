//! Output formats and logging setup. Results go to stdout in the chosen format; logs and
//! human diagnostics go to stderr, so a script parsing stdout never sees them.

use std::io::IsTerminal;

use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// For people, with more columns (`get`).
    Wide,
    /// For machines.
    Json,
    /// For machines and for `apply -f -`.
    Yaml,
}

impl OutputFormat {
    /// JSON or YAML.
    pub fn is_structured(self) -> bool {
        matches!(self, OutputFormat::Json | OutputFormat::Yaml)
    }
}

/// Logs to stderr: human-readable on a terminal, JSON lines with `--output json`.
/// The level comes from `CODITECT_LOG` (e.g. `info`, `coditect_runtime=debug`), `warn` by default.
pub fn init_tracing(format: OutputFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODITECT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| CountedStderr);
    if format == OutputFormat::Json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Standard error, with every byte counted as log volume (a workspace instance reports it
/// for the cost report's observability line).
struct CountedStderr;

impl std::io::Write for CountedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = std::io::stderr().write(buf)?;
        coditect_runtime::sync::meter::count_log_bytes(n);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Prints a value as JSON or YAML on stdout.
///
/// # Errors
/// When the value cannot be serialized.
pub fn print_structured<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    match format {
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(value)?),
        _ => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

/// Prints rows as aligned columns under upper-case headers, like kubectl.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}
