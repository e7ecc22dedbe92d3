//! The CustomResourceDefinitions of our kinds, generated from the Rust types: each kind's
//! JSON Schema (`coditect_specs::schema`, from the types by schemars) made structural
//! the way the API server requires, with the status subresource, printer columns, list
//! keys and CEL rules. `coditect manifests --crds` prints them; `ops/deploy/crds/` holds
//! them, committed, and a test fails when they are stale.

use coditect_specs::Kind;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::{GROUP, VERSION};

/// Whether a kind lives in a namespace (its organization's); an Organization and a
/// Migration (which spans organizations) do not.
pub fn namespaced(kind: Kind) -> bool {
    !kind.is_cluster_scoped()
}

fn short_names(kind: Kind) -> Vec<String> {
    let names: &[&str] = match kind {
        Kind::Organization => &["org"],
        Kind::Team => &[],
        Kind::Workspace => &["ws"],
        Kind::Migration => &["mig"],
    };
    names.iter().map(|s| (*s).to_string()).collect()
}

fn column(
    name: &str,
    type_: &str,
    json_path: &str,
    description: &str,
) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        json_path: json_path.into(),
        description: Some(description.into()),
        ..Default::default()
    }
}

fn columns(kind: Kind) -> Vec<CustomResourceColumnDefinition> {
    let ready = column(
        "Ready",
        "string",
        ".status.conditions[?(@.type==\"Ready\")].status",
        "Whether the object is Ready",
    );
    let age = column(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "Since creation",
    );
    match kind {
        Kind::Workspace => vec![
            ready,
            column(
                "Phase",
                "string",
                ".status.phase",
                "Running, Asleep, Starting, …",
            ),
            column("Owner", "string", ".spec.owner", "The workspace's owner"),
            age,
        ],
        Kind::Migration => vec![
            ready,
            column(
                "Phase",
                "string",
                ".status.phase",
                "Running, Waiting, Succeeded, Failed",
            ),
            column("Users", "integer", ".status.users.total", "Selected users"),
            column(
                "CutOver",
                "integer",
                ".status.users.cutOver",
                "Users served by v2, still able to roll back",
            ),
            column(
                "Completed",
                "integer",
                ".status.users.completed",
                "Users served by v2 for good",
            ),
            age,
        ],
        Kind::Organization | Kind::Team => vec![
            ready,
            column(
                "Workspaces",
                "integer",
                ".status.workspacesReady",
                "Workspaces Ready",
            ),
            column(
                "Total",
                "integer",
                ".status.workspacesTotal",
                "Workspaces in all",
            ),
            age,
        ],
    }
}

/// The CustomResourceDefinition of `kind`.
///
/// # Panics
/// Never for our kinds: their schemas are checked by this module's tests.
pub fn crd(kind: Kind) -> CustomResourceDefinition {
    let plural = kind.plural();
    let schema = coditect_specs::schema::schema(kind);
    let mut properties = Map::new();
    for part in ["spec", "status"] {
        if let Some(s) = schema["properties"].get(part) {
            let mut s = structural(s);
            if let Some(o) = s.as_object_mut() {
                o.remove("nullable");
            }
            properties.insert(part.into(), s);
        }
    }
    let root = json!({
        "type": "object",
        "description": format!("{} ({GROUP}/{VERSION}): see `coditect schema {}`", kind.as_str(), kind.as_str().to_lowercase()),
        "required": ["spec"],
        "properties": properties,
    });
    let open_api_v3_schema: JSONSchemaProps =
        serde_json::from_value(root).expect("our schemas are valid JSONSchemaProps");
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{plural}.{GROUP}")),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.into(),
            names: CustomResourceDefinitionNames {
                kind: kind.as_str().into(),
                list_kind: Some(format!("{}List", kind.as_str())),
                plural: plural.into(),
                singular: Some(kind.as_str().to_lowercase()),
                short_names: Some(short_names(kind)).filter(|s| !s.is_empty()),
                categories: Some(vec!["coditect".into()]),
            },
            scope: if namespaced(kind) {
                "Namespaced"
            } else {
                "Cluster"
            }
            .into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: VERSION.into(),
                served: true,
                storage: true,
                additional_printer_columns: Some(columns(kind)),
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(open_api_v3_schema),
                }),
                subresources: Some(CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(json!({}))),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}

/// All three CRDs.
pub fn crds() -> Vec<CustomResourceDefinition> {
    Kind::ALL.into_iter().map(crd).collect()
}

/// The formats the API server knows; schemars' `uint32` and kin are left out (their
/// `minimum: 0` stays).
const KNOWN_FORMATS: [&str; 6] = ["int32", "int64", "float", "double", "byte", "date-time"];

