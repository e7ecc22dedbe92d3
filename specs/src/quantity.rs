//! Resource quantities in the Kubernetes notation: `2`, `500m` (milli-CPU), `4Gi`, `512Mi`.
//!
//! Kept as the user's string (so YAML round-trips and CRDs read the same) after checking
//! the notation; [`Quantity::value`] gives the number for quota and cost arithmetic.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A checked resource quantity such as `4Gi` or `500m`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quantity(String);

/// Why a quantity string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid quantity {input:?}: expected a number with an optional suffix (m, k, M, G, T, Ki, Mi, Gi, Ti), e.g. 2, 500m, 4Gi"
)]
pub struct QuantityParseError {
    input: String,
}

/// The JSON Schema pattern of a quantity string.
pub const QUANTITY_PATTERN: &str = "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$";
/// How a quantity is written, for error messages.
pub const QUANTITY_FORM: &str = "a quantity: a number with an optional suffix (m, k, M, G, T, Ki, Mi, Gi, Ti), e.g. 2, 500m, 4Gi";

const SUFFIXES: [(&str, f64); 9] = [
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("m", 0.001),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
];

impl Quantity {
    /// A quantity from a literal known to be valid (defaults).
    pub(crate) fn from_static(s: &'static str) -> Self {
        debug_assert!(split(s).is_some(), "invalid quantity literal {s}");
        Quantity(s.to_string())
    }

    /// The quantity as a number of base units (cores, bytes).
    pub fn value(&self) -> f64 {
        split(&self.0).map_or(0.0, |(n, f)| n * f)
    }
}

fn split(s: &str) -> Option<(f64, f64)> {
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((s, 1.0));
    let valid = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1;
    if !valid {
        return None;
    }
    number.parse::<f64>().ok().map(|n| (n, factor))
}

impl FromStr for Quantity {
    type Err = QuantityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match split(s) {
            Some(_) => Ok(Quantity(s.to_string())),
            None => Err(QuantityParseError {
                input: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Kubernetes accepts `cpu: 2` as well as `cpu: "2"`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::Int(n) => n.to_string(),
            Raw::Str(s) => s,
        };
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer"],
            "minimum": 0,
            "pattern": QUANTITY_PATTERN,
            "description": QUANTITY_FORM
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let q = |s: &str| s.parse::<Quantity>().unwrap().value();
        assert_eq!(q("2"), 2.0);
        assert_eq!(q("500m"), 0.5);
        assert_eq!(q("4Gi"), 4.0 * 1_073_741_824.0);
        assert_eq!(q("1.5G"), 1.5e9);
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["", "Gi", "4gb", "-1", "1..2", ".5", "4 Gi"] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad:?}");
        }
    }
}
