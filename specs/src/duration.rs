//! Durations as users write them in manifests: `500ms`, `30s`, `5m`, `8h`, `1d`, `1h30m`.
//!
//! Stored as whole milliseconds and written back in the largest units that are exact, so
//! a duration round-trips through YAML unchanged and hashes the same however it was
//! spelled (`90s` and `1m30s` are one value).

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: u64,
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: expected a number with a unit (ms, s, m, h, d), e.g. 30s, 5m, 8h"
)]
pub struct DurationParseError {
    input: String,
}

/// The JSON Schema pattern of a duration string.
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";
/// How a duration is written, for error messages.
pub const DURATION_FORM: &str =
    "a duration: a number with a unit (ms, s, m, h, d), e.g. 30s, 5m, 8h, 1h30m";

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            millis: secs * 1_000,
        }
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }

    /// Whole milliseconds.
    pub const fn as_millis(&self) -> u64 {
        self.millis
    }

    /// As a std duration, for timers.
    pub const fn to_std(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl FromStr for Duration {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationParseError {
            input: s.to_string(),
        };
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(err());
        }
        let mut millis: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            let factor = UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, f)| *f)
                .ok_or_else(err)?;
            millis = n
                .checked_mul(factor)
                .and_then(|v| millis.checked_add(v))
                .ok_or_else(err)?;
            rest = &rest[unit_len..];
        }
        Ok(Duration { millis })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut left = self.millis;
        for (unit, factor) in UNITS {
            if left >= factor {
                write!(f, "{}{unit}", left / factor)?;
                left %= factor;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": DURATION_FORM
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let cases = [
            ("30s", 30_000, "30s"),
            ("5m", 300_000, "5m"),
            ("8h", 28_800_000, "8h"),
            ("90s", 90_000, "1m30s"),
            ("1h30m", 5_400_000, "1h30m"),
            ("250ms", 250, "250ms"),
            ("0s", 0, "0s"),
        ];
        for (input, millis, canonical) in cases {
            let d: Duration = input.parse().unwrap();
            assert_eq!(d.as_millis(), millis, "{input}");
            assert_eq!(d.to_string(), canonical, "{input}");
            assert_eq!(canonical.parse::<Duration>().unwrap(), d);
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "30",
            "s",
            "5x",
            "1.5h",
            "-5s",
            "5 s",
            "99999999999999999999d",
        ] {
            assert!(
                bad.parse::<Duration>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
