//! `coditect validate -f PATH`: every problem of every file, located like a compiler.

use anyhow::Context;
use coditect_specs::{Catalog, Document, SpecError};
use serde_json::json;

use crate::cli::ValidateArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

pub fn run(format: OutputFormat, args: &ValidateArgs) -> Result<(), Failure> {
    let docs = match load_all(args) {
        Ok(docs) => docs,
        Err(e) => return Err(report_error(format, &e)),
    };
    if args.show_defaults {
        let objects: Vec<_> = docs.iter().map(|d| &d.resource).collect();
        match format {
            OutputFormat::Json => print_structured(format, &objects)?,
            _ => {
                for object in objects {
                    print!(
                        "---\n{}",
                        serde_yaml::to_string(object).context("print object")?
                    );
                }
            }
        }
        return Ok(());
    }
    let summary: Vec<_> = docs
        .iter()
        .map(|d| {
            let meta = d.resource.metadata();
            json!({
                "kind": d.resource.kind().as_str(),
                "name": meta.name,
                "organization": meta.organization,
                "team": meta.team,
                "file": d.file,
                "specHash": coditect_specs::spec_hash(&d.resource),
            })
        })
        .collect();
    match format {
        OutputFormat::Text => {
            for (d, s) in docs.iter().zip(&summary) {
                println!(
                    "{}  valid  {}  ({})",
                    d.resource.key(),
                    s["specHash"].as_str().unwrap_or_default(),
                    d.file
                );
            }
            println!("{} document(s) valid", docs.len());
        }
        _ => print_structured(format, &json!({"valid": true, "documents": summary}))?,
    }
    Ok(())
}

/// Loads every `-f` path, collecting problems across all of them before judging.
fn load_all(args: &ValidateArgs) -> Result<Vec<Document>, SpecError> {
    let mut docs = Vec::new();
    let mut diagnostics = Vec::new();
    for path in &args.files {
        match coditect_specs::load(path, args.recursive) {
            Ok(d) => docs.extend(d),
            Err(SpecError::Invalid { diagnostics: d }) => diagnostics.extend(d),
            Err(e) => return Err(e),
        }
    }
    if diagnostics.is_empty() {
        coditect_specs::check_and_default(&mut docs, &Catalog::default())?;
        return Ok(docs);
    }
    diagnostics.sort();
    Err(SpecError::Invalid { diagnostics })
}

/// Prints a load failure (diagnostics to stderr, or JSON to stdout) and classifies it.
pub fn report_error(format: OutputFormat, e: &SpecError) -> Failure {
    let diagnostics = e.diagnostics();
    if format == OutputFormat::Text {
        for d in diagnostics {
            eprintln!("{d}");
        }
        eprintln!("error: {e}");
    } else {
        let body = json!({"valid": false, "error": e.to_string(), "errors": diagnostics});
        if let Err(err) = print_structured(format, &body) {
            return Failure::Internal(err);
        }
    }
    Failure::InvalidInput
}
