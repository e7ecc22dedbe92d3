//! Property tests: arbitrary YAML and arbitrary mutations of the examples never panic the
//! parser, and every failure is located (file, line >= 1, column >= 1).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use proptest::prelude::*;

fn check_located(text: &str) {
    let (docs, diags) = common::parse("fuzz.yaml", text);
    let lines = text.lines().count().max(1) + 1;
    for d in &diags {
        assert_eq!(d.file, "fuzz.yaml");
        assert!(d.pos.line >= 1 && d.pos.column >= 1, "{d}");
        assert!(d.pos.line <= lines, "{d} is past the end ({lines} lines)");
        assert!(!d.message.is_empty());
    }
    let _ = docs;
}

fn example_texts() -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(common::examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// One edit of a text: delete, insert or replace a span.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Replace { at: usize, len: usize, text: String },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop_oneof![
        Just(":".to_string()),
        Just("- ".to_string()),
        Just("\n  ".to_string()),
        Just("{".to_string()),
        Just("\"".to_string()),
        Just("&a *a".to_string()),
        Just("!!str ".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("---\n".to_string()),
        Just("\t".to_string()),
        "[a-zA-Z0-9 :\\-\\[\\]{}\n]{0,12}",
    ];
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), snippet.clone()).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), 1usize..10, snippet).prop_map(|(at, len, text)| Mutation::Replace {
            at,
            len,
            text
        }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let clamp = |at: usize| at % (chars.len() + 1);
    let (at, len, insert) = match m {
        Mutation::Delete { at, len } => (clamp(*at), *len, ""),
        Mutation::Insert { at, text } => (clamp(*at), 0, text.as_str()),
        Mutation::Replace { at, len, text } => (clamp(*at), *len, text.as_str()),
    };
    let end = (at + len).min(chars.len());
    chars[..at]
        .iter()
        .chain(insert.chars().collect::<Vec<_>>().iter())
        .chain(chars[end..].iter())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_located(&text);
    }

    #[test]
    fn arbitrary_yaml_like_text_never_panics(text in "([a-z]{1,6}: ([a-z0-9\"' ]{0,8}|\\[\\]|\\{\\}|&a|\\*a)\n( {2,4}- )?){0,20}") {
        check_located(&text);
    }

    #[test]
    fn mutated_examples_never_panic(which in 0usize..4, edits in prop::collection::vec(mutation(), 1..6)) {
        let texts = example_texts();
        let mut text = texts[which % texts.len()].clone();
        for m in &edits {
            text = apply(&text, m);
        }
        check_located(&text);
    }
}
