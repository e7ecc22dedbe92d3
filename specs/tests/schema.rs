//! The JSON Schemas: they accept the examples (checked with the independent `jsonschema`
//! validator), and the committed copies under specs/schemas/ are up to date.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use coditect_specs::Kind;
use coditect_specs::schema::schema;

#[test]
fn json_schema_validates_the_examples() {
    for doc in common::examples() {
        let kind = doc.resource.kind();
        let validator = jsonschema::validator_for(&schema(kind)).unwrap();
        let effective = serde_json::to_value(&doc.resource).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&effective)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", doc.resource.key());
        let as_written = doc.tree.to_json();
        assert!(
            validator.is_valid(&as_written),
            "{} as written",
            doc.resource.key()
        );
    }
}

#[test]
fn json_schema_rejects_what_the_parser_rejects() {
    let validator = jsonschema::validator_for(&schema(Kind::Workspace)).unwrap();
    let bad = serde_json::json!({
        "apiVersion": "coditect.io/v1", "kind": "Workspace",
        "metadata": {"name": "w"}, "spec": {"owner": "a", "extra": true}
    });
    assert!(!validator.is_valid(&bad));
}

/// Regenerate with `CODITECT_BLESS=1 cargo test -p coditect-specs --test schema`.
#[test]
fn committed_schemas_are_current() {
    let dir = common::crate_dir().join("schemas");
    for kind in Kind::ALL {
        let path = dir.join(format!(
            "{}.schema.json",
            kind.as_str().to_ascii_lowercase()
        ));
        let fresh = serde_json::to_string_pretty(&schema(kind)).unwrap() + "\n";
        if std::env::var_os("CODITECT_BLESS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is stale: run CODITECT_BLESS=1 cargo test -p coditect-specs --test schema",
            path.display()
        );
    }
}
