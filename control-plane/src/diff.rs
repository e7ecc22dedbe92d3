//! `diff`: what an apply would change, as a unified diff of the desired fields (metadata
//! that the user owns, and the effective spec) per object, like `kubectl diff`.

use coditect_specs::Resource;
use serde_json::{Value, json};

/// The fields a user owns: name, scope, labels, annotations and spec.
fn desired(r: &Resource) -> Value {
    let m = r.metadata();
    json!({
        "apiVersion": coditect_specs::API_VERSION,
        "kind": r.kind().as_str(),
        "metadata": {"name": m.name, "organization": m.organization, "team": m.team, "labels": m.labels, "annotations": m.annotations},
        "spec": r.spec_json(),
    })
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// The unified diff from `live` (absent: a new object) to `applied`; empty when equal.
pub fn unified(live: Option<&Resource>, applied: &Resource) -> String {
    let before = live.map(|l| yaml(&desired(l))).unwrap_or_default();
    let after = yaml(&desired(applied));
    if before == after {
        return String::new();
    }
    let key = applied.key().to_string();
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{key}"), &format!("applied/{key}"))
        .to_string()
}
