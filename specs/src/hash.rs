//! The spec hash: a stable fingerprint of an object's effective spec, so a reconciler can
//! tell "changed" from "applied again".
//!
//! Canonical form: the spec serialized to JSON with object keys sorted at every level and
//! no whitespace, then SHA-256. Key order in the manifest, comments, quoting style and
//! spelling of equal values (`90s` vs `1m30s`) do not change it; any change of a value does.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::resource::Resource;

/// `sha256:<hex>` of the canonical form of the resource's spec.
pub fn spec_hash(resource: &Resource) -> String {
    let canonical = canonical_json(&resource.spec_json());
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// JSON with object keys sorted at every level and no whitespace: one text per value,
/// whatever order its keys were built in. Shared by the spec hash and the event chain.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
