//! JSON Schema for each kind, generated from the Rust types, and structural validation of
//! a document against it.
//!
//! The schema is generated with every subschema inlined and without `anyOf` for optional
//! fields, the shape a Kubernetes CRD's structural schema needs, so the same schema
//! serves `coditect schema`, the CRDs, and the check here. Checking against the schema
//! (rather than stopping at serde's first error) is what lets a file report *all* its
//! unknown fields, wrong types and bad enum values at once.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::error::Violation;
use crate::located::{FieldPath, PathSegment};
use crate::resource::{API_VERSION, Kind, Migration, Organization, Team, Workspace};
use crate::suggest::did_you_mean;

/// The JSON Schema (draft 2020-12) of a kind.
pub fn schema(kind: Kind) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let generator = settings.into_generator();
    let schema = match kind {
        Kind::Organization => generator.into_root_schema_for::<Organization>(),
        Kind::Team => generator.into_root_schema_for::<Team>(),
        Kind::Workspace => generator.into_root_schema_for::<Workspace>(),
        Kind::Migration => generator.into_root_schema_for::<Migration>(),
    };
    let mut value = schema.to_value();
    simplify(&mut value);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("title".into(), json!(kind.as_str()));
        obj.insert(
            "description".into(),
            json!(format!("{} ({API_VERSION})", kind.as_str())),
        );
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(
                "apiVersion".into(),
                json!({"type": "string", "const": API_VERSION}),
            );
            props.insert(
                "kind".into(),
                json!({"type": "string", "const": kind.as_str()}),
            );
        }
    }
    value
}

