//! `kind: Migration` as the migration tool reads it: the kind itself is declared in
//! `coditect-specs` (applied, stored and reconciled like every kind); here are the rules
//! that need a v1 user to answer (is the user selected, where do they land), and reading a
//! manifest offline for `coditect migrate plan`, with the file, line, column and field of
//! a mistake.

use std::path::Path;

pub use coditect_specs::Migration;
use coditect_specs::Resource;
use coditect_specs::migration::UserSelection;

use crate::error::MigrateError;
use crate::export::V1User;

/// Reads the one Migration in `path`.
///
/// # Errors
/// The file cannot be read, is not valid (every problem, each at its file, line, column
/// and field), or does not hold exactly one Migration.
pub fn load(path: &Path) -> Result<Migration, MigrateError> {
    let docs = coditect_specs::load(path, false).map_err(spec_error)?;
    one(&path.display().to_string(), docs)
}

/// Reads the one Migration in `text`; `file` names it in errors.
///
/// # Errors
/// As [`load`].
pub fn parse(file: &str, text: &str) -> Result<Migration, MigrateError> {
    let (docs, diagnostics) = coditect_specs::parse_str(file, Path::new("."), text);
    if !diagnostics.is_empty() {
        return Err(spec_error(coditect_specs::SpecError::Invalid {
            diagnostics,
        }));
    }
    one(file, docs)
}

fn spec_error(e: coditect_specs::SpecError) -> MigrateError {
    let lines: Vec<String> = e.diagnostics().iter().map(ToString::to_string).collect();
    MigrateError::Spec(if lines.is_empty() {
        e.to_string()
    } else {
        lines.join("\n")
    })
}

fn one(file: &str, docs: Vec<coditect_specs::Document>) -> Result<Migration, MigrateError> {
    let mut found: Vec<Migration> = docs
        .into_iter()
        .filter_map(|d| match d.resource {
            Resource::Migration(m) => Some(m),
            _ => None,
        })
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(MigrateError::Spec(format!(
            "{file}: expected one Migration, found {n}"
        ))),
    }
}

/// Whether `user` is selected.
pub fn selects(selection: &UserSelection, user: &V1User) -> bool {
    (selection.logins.is_empty() || selection.logins.contains(&user.login))
        && (selection.organizations.is_empty() || selection.organizations.contains(&user.org))
}

/// Where `user` lands: (organization, team, workspace name).
pub fn landing(migration: &Migration, user: &V1User) -> (String, String, String) {
    let t = &migration.spec.target;
    let org = t.organization.clone().unwrap_or_else(|| user.org.clone());
    let team = t.team.clone().unwrap_or_else(|| user.team.clone());
    let name = t
        .workspace_name
        .replace("{login}", &user.login)
        .replace("{org}", &user.org)
        .replace("{team}", &user.team);
    (org, team, name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use coditect_specs::Duration;

    use super::*;

    const OK: &str = "apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {name: v1}\nspec:\n  source: {export: 'file:///tmp/x'}\n";

    #[test]
    fn defaults_fill_what_is_not_said() {
        let m = parse("m.yaml", OK).unwrap();
        assert_eq!(m.spec.target.workspace_name, "{login}-main");
        assert_eq!(m.spec.users.batch_size, 50);
        assert!(!m.spec.cutover.auto_promote);
    }

    #[test]
    fn the_example_in_the_readme_reads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/migration.yaml");
        let m = load(&path).unwrap();
        assert_eq!(m.metadata.name, "spring-2027");
        assert_eq!(m.spec.users.organizations, vec!["acme"]);
        assert_eq!(m.spec.rollback_window, Duration::from_secs(72 * 3600));
    }

    #[test]
    fn a_mistake_names_file_line_column_and_field() {
        let text = OK.replace("export:", "exprt:");
        let e = parse("m.yaml", &text).unwrap_err().to_string();
        assert!(e.starts_with("m.yaml:5:"), "{e}");
        assert!(e.contains("exprt"), "{e}");
        let text = format!("{OK}  target: {{workspaceName: '{{user}}-x'}}\n");
        let e = parse("m.yaml", &text).unwrap_err().to_string();
        assert!(e.contains("spec.target.workspaceName"), "{e}");
        assert!(e.starts_with("m.yaml:6:"), "{e}");
    }

    #[test]
    fn every_rule_of_the_kind_is_checked_at_once() {
        let text = "apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {name: v1}\nspec:\n  source: {export: 's3://x', endpoint: 'ftp://v1'}\n  users: {batchSize: 0, concurrency: 100}\n";
        let e = parse("m.yaml", text).unwrap_err().to_string();
        for field in [
            "spec.source.export",
            "spec.source.endpoint",
            "spec.users.batchSize",
            "spec.users.concurrency",
        ] {
            assert!(e.contains(field), "{field} in {e}");
        }
        assert_eq!(e.lines().count(), 4, "{e}");
    }
}
