//! Label selectors as kubectl writes them: `app=web,tier!=db,owner` (equality, inequality,
//! existence), all of which must hold.

use std::collections::BTreeMap;

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {0:?}: expected key=value, key!=value or key, separated by commas")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// Parses `a=b,c!=d,e`.
    ///
    /// # Errors
    /// [`SelectorError`] for empty keys.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let term = if let Some((k, v)) = part.split_once("!=") {
                Term::NotEquals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Term::Equals(k.trim().to_string(), v.trim().to_string())
            } else {
                Term::Exists(part.to_string())
            };
            let key = match &term {
                Term::Equals(k, _) | Term::NotEquals(k, _) | Term::Exists(k) => k,
            };
            if key.is_empty() {
                return Err(SelectorError(text.to_string()));
            }
            terms.push(term);
        }
        Ok(LabelSelector { terms })
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::NotEquals(k, v) => labels.get(k) != Some(v),
            Term::Exists(k) => labels.contains_key(k),
        })
    }

    /// Whether it has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects() {
        let labels: BTreeMap<String, String> = [
            ("owner".into(), "alice".into()),
            ("tier".into(), "demo".into()),
        ]
        .into();
        let yes = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(yes(""));
        assert!(yes("owner=alice"));
        assert!(yes("owner==alice,tier"));
        assert!(yes("owner!=bob"));
        assert!(!yes("owner=bob"));
        assert!(!yes("missing"));
        assert!(LabelSelector::parse("=x").is_err());
    }
}
