//! Shared helpers for the specs integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};

use coditect_specs::{Catalog, Document};

/// The crate's folder.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `specs/examples/`.
pub fn examples_dir() -> PathBuf {
    crate_dir().join("examples")
}

/// The valid examples, loaded and defaulted.
pub fn examples() -> Vec<Document> {
    coditect_specs::load_effective(&examples_dir(), false, &Catalog::default())
        .expect("the examples are valid")
}

/// The valid examples as a catalog, the way a control plane that applied them sees them.
pub fn examples_catalog() -> Catalog {
    Catalog::new(examples().into_iter().map(|d| d.resource))
}

/// Parses one file's text as if it were at `name`.
pub fn parse(name: &str, text: &str) -> (Vec<Document>, Vec<coditect_specs::Diagnostic>) {
    coditect_specs::parse_str(name, Path::new("."), text)
}
