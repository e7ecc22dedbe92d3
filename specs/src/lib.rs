//! # coditect-specs
//!
//! The `coditect.io/v1` resource types (`Organization`, `Team`, `Workspace`,
//! `Migration`), and
//! everything about reading them: YAML parsing with errors located by file, line, column
//! and field path; JSON Schema per kind; validation beyond types; explicit defaults; and
//! a stable spec hash.
//!
//! ```text
//!  file / folder / stdin
//!        │  located::parse_stream   (YAML → position tree; syntax, duplicate keys)
//!        ▼
//!  schema::check                    (JSON Schema: unknown fields, types, enums — all of them)
//!        ▼
//!  serde → Resource                 (typed; static defaults filled)
//!        ▼
//!  validate::check_document         (names, bounds, cross-field rules)
//!  validate::check_set              (duplicates, references, against a Catalog)
//!        ▼
//!  effective::apply_defaults_all    (team and provider defaults) → hash::spec_hash
//! ```
//!
//! This crate is the bottom of the dependency graph: it imports no other Coditect crate.

pub mod agent;
pub mod defaults;
mod duration;
pub mod effective;
mod error;
pub mod hash;
mod load;
pub mod located;
pub mod meta;
pub mod migration;
pub mod organization;
mod quantity;
pub mod resource;
pub mod schema;
mod suggest;
pub mod team;
pub mod validate;
pub mod workspace;

pub use agent::{
    AgentRole, AgentSpec, Credentials, Provider, Reasoning, ReasoningEffort, SecretRef,
};
pub use duration::{Duration, DurationParseError};
pub use effective::{apply_defaults, apply_defaults_all, apply_defaults_objects};
pub use error::{Diagnostic, SpecError, Violation};
pub use hash::spec_hash;
pub use load::{Document, from_value, load, parse_str};
pub use meta::{
    Condition, ConditionStatus, ObjectMeta, RollupStatus, SleepStatus, WorkspaceStatus,
};
pub use migration::{MigrationSpec, MigrationStatus, UserCounts, UserPhase};
pub use organization::{MIRROR_ACCESS_ANNOTATION, MirrorAccess, OrganizationSpec};
pub use quantity::{Quantity, QuantityParseError};
pub use resource::{
    API_VERSION, Kind, Migration, ObjectKey, Organization, Resource, Team, Workspace,
};
pub use team::TeamSpec;
pub use validate::Catalog;
pub use workspace::{SeedTask, WorkspaceSpec};

/// Loads, validates (against `known` for references) and defaults the manifests at
/// `path`: the one call behind `coditect validate` and `coditect apply`.
///
/// # Errors
/// See [`load`]; cross-document problems come back as [`SpecError::Invalid`] too, with
/// every problem of every file.
pub fn load_effective(
    path: &std::path::Path,
    recursive: bool,
    known: &Catalog,
) -> Result<Vec<Document>, SpecError> {
    let mut docs = load(path, recursive)?;
    check_and_default(&mut docs, known)?;
    Ok(docs)
}

/// Cross-document validation and defaults for documents already parsed.
///
/// # Errors
/// [`SpecError::Invalid`] with every cross-document problem.
pub fn check_and_default(docs: &mut [Document], known: &Catalog) -> Result<(), SpecError> {
    let diagnostics = validate::check_set(docs, known);
    if !diagnostics.is_empty() {
        return Err(SpecError::Invalid { diagnostics });
    }
    apply_defaults_all(docs, known);
    Ok(())
}
