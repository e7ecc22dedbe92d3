//! Reading manifests: from a file, a folder of files, or stdin; one or many documents per
//! file; every problem reported with file, line, column and field path.
//!
//! Each document goes through three checks, and all problems of a file are collected:
//! YAML structure (syntax, duplicate keys), the kind's JSON Schema (unknown fields, types,
//! enum values), then [`crate::validate::check_document`] (names, bounds, cross-field
//! rules). Checks across documents (duplicates, references) are in [`crate::validate`].

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Diagnostic, SpecError, Violation};
use crate::located::{FieldPath, Node, NodeKind, Position, parse_stream};
use crate::resource::{API_VERSION, Kind, Resource};
use crate::suggest::did_you_mean;
use crate::{schema, validate};

/// A parsed, schema-checked object and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The object.
    pub resource: Resource,
    /// The file it was read from, as the user named it.
    pub file: String,
    /// The folder relative paths in the document resolve against (`spec.projects[].path`).
    pub base_dir: PathBuf,
    /// Its position tree, to locate problems found later.
    pub tree: Node,
}

impl Document {
    /// Places a violation in this document's file.
    pub fn diagnose(&self, v: Violation) -> Diagnostic {
        locate(&self.file, &self.tree, v)
    }
}

fn locate(file: &str, tree: &Node, v: Violation) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        pos: tree.locate(&v.path, v.at_key),
        path: v.path,
        message: v.message,
    }
}

/// Reads every manifest under `path` (`-` for stdin). A folder contributes its `.yaml`
/// and `.yml` files in name order; with `recursive`, its subfolders' too.
///
/// # Errors
/// [`SpecError::Read`] when a file cannot be read, [`SpecError::Invalid`] with every
/// problem of every file, [`SpecError::Empty`] when there is nothing to read.
pub fn load(path: &Path, recursive: bool) -> Result<Vec<Document>, SpecError> {
    let mut documents = Vec::new();
    let mut diagnostics = Vec::new();
    if path == Path::new("-") {
        let mut text = String::new();
        // Read one byte past the limit, so a huge input is refused without being held.
        std::io::stdin()
            .take(crate::located::MAX_STREAM_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|source| SpecError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let cwd = std::env::current_dir().unwrap_or_default();
        let (docs, diags) = parse_str("<stdin>", &cwd, &text);
        documents.extend(docs);
        diagnostics.extend(diags);
    } else {
        for file in manifest_files(path, recursive)? {
            let read = |source| SpecError::Read {
                path: file.clone(),
                source,
            };
            let mut text = String::new();
            std::fs::File::open(&file)
                .and_then(|f| {
                    f.take(crate::located::MAX_STREAM_BYTES as u64 + 1)
                        .read_to_string(&mut text)
                })
                .map_err(read)?;
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let (docs, diags) = parse_str(&file.display().to_string(), &base, &text);
            documents.extend(docs);
            diagnostics.extend(diags);
        }
    }
    if !diagnostics.is_empty() {
        diagnostics.sort();
        return Err(SpecError::Invalid { diagnostics });
    }
    if documents.is_empty() {
        return Err(SpecError::Empty(path.to_path_buf()));
    }
    Ok(documents)
}

fn manifest_files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, SpecError> {
    let read_err = |source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                files.extend(manifest_files(&entry, true)?);
            }
        } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(entry);
        }
    }
    Ok(files)
}

