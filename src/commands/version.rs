//! `coditect version`.

use serde_json::json;

use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

pub fn run(format: OutputFormat) -> Result<(), Failure> {
    let version = env!("CARGO_PKG_VERSION");
    let api = coditect_specs::API_VERSION;
    match format {
        OutputFormat::Text | OutputFormat::Wide => outln!("coditect {version} (API {api})"),
        _ => print_structured(format, &json!({"version": version, "apiVersion": api}))?,
    }
    Ok(())
}