/// Lists whose items are told apart by one field: a list-map, so the API server refuses
/// two items with the same key and server-side apply merges by it.
const LIST_KEYS: [(&str, &str); 3] = [
    ("agents", "name"),
    ("members", "user"),
    ("projects", "name"),
];

/// A JSON Schema (draft 2020-12, inlined) as a structural OpenAPI v3 schema.
fn structural(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else {
        // `true`: anything.
        return json!({"x-kubernetes-preserve-unknown-fields": true});
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "$schema" | "title" | "default" | "examples" => {}
            "type" => match v {
                Value::Array(types) => {
                    let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if real.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                    if let [one] = real.as_slice() {
                        out.insert("type".into(), (*one).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), json!([v]));
            }
            "format" => {
                if v.as_str().is_some_and(|f| KNOWN_FORMATS.contains(&f)) {
                    out.insert(k.clone(), v.clone());
                }
            }
            "additionalProperties" => match v {
                Value::Bool(false) => {}
                Value::Bool(true) => {
                    out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
                }
                s => {
                    out.insert(k.clone(), structural(s));
                }
            },
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| (name.clone(), list_keys(name, structural(s))))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(k.clone(), structural(v));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !out.contains_key("type") && !out.contains_key("enum") {
        out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    // Credentials name exactly one source.
    if let Some(props) = out.get("properties").and_then(Value::as_object)
        && props.contains_key("env")
        && props.contains_key("secretRef")
    {
        out.insert(
            "x-kubernetes-validations".into(),
            json!([{"rule": "has(self.env) != has(self.secretRef)", "message": "exactly one of env or secretRef"}]),
        );
    }
    Value::Object(out)
}

/// Marks the lists of [`LIST_KEYS`] as list-maps keyed by their field.
fn list_keys(name: &str, mut schema: Value) -> Value {
    if let Some((_, key)) = LIST_KEYS.iter().find(|(list, _)| *list == name)
        && schema["type"] == "array"
        && schema["items"]["properties"].get(*key).is_some()
        && let Some(o) = schema.as_object_mut()
    {
        o.insert("x-kubernetes-list-type".into(), json!("map"));
        o.insert("x-kubernetes-list-map-keys".into(), json!([key]));
        if let Some(items) = o.get_mut("items").and_then(Value::as_object_mut) {
            let required = items.entry("required").or_insert_with(|| json!([]));
            if let Some(r) = required.as_array_mut()
                && !r.iter().any(|k| k == key)
            {
                r.push(json!(key));
            }
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what a structural schema may not hold, walking schemas (not the
    /// field names of a `properties` map).
    fn walk(schema: &Value, path: &str, out: &mut Vec<String>) {
        let Some(o) = schema.as_object() else { return };
        for (k, c) in o {
            match k.as_str() {
                "$schema" | "title" | "default" | "const" | "anyOf" | "oneOf" | "allOf" => {
                    out.push(format!("{path}.{k}"));
                }
                "type" if !c.is_string() => out.push(format!("{path}.type is {c}")),
                "additionalProperties" if c.is_boolean() => {
                    out.push(format!("{path}.additionalProperties: {c}"));
                }
                "additionalProperties" | "items" => walk(c, &format!("{path}.{k}"), out),
                "properties" => {
                    for (name, field) in c.as_object().into_iter().flatten() {
                        walk(field, &format!("{path}.{name}"), out);
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn every_crd_schema_is_structural() {
        for kind in Kind::ALL {
            let crd = serde_json::to_value(crd(kind)).unwrap();
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut bad = Vec::new();
            walk(schema, "", &mut bad);
            assert!(bad.is_empty(), "{kind:?}: {bad:#?}");
            assert_eq!(schema["properties"]["spec"]["type"], "object", "{kind:?}");
            assert_eq!(schema["properties"]["status"]["type"], "object", "{kind:?}");
        }
    }

    #[test]
    fn workspaces_print_ready_phase_owner_and_age_and_agents_are_keyed_by_name() {
        let crd = serde_json::to_value(crd(Kind::Workspace)).unwrap();
        let version = &crd["spec"]["versions"][0];
        let names: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Ready", "Phase", "Owner", "Age"]);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["metadata"]["name"], "workspaces.coditect.io");
        let agents =
            &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["agents"];
        assert_eq!(agents["x-kubernetes-list-type"], "map");
        assert_eq!(agents["x-kubernetes-list-map-keys"], json!(["name"]));
        let creds = &agents["items"]["properties"]["credentials"];
        assert_eq!(
            creds["x-kubernetes-validations"][0]["rule"],
            "has(self.env) != has(self.secretRef)"
        );
        assert_eq!(
            serde_json::to_value(super::crd(Kind::Organization)).unwrap()["spec"]["scope"],
            "Cluster"
        );
    }
}
