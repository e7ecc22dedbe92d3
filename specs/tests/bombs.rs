//! YAML bombs are refused with a clear, located error, without being built: nested
//! aliases (billion laughs), deep nesting, and a huge text.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use coditect_specs::parse_str;

fn errors(text: &str) -> Vec<String> {
    let (docs, diags) = parse_str("bomb.yaml", Path::new("."), text);
    assert!(docs.is_empty(), "nothing is accepted from a bomb");
    diags.iter().map(ToString::to_string).collect()
}

#[test]
fn nested_aliases_are_refused_before_they_expand() {
    let mut text = String::from(
        "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: w, organization: o, team: t}\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for level in 1..=9 {
        let prev = format!("*a{}", level - 1);
        text.push_str(&format!(
            "a{level}: &a{level} [{}]\n",
            vec![prev; 9].join(", ")
        ));
    }
    text.push_str("spec: {owner: a}\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("bomb.yaml:") && errors[0].contains("refused as a YAML bomb"),
        "{errors:?}"
    );
    // A manifest that uses aliases the ordinary way still parses.
    let fine = "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: w, organization: o, team: t}\nspec:\n  owner: a\n  agents:\n    - &agent {name: a, provider: offline}\n";
    let (docs, diags) = parse_str("fine.yaml", Path::new("."), fine);
    assert!(diags.is_empty() && docs.len() == 1, "{diags:?}");
}

#[test]
fn deep_nesting_is_refused_with_its_place() {
    let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let errors = errors(&text);
    assert!(
        errors[0].contains("bomb.yaml:1:") && errors[0].contains("recursion limit"),
        "{errors:?}"
    );
}

#[test]
fn a_huge_text_is_refused_without_being_parsed() {
    let text = format!("a: \"{}\"\n", "x".repeat(9 << 20));
    let errors = errors(&text);
    assert!(errors[0].contains("limited to 8 MiB"), "{errors:?}");
}
