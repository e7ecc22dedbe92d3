//! Thresholds in the spirit of k6: per metric, a list of expressions such as
//! `p(99)<150ms`, `p(95)<=1s`, `avg<20ms`, `max<2s`, `med<5ms`, `rate<0.01`, `rate>0.999`.
//!
//! ```yaml
//! thresholds:
//!   startup: ["p(99)<30s"]
//!   availability: ["rate>0.999"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// What an expression looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A percentile, 0–100.
    Percentile(f64),
    /// Mean.
    Avg,
    /// Median.
    Med,
    /// Maximum.
    Max,
    /// Share of successes (availability) or failures (errors), 0–1.
    Rate,
}

/// `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// Less than.
    Lt,
    /// At most.
    Le,
    /// More than.
    Gt,
    /// At least.
    Ge,
}

/// One parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What it reads.
    pub stat: Stat,
    /// How it compares.
    pub cmp: Cmp,
    /// The limit: seconds for latencies, a fraction for rates.
    pub limit: f64,
    /// As written.
    pub text: String,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a thresholds file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// What serde said (with line and column).
        message: String,
    },
    /// An expression could not be parsed.
    #[error("{path}: thresholds.{metric}: invalid expression {expr:?}: {why}")]
    Expr {
        /// The file.
        path: String,
        /// The metric.
        metric: String,
        /// The expression.
        expr: String,
        /// Why.
        why: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    thresholds: BTreeMap<String, Vec<String>>,
}

/// Every metric's thresholds.
pub type Thresholds = BTreeMap<String, Vec<Threshold>>;

/// Reads a thresholds file.
///
/// # Errors
/// [`ThresholdError`] naming the file, metric and expression.
pub fn load(path: &Path) -> Result<Thresholds, ThresholdError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ThresholdError::Read {
        path: name.clone(),
        source,
    })?;
    parse(&name, &text)
}

/// Parses thresholds text; `name` is used in errors.
///
/// # Errors
/// [`ThresholdError`].
pub fn parse(name: &str, text: &str) -> Result<Thresholds, ThresholdError> {
    let file: File = serde_yaml::from_str(text).map_err(|e| ThresholdError::Yaml {
        path: name.to_string(),
        message: e.to_string(),
    })?;
    let mut out = Thresholds::new();
    for (metric, exprs) in file.thresholds {
        let mut parsed = Vec::new();
        for expr in exprs {
            let t = parse_expr(&expr).map_err(|why| ThresholdError::Expr {
                path: name.to_string(),
                metric: metric.clone(),
                expr: expr.clone(),
                why,
            })?;
            parsed.push(t);
        }
        out.insert(metric, parsed);
    }
    Ok(out)
}

fn parse_expr(expr: &str) -> Result<Threshold, String> {
    let compact: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let (pos, cmp, len) = ["<=", ">=", "<", ">"]
        .iter()
        .find_map(|op| compact.find(op).map(|i| (i, *op, op.len())))
        .ok_or("expected a comparison (<, <=, >, >=)")?;
    let cmp = match cmp {
        "<=" => Cmp::Le,
        ">=" => Cmp::Ge,
        "<" => Cmp::Lt,
        _ => Cmp::Gt,
    };
    let (lhs, rhs) = (&compact[..pos], &compact[pos + len..]);
    let stat = match lhs {
        "avg" => Stat::Avg,
        "med" => Stat::Med,
        "max" => Stat::Max,
        "rate" => Stat::Rate,
        p if p.starts_with("p(") && p.ends_with(')') => {
            let q: f64 = p[2..p.len() - 1]
                .parse()
                .map_err(|_| format!("bad percentile {p}"))?;
            if !(0.0..=100.0).contains(&q) {
                return Err(format!("percentile {q} is not between 0 and 100"));
            }
            Stat::Percentile(q)
        }
        other => {
            return Err(format!(
                "unknown statistic {other:?}: expected p(N), avg, med, max or rate"
            ));
        }
    };
    let limit = if stat == Stat::Rate {
        rhs.parse::<f64>()
            .map_err(|_| format!("a rate limit is a number between 0 and 1, got {rhs:?}"))?
    } else {
        parse_duration(rhs)?.as_secs_f64()
    };
    Ok(Threshold {
        stat,
        cmp,
        limit,
        text: expr.trim().to_string(),
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => {
            return Err(format!(
                "bad duration unit in {s:?}: expected us, ms, s or m"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

impl Threshold {
    /// Whether `value` (seconds, or a rate) passes.
    pub fn passes(&self, value: f64) -> bool {
        match self.cmp {
            Cmp::Lt => value < self.limit,
            Cmp::Le => value <= self.limit,
            Cmp::Gt => value > self.limit,
            Cmp::Ge => value >= self.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_style_expressions() {
        let t = parse(
            "k.yaml",
            "thresholds:\n  startup: ['p(99)<150ms', 'max <= 2s']\n  errors: ['rate<0.01']\n",
        )
        .unwrap();
        assert_eq!(t["startup"][0].stat, Stat::Percentile(99.0));
        assert!((t["startup"][0].limit - 0.150).abs() < 1e-9);
        assert_eq!(t["startup"][1].cmp, Cmp::Le);
        assert!(t["errors"][0].passes(0.001) && !t["errors"][0].passes(0.02));
    }

    #[test]
    fn refuses_bad_expressions_naming_them() {
        let err = parse("k.yaml", "thresholds:\n  startup: ['p(99)~150ms']\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("k.yaml: thresholds.startup: invalid expression \"p(99)~150ms\""),
            "{err}"
        );
        assert!(parse("k.yaml", "thresholds:\n  x: ['p(101)<1s']\n").is_err());
        assert!(parse("k.yaml", "thresholds:\n  x: ['avg<5 parsecs']\n").is_err());
        assert!(parse("k.yaml", "threshold:\n  x: []\n").is_err());
    }
}
