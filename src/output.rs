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

/// Set once stdout's reader has gone away.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes to stdout. A reader that went away (`coditect get … | head`) is not an error and
/// never a panic: the rest of the output is dropped and the command ends as it would have
/// (exit 0 when it succeeded); a long-running command such as `up` keeps running, so
/// Ctrl-C still stops its instances. [`stdout_closed`] says whether it happened.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "stdout cannot be written; output dropped");
        }
    }
}

/// Whether stdout's reader went away.
#[allow(dead_code)] // for commands that stream until interrupted
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// `print!` to stdout through [`write_stdout`].
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!($($t)*)) };
}

/// `println!` to stdout through [`write_stdout`].
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// A progress bar on stderr drawn with `template` (indicatif's), when stderr is a
/// terminal and not CI; hidden otherwise, so logs and pipes stay clean.
pub fn progress_bar(template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

/// Prints a value as JSON or YAML on stdout.
///
/// # Errors
/// When the value cannot be serialized.
pub fn print_structured<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    match format {
        OutputFormat::Yaml => out!("{}", serde_yaml::to_string(value)?),
        _ => outln!("{}", serde_json::to_string_pretty(value)?),
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
        outln!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}
