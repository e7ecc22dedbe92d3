//! `coditect validate -f PATH`: every problem of every file, located like a compiler.

use anyhow::Context;
use coditect_specs::Catalog;
use serde_json::json;

use crate::cli::ValidateArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

pub fn run(format: OutputFormat, args: &ValidateArgs) -> Result<(), Failure> {
    let mut docs = super::manifests::load(&args.files, args.recursive, format)?;
    if let Err(e) = coditect_specs::check_and_default(&mut docs, &Catalog::default()) {
        return Err(super::manifests::report(format, &e));
    }
    if args.show_defaults {
        let objects: Vec<_> = docs.iter().map(|d| &d.resource).collect();
        match format {
            OutputFormat::Json => print_structured(format, &objects)?,
            _ => {
                for object in objects {
                    out!(
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
        OutputFormat::Text | OutputFormat::Wide => {
            for (d, s) in docs.iter().zip(&summary) {
                outln!(
                    "{}  valid  {}  ({})",
                    d.resource.key(),
                    s["specHash"].as_str().unwrap_or_default(),
                    d.file
                );
            }
            outln!("{} document(s) valid", docs.len());
        }
        _ => print_structured(format, &json!({"valid": true, "documents": summary}))?,
    }
    Ok(())
}
