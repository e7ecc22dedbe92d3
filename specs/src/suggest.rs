//! "Did you mean" suggestions for misspelt field names and enum values.

/// ` (did you mean "x"?)` when one candidate is close to `input`, else an empty string.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::levenshtein(&input.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("antropic", ["anthropic", "google"]),
            r#" (did you mean "anthropic"?)"#
        );
        assert_eq!(
            did_you_mean("leaseTTL", ["leaseTtl", "acquireTimeout"]),
            r#" (did you mean "leaseTtl"?)"#
        );
        assert_eq!(did_you_mean("zzz", ["anthropic", "google"]), "");
    }
}
