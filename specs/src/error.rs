//! Errors of the specs crate: located diagnostics, and the ways loading can fail.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::located::{FieldPath, Position};

/// One problem in a manifest, located like a compiler error:
/// `specs/examples/bad.yaml:12:7: spec.agents[2].provider: unknown provider "antropic"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The file as the user named it (`<stdin>` for `-f -`).
    pub file: String,
    /// Line and column, 1-based.
    pub pos: Position,
    /// The field path; empty for problems of the document as a whole.
    pub path: FieldPath,
    /// What is wrong, in lowercase, with a suggestion where one helps.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.column)?;
        if !self.path.is_root() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Diagnostic", 5)?;
        st.serialize_field("file", &self.file)?;
        st.serialize_field("line", &self.pos.line)?;
        st.serialize_field("column", &self.pos.column)?;
        st.serialize_field("path", &self.path.to_string())?;
        st.serialize_field("message", &self.message)?;
        st.end()
    }
}

/// Why manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file or folder could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// What was being read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The manifests have problems; every one found is listed.
    #[error("invalid manifests: {} error(s) in {}", .diagnostics.len(), files(.diagnostics))]
    Invalid {
        /// Every problem, sorted by file and position.
        diagnostics: Vec<Diagnostic>,
    },
    /// A path held no manifests.
    #[error("no manifests in {0}: expected .yaml or .yml files")]
    Empty(PathBuf),
}

impl SpecError {
    /// The located problems, if this is a validation failure.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            SpecError::Invalid { diagnostics } => diagnostics,
            _ => &[],
        }
    }
}

/// A problem found in one document before it is located in its file: the field path,
/// whether to point at the key (unknown or duplicate fields) or the value, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The field path inside the document.
    pub path: FieldPath,
    /// Point at the mapping key rather than its value.
    pub at_key: bool,
    /// What is wrong.
    pub message: String,
}

impl Violation {
    /// A problem with the value at `path`.
    pub fn at(path: FieldPath, message: impl Into<String>) -> Self {
        Violation {
            path,
            at_key: false,
            message: message.into(),
        }
    }
}

/// `a.yaml` or `a.yaml, b.yaml`: the files a list of diagnostics is about.
fn files(diagnostics: &[Diagnostic]) -> String {
    let mut names: Vec<&str> = diagnostics.iter().map(|d| d.file.as_str()).collect();
    names.dedup();
    names.join(", ")
}