/// Turns `oneOf` lists of documented constants (how schemars writes a unit enum whose
/// variants have doc comments) into a plain `enum`, which CRDs require and which gives
/// one clear error instead of one per variant.
fn simplify(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            let consts = obj.get("oneOf").and_then(Value::as_array).and_then(|alts| {
                alts.iter()
                    .map(|a| a.get("const").cloned())
                    .collect::<Option<Vec<_>>>()
            });
            if let Some(consts) = consts {
                obj.remove("oneOf");
                obj.insert("type".into(), json!("string"));
                obj.insert("enum".into(), Value::Array(consts));
            }
            obj.values_mut().for_each(simplify);
            // An optional enum (`anyOf: [{enum…}, {type: null}]`) becomes one schema whose
            // type and values admit null, as schemars writes other optional values.
            let optional = obj.get("anyOf").and_then(Value::as_array).and_then(|alts| {
                let [a, b] = alts.as_slice() else { return None };
                let null = json!({"type": "null"});
                match (a == &null, b == &null) {
                    (false, true) => Some(a.clone()),
                    (true, false) => Some(b.clone()),
                    _ => None,
                }
            });
            if let Some(Value::Object(inner)) = optional {
                obj.remove("anyOf");
                for (k, v) in inner {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => json!([t, "null"]),
                        ("enum", Value::Array(mut values)) => {
                            values.push(Value::Null);
                            Value::Array(values)
                        }
                        (_, v) => v,
                    };
                    obj.entry(k).or_insert(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

/// The schema of `kind` and its compiled validator, each made once per process and only
/// for the kinds a process meets: an instance reads one Workspace per start.
///
/// The schema is written as draft 2020-12 (for `coditect schema` and the CRDs) but checked
/// here as draft 7, with formats as annotations as 2020-12 has them. It uses only keywords
/// that mean the same in both drafts (a test holds it to that), and compiling it against
/// 2020-12 first builds that draft's meta-schema, with its dynamic references: 1.9 ms of
/// the 2.3 ms a first compile took, in every instance start.
struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compiled(kind: Kind) -> &'static Compiled {
    static COMPILED: [OnceLock<Compiled>; Kind::ALL.len()] =
        [const { OnceLock::new() }; Kind::ALL.len()];
    let index = Kind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("invariant: every kind is in Kind::ALL");
    COMPILED[index].get_or_init(|| {
        let schema = schema(kind);
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(false)
            .build(&schema)
            .expect("invariant: schemas generated from our own types compile");
        Compiled { schema, validator }
    })
}

/// Every way `value` departs from the schema of `kind`.
pub(crate) fn check(kind: Kind, value: &Value) -> Vec<Violation> {
    let Compiled { schema, validator } = compiled(kind);
    validator
        .iter_errors(value)
        .flat_map(|e| violations(schema, &e))
        .collect()
}

fn violations(root: &Value, e: &jsonschema::ValidationError<'_>) -> Vec<Violation> {
    use jsonschema::error::ValidationErrorKind as K;
    let path = FieldPath(
        e.instance_path()
            .iter()
            .map(|seg| match seg {
                jsonschema::paths::LocationSegment::Property(p) => PathSegment::Key(p.to_string()),
                jsonschema::paths::LocationSegment::Index(i) => PathSegment::Index(i),
            })
            .collect(),
    );
    let keyword_parent = parent_schema(root, e.schema_path().as_str());
    let instance = e.instance();
    let one = |message: String| {
        vec![Violation {
            path: path.clone(),
            at_key: false,
            message,
        }]
    };
    match e.kind() {
        K::AdditionalProperties { unexpected } => {
            let known: Vec<&str> = keyword_parent
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|field| Violation {
                    path: path.key(field),
                    at_key: true,
                    message: format!(
                        "unknown field {field:?}{}",
                        did_you_mean(field, known.iter().copied())
                    ),
                })
                .collect()
        }
        K::Enum { options } => {
            let noun = match path.0.last() {
                Some(PathSegment::Key(k)) => k.as_str(),
                _ => "value",
            };
            let allowed: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let shown = instance
                .as_str()
                .map_or_else(|| instance.to_string(), |s| format!("{s:?}"));
            let hint = instance
                .as_str()
                .map(|s| did_you_mean(s, allowed.iter().copied()))
                .unwrap_or_default();
            one(format!(
                "unknown {noun} {shown}{hint}; expected one of: {}",
                allowed.join(", ")
            ))
        }
        K::Type { .. } => {
            let expected = keyword_parent
                .and_then(|s| s.get("type"))
                .map(describe_type)
                .unwrap_or_else(|| "another type".to_string());
            one(format!("expected {expected}, got {}", json_type(instance)))
        }
        K::Required { property } => {
            let field = property.as_str().unwrap_or_default();
            vec![Violation {
                path: path.key(field),
                at_key: false,
                message: format!("missing required field {field:?}"),
            }]
        }
        K::Pattern { pattern } => {
            let what = match pattern.as_str() {
                crate::duration::DURATION_PATTERN => crate::duration::DURATION_FORM,
                crate::quantity::QUANTITY_PATTERN => crate::quantity::QUANTITY_FORM,
                other => other,
            };
            one(format!("invalid value {instance}: expected {what}"))
        }
        K::Constant { expected_value } => one(format!("must be {expected_value}, got {instance}")),
        _ => one(e.to_string()),
    }
}

/// The schema object that holds the keyword a schema path ends in.
fn parent_schema<'a>(root: &'a Value, schema_path: &str) -> Option<&'a Value> {
    let mut parts: Vec<&str> = schema_path.split('/').filter(|p| !p.is_empty()).collect();
    parts.pop();
    let mut node = root;
    for part in parts {
        let part = part.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(m) => m.get(&part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn describe_type(t: &Value) -> String {
    match t {
        Value::String(s) => article(s),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| *s != "null")
            .map(article)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "another type".to_string(),
    }
}

fn article(t: &str) -> String {
    match t {
        "object" => "a mapping".to_string(),
        "array" => "a list".to_string(),
        "integer" => "an integer".to_string(),
        other => format!("a {other}"),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_have_no_refs_or_any_of() {
        for kind in Kind::ALL {
            let text = schema(kind).to_string();
            assert!(!text.contains("\"$ref\""), "{kind} schema has $ref");
            assert!(!text.contains("\"anyOf\""), "{kind} schema has anyOf");
            assert!(!text.contains("\"oneOf\""), "{kind} schema has oneOf");
        }
    }

    /// `check` reads the 2020-12 schemas as draft 7: only keywords whose meaning is the same
    /// in both may appear, and each schema must still be valid 2020-12.
    #[test]
    fn schemas_mean_the_same_in_draft_7_and_2020_12() {
        const SHARED: &[&str] = &[
            "$schema",
            "title",
            "description",
            "default",
            "type",
            "properties",
            "additionalProperties",
            "required",
            "items",
            "enum",
            "const",
            "pattern",
            "minimum",
            "maximum",
            "format",
        ];
        fn keywords(schema: &Value, out: &mut Vec<String>) {
            let Some(obj) = schema.as_object() else {
                return;
            };
            for (k, v) in obj {
                out.push(k.clone());
                match k.as_str() {
                    "properties" => v
                        .as_object()
                        .into_iter()
                        .flat_map(|p| p.values())
                        .for_each(|s| keywords(s, out)),
                    "items" | "additionalProperties" => keywords(v, out),
                    _ => {}
                }
            }
        }
        for kind in Kind::ALL {
            let s = schema(kind);
            assert!(jsonschema::meta::is_valid(&s), "{kind}: not valid 2020-12");
            let mut used = Vec::new();
            keywords(&s, &mut used);
            let odd: Vec<_> = used
                .iter()
                .filter(|k| !SHARED.contains(&k.as_str()))
                .collect();
            assert!(odd.is_empty(), "{kind} uses {odd:?}");
        }
    }

    #[test]
    fn reports_every_violation() {
        let doc = json!({
            "apiVersion": "coditect.io/v1", "kind": "Workspace",
            "metadata": {"name": "w", "colour": "red"},
            "spec": {"owner": 5, "agents": [{"name": "a", "provider": "antropic"}], "bogus": 1}
        });
        let v = check(Kind::Workspace, &doc);
        let rendered: Vec<String> = v
            .iter()
            .map(|v| format!("{}: {}", v.path, v.message))
            .collect();
        assert!(
            rendered
                .iter()
                .any(|r| r.starts_with("metadata.colour: unknown field")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|r| r.starts_with("spec.bogus: unknown field")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|r| r == "spec.owner: expected a string, got an integer"),
            "{rendered:?}"
        );
        assert!(
            rendered.iter().any(|r| r.starts_with(
                r#"spec.agents[0].provider: unknown provider "antropic" (did you mean "anthropic"?)"#
            )),
            "{rendered:?}"
        );
    }
}
