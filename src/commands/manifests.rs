//! Reading manifests for the commands that take `-f`, and printing problems located in
//! them: the CLI's own (syntax, schema, per-object rules) and the server's (references,
//! quotas), which come back by object index and field path and are placed in the files
//! here.

use std::path::PathBuf;

use coditect_control_plane::apply::ObjectViolation;
use coditect_specs::located::FieldPath;
use coditect_specs::{Diagnostic, Document, Resource, SpecError, Violation};
use serde_json::json;

use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

/// Loads every `-f` path, collecting problems across all of them before judging.
pub fn load(
    files: &[PathBuf],
    recursive: bool,
    format: OutputFormat,
) -> Result<Vec<Document>, Failure> {
    let mut docs = Vec::new();
    let mut diagnostics = Vec::new();
    for path in files {
        match coditect_specs::load(path, recursive) {
            Ok(d) => docs.extend(d),
            Err(SpecError::Invalid { diagnostics: d }) => diagnostics.extend(d),
            Err(e) => return Err(report(format, &e)),
        }
    }
    if !diagnostics.is_empty() {
        diagnostics.sort();
        return Err(report(format, &SpecError::Invalid { diagnostics }));
    }
    for doc in &mut docs {
        resolve_project_paths(doc);
    }
    Ok(docs)
}

/// A project `path` is relative to its manifest's folder; the control plane gets it absolute.
fn resolve_project_paths(doc: &mut Document) {
    if let Resource::Workspace(ws) = &mut doc.resource {
        for p in &mut ws.spec.projects {
            if let Some(path) = &p.path
                && !path.starts_with('/')
            {
                let abs = doc.base_dir.join(path);
                let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
                p.path = Some(abs.display().to_string());
            }
        }
    }
}

/// The server's problems, placed in the files the objects came from.
pub fn locate(docs: &[Document], violations: &[ObjectViolation]) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = violations
        .iter()
        .filter_map(|v| {
            let doc = docs.get(v.index)?;
            Some(doc.diagnose(Violation {
                path: FieldPath::parse(&v.path),
                at_key: v.at_key,
                message: v.message.clone(),
            }))
        })
        .collect();
    out.sort();
    out
}

/// Prints a load failure (diagnostics to stderr, or JSON to stdout) and classifies it.
pub fn report(format: OutputFormat, e: &SpecError) -> Failure {
    let diagnostics = e.diagnostics();
    if matches!(format, OutputFormat::Json | OutputFormat::Yaml) {
        let body = json!({"valid": false, "error": e.to_string(), "errors": diagnostics});
        if let Err(err) = print_structured(format, &body) {
            return Failure::Internal(err);
        }
    } else {
        for d in diagnostics {
            eprintln!("{d}");
        }
        eprintln!("error: {e}");
    }
    Failure::InvalidInput
}

/// The objects of the documents, as the API takes them.
pub fn objects(docs: &[Document]) -> Vec<Resource> {
    docs.iter().map(|d| d.resource.clone()).collect()
}
