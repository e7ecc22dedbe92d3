//! `kind: Migration`: what a platform team declares — where the v1 export and endpoint
//! are, where users land, which users and in what batches, how verification, cutover and
//! rollback behave. Read here (with the file, line and column of a mistake) for
//! `coditect migrate plan`, which works offline.

use std::path::Path;

use coditect_specs::Duration;
use coditect_specs::agent::AgentSpec;
use coditect_specs::workspace::Resources;
use serde::{Deserialize, Serialize};

use crate::error::MigrateError;
use crate::export::V1User;

/// A Migration manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    /// `coditect.io/v1`.
    pub api_version: String,
    /// `Migration`.
    pub kind: String,
    /// Its name.
    pub metadata: MigrationMeta,
    /// What to migrate, and how.
    pub spec: MigrationSpec,
}

/// A Migration's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationMeta {
    /// The name (`coditect migrate status NAME`).
    pub name: String,
}

/// What to migrate, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationSpec {
    /// v1's export and endpoint.
    pub source: Source,
    /// Where users land.
    #[serde(default)]
    pub target: Target,
    /// Which users, in what batches.
    #[serde(default)]
    pub users: UserSelection,
    /// Cutover policy.
    #[serde(default)]
    pub cutover: CutoverPolicy,
    /// How long a cut-over user can still be rolled back to v1.
    #[serde(default = "rollback_window")]
    pub rollback_window: Duration,
}

fn rollback_window() -> Duration {
    Duration::from_secs(72 * 3600)
}

/// v1's export and endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// The export: `gs://bucket/prefix` or `file:///abs/path`.
    pub export: String,
    /// The live v1 endpoint that serves users until they are cut over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Where users land.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// The organization every user lands in; absent: the user's own `org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The team; absent: the user's own `team`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The workspace's name, `{login}` replaced (default `{login}-main`).
    #[serde(default = "workspace_name")]
    pub workspace_name: String,
    /// Resources of each workspace (the team's defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The agents' settings by v1 agent name (`claude`, `gemini`, `codex`, `kimi`); an
    /// agent not named gets its provider's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentSpec>,
}

fn workspace_name() -> String {
    "{login}-main".into()
}

impl Default for Target {
    fn default() -> Self {
        Target {
            organization: None,
            team: None,
            workspace_name: workspace_name(),
            resources: None,
            agents: Vec::new(),
        }
    }
}

/// Which users, in what batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSelection {
    /// Only these logins (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    /// Only users of these v1 organizations (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// Users per batch.
    #[serde(default = "batch_size")]
    pub batch_size: u32,
    /// Users copied at once.
    #[serde(default = "concurrency")]
    pub concurrency: u32,
}

fn batch_size() -> u32 {
    50
}

fn concurrency() -> u32 {
    4
}

impl Default for UserSelection {
    fn default() -> Self {
        UserSelection {
            logins: Vec::new(),
            organizations: Vec::new(),
            batch_size: batch_size(),
            concurrency: concurrency(),
        }
    }
}

impl UserSelection {
    /// Whether `user` is selected.
    pub fn selects(&self, user: &V1User) -> bool {
        (self.logins.is_empty() || self.logins.contains(&user.login))
            && (self.organizations.is_empty() || self.organizations.contains(&user.org))
    }
}

/// Cutover policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CutoverPolicy {
    /// Cut users over as soon as they verify Perfect (else: `coditect migrate promote`).
    #[serde(default)]
    pub auto_promote: bool,
    /// The longest a user's requests may be held during their cutover.
    #[serde(default = "max_pause")]
    pub max_pause: Duration,
}

fn max_pause() -> Duration {
    Duration::from_secs(1)
}

impl Default for CutoverPolicy {
    fn default() -> Self {
        CutoverPolicy {
            auto_promote: false,
            max_pause: max_pause(),
        }
    }
}

/// Placeholders a workspace-name template may use.
const PLACEHOLDERS: [&str; 3] = ["{login}", "{org}", "{team}"];

impl Migration {
    /// Reads a Migration from `path`.
    ///
    /// # Errors
    /// The file cannot be read, or is not a Migration: the message names the file, the
    /// line and column, and the field.
    pub fn load(path: &Path) -> Result<Self, MigrateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| MigrateError::Spec(format!("{}: {e}", path.display())))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Reads a Migration from `text`; `file` names it in errors.
    ///
    /// # Errors
    /// As [`Migration::load`].
    pub fn parse(file: &str, text: &str) -> Result<Self, MigrateError> {
        let m: Migration = serde_yaml::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            MigrateError::Spec(format!("{file}{at}: {e}"))
        })?;
        let bad = |field: &str, why: String| MigrateError::Spec(format!("{file}: {field}: {why}"));
        if m.api_version != "coditect.io/v1" {
            return Err(bad(
                "apiVersion",
                format!("{:?} is not coditect.io/v1", m.api_version),
            ));
        }
        if m.kind != "Migration" {
            return Err(bad("kind", format!("{:?} is not Migration", m.kind)));
        }
        let template = &m.spec.target.workspace_name;
        if !template.contains("{login}") {
            return Err(bad(
                "spec.target.workspaceName",
                format!("{template:?} must contain {{login}}: one workspace per user"),
            ));
        }
        let mut rest = template.clone();
        for p in PLACEHOLDERS {
            rest = rest.replace(p, "x");
        }
        if rest.contains('{') || rest.contains('}') {
            return Err(bad(
                "spec.target.workspaceName",
                format!("{template:?}: only {} may be used", PLACEHOLDERS.join(", ")),
            ));
        }
        if m.spec.users.batch_size == 0 || m.spec.users.concurrency == 0 {
            return Err(bad(
                "spec.users",
                "batchSize and concurrency must be at least 1".into(),
            ));
        }
        Ok(m)
    }

    /// Where `user` lands: (organization, team, workspace name).
    pub fn landing(&self, user: &V1User) -> (String, String, String) {
        let t = &self.spec.target;
        let org = t.organization.clone().unwrap_or_else(|| user.org.clone());
        let team = t.team.clone().unwrap_or_else(|| user.team.clone());
        let name = t
            .workspace_name
            .replace("{login}", &user.login)
            .replace("{org}", &user.org)
            .replace("{team}", &user.team);
        (org, team, name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const OK: &str = "apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {name: v1}\nspec:\n  source: {export: 'file:///tmp/x'}\n";

    #[test]
    fn defaults_fill_what_is_not_said() {
        let m = Migration::parse("m.yaml", OK).unwrap();
        assert_eq!(m.spec.target.workspace_name, "{login}-main");
        assert_eq!(m.spec.users.batch_size, 50);
        assert!(!m.spec.cutover.auto_promote);
    }

    #[test]
    fn the_example_in_the_readme_reads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/migration.yaml");
        let m = Migration::load(&path).unwrap();
        assert_eq!(m.metadata.name, "spring-2027");
        assert_eq!(m.spec.users.organizations, vec!["acme"]);
        assert_eq!(m.spec.rollback_window, Duration::from_secs(72 * 3600));
    }

    #[test]
    fn a_mistake_names_file_line_column_and_field() {
        let text = OK.replace("export:", "exprt:");
        let e = Migration::parse("m.yaml", &text).unwrap_err().to_string();
        assert!(e.starts_with("m.yaml:5:"), "{e}");
        assert!(e.contains("unknown field `exprt`"), "{e}");
        let text = format!("{OK}  target: {{workspaceName: '{{user}}-x'}}\n");
        let e = Migration::parse("m.yaml", &text).unwrap_err().to_string();
        assert!(e.contains("spec.target.workspaceName"), "{e}");
    }
}