/// Parses the documents of one file's text. Returns the documents that passed every
/// per-document check and the problems of the others.
pub fn parse_str(file: &str, base_dir: &Path, text: &str) -> (Vec<Document>, Vec<Diagnostic>) {
    let located = |pos: Position, path: FieldPath, message: String| Diagnostic {
        file: file.to_string(),
        pos,
        path,
        message,
    };
    let stream = match parse_stream(text) {
        Ok(stream) => stream,
        Err(e) => return (Vec::new(), vec![located(e.pos, e.path, e.message)]),
    };
    let mut documents = Vec::new();
    let mut diagnostics = Vec::new();
    for doc in stream {
        let errors_before = diagnostics.len();
        for e in doc.errors {
            diagnostics.push(located(e.pos, e.path, e.message));
        }
        let Some(tree) = doc.root else { continue };
        match to_resource(&tree) {
            Ok(resource) if diagnostics.len() == errors_before => {
                let doc = Document {
                    resource,
                    file: file.to_string(),
                    base_dir: base_dir.to_path_buf(),
                    tree,
                };
                let problems = validate::check_document(&doc.resource);
                if problems.is_empty() {
                    documents.push(doc);
                } else {
                    diagnostics.extend(problems.into_iter().map(|v| doc.diagnose(v)));
                }
            }
            Ok(_) => {}
            Err(violations) => {
                diagnostics.extend(violations.into_iter().map(|v| locate(file, &tree, v)));
            }
        }
    }
    (documents, diagnostics)
}

/// Schema-checks and deserializes one document tree.
fn to_resource(tree: &Node) -> Result<Resource, Vec<Violation>> {
    let NodeKind::Map(_) = tree.kind else {
        return Err(vec![Violation::at(
            FieldPath::root(),
            "expected a mapping with apiVersion, kind, metadata and spec",
        )]);
    };
    from_value(tree.to_json())
}

/// Builds an object from JSON (an API request body, a stored object) with the same checks
/// a manifest gets: kind, schema, types. Per-document rules are [`validate::check_document`].
///
/// # Errors
/// Every violation found, with field paths.
pub fn from_value(value: Value) -> Result<Resource, Vec<Violation>> {
    if !value.is_object() {
        return Err(vec![Violation::at(
            FieldPath::root(),
            "expected a mapping with apiVersion, kind, metadata and spec",
        )]);
    }
    let kind = kind_of(&value)?;
    let violations = schema::check(kind, &value);
    if !violations.is_empty() {
        return Err(violations);
    }
    deserialize(kind, value).map_err(|v| vec![v])
}

fn kind_of(value: &Value) -> Result<Kind, Vec<Violation>> {
    let mut problems = Vec::new();
    let path = |k: &str| FieldPath::root().key(k);
    match value.get("apiVersion") {
        Some(Value::String(v)) if v == API_VERSION => {}
        Some(v) => problems.push(Violation::at(
            path("apiVersion"),
            format!("unsupported apiVersion {v}: expected {API_VERSION:?}"),
        )),
        None => problems.push(Violation::at(
            path("apiVersion"),
            "missing required field \"apiVersion\"",
        )),
    }
    let kind = match value.get("kind") {
        Some(Value::String(k)) => {
            let names = Kind::ALL.map(|k| k.as_str());
            match Kind::ALL.iter().find(|c| c.as_str() == k) {
                Some(kind) => Some(*kind),
                None => {
                    problems.push(Violation::at(
                        path("kind"),
                        format!(
                            "unknown kind {k:?}{}; expected one of: {}",
                            did_you_mean(k, names),
                            names.join(", ")
                        ),
                    ));
                    None
                }
            }
        }
        Some(v) => {
            problems.push(Violation::at(
                path("kind"),
                format!("expected a string, got {v}"),
            ));
            None
        }
        None => {
            problems.push(Violation::at(
                path("kind"),
                "missing required field \"kind\"",
            ));
            None
        }
    };
    match kind {
        Some(kind) if problems.is_empty() => Ok(kind),
        _ => Err(problems),
    }
}

fn deserialize(kind: Kind, value: Value) -> Result<Resource, Violation> {
    fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Violation> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = FieldPath::parse(&e.path().to_string());
            Violation::at(path, e.inner().to_string())
        })
    }
    Ok(match kind {
        Kind::Organization => Resource::Organization(typed(value)?),
        Kind::Team => Resource::Team(typed(value)?),
        Kind::Workspace => Resource::Workspace(typed(value)?),
        Kind::Migration => Resource::Migration(typed(value)?),
    })
}
