//! `coditect schema [KIND]`: the JSON Schema the CLI validates with and the CRDs embed.

use anyhow::Context;
use coditect_specs::Kind;
use serde_json::{Map, Value};

use crate::cli::SchemaArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

pub fn run(format: OutputFormat, args: &SchemaArgs) -> Result<(), Failure> {
    let value = match &args.kind {
        Some(name) => {
            let kind: Kind = name.parse().map_err(|e| {
                eprintln!("error: {e}");
                Failure::InvalidInput
            })?;
            coditect_specs::schema::schema(kind)
        }
        None => Value::Object(
            Kind::ALL
                .iter()
                .map(|k| (k.as_str().to_string(), coditect_specs::schema::schema(*k)))
                .collect::<Map<_, _>>(),
        ),
    };
    let format = if format == OutputFormat::Yaml {
        format
    } else {
        OutputFormat::Json
    };
    print_structured(format, &value).context("print schema")?;
    Ok(())
}
