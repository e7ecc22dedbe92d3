//! The example manifests: every valid one validates, every invalid one fails with exactly
//! the located errors its `# expect:` lines name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use coditect_specs::{Catalog, Kind, Provider, Resource, SpecError};

#[test]
fn every_example_parses_and_validates() {
    let docs = common::examples();
    let kinds: Vec<Kind> = docs.iter().map(|d| d.resource.kind()).collect();
    assert_eq!(
        kinds,
        [
            Kind::Organization,
            Kind::Team,
            Kind::Workspace,
            Kind::Workspace
        ]
    );
    for doc in &docs {
        let Resource::Workspace(ws) = &doc.resource else {
            continue;
        };
        let providers: Vec<Provider> = ws.spec.agents.iter().map(|a| a.provider).collect();
        for p in [
            Provider::Anthropic,
            Provider::Google,
            Provider::Openai,
            Provider::Moonshot,
        ] {
            assert!(providers.contains(&p), "{} lacks {p:?}", ws.metadata.name);
        }
    }
}

#[test]
fn every_invalid_example_yields_its_located_errors() {
    let dir = common::examples_dir().join("invalid");
    let known = common::examples_catalog();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected several invalid examples");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no # expect: lines",
            file.display()
        );
        let err = coditect_specs::load_effective(&file, false, &known)
            .expect_err(&format!("{} should be invalid", file.display()));
        let SpecError::Invalid { diagnostics } = err else {
            panic!("{err}")
        };
        let name = file.display().to_string();
        let actual: Vec<String> = diagnostics
            .iter()
            .map(|d| {
                assert_eq!(d.file, name);
                d.to_string()[name.len() + 1..].to_string()
            })
            .collect();
        assert_eq!(actual.len(), expected.len(), "{name}: got {actual:#?}");
        for (a, e) in actual.iter().zip(&expected) {
            assert!(a.starts_with(e), "{name}:\n  expected {e}\n  got      {a}");
        }
    }
}

#[test]
fn unknown_fields_are_rejected_not_dropped() {
    let text = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata:\n  name: a\n  nmae: b\nspec:\n  displayname: A\n";
    let (docs, diags) = common::parse("u.yaml", text);
    assert!(docs.is_empty());
    let rendered: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            r#"u.yaml:5:3: metadata.nmae: unknown field "nmae" (did you mean "name"?)"#,
            r#"u.yaml:7:3: spec.displayname: unknown field "displayname" (did you mean "displayName"?)"#,
        ]
    );
}

#[test]
fn all_errors_of_a_file_are_collected_across_documents() {
    let text = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: A}\nspec: {}\n---\napiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: b}\nspec: {quotas: {maxWorkspaces: -1}}\n";
    let (_, diags) = common::parse("m.yaml", text);
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_eq!((diags[0].pos.line, diags[1].pos.line), (3, 9));
}

#[test]
fn references_resolve_against_the_known_set() {
    let ws = std::fs::read_to_string(common::examples_dir().join("04-workspace-bob.yaml")).unwrap();
    let file = tempfile::NamedTempFile::with_suffix(".yaml").unwrap();
    std::fs::write(file.path(), &ws).unwrap();
    // Alone, the workspace's organization is unknown ...
    let err = coditect_specs::load_effective(file.path(), false, &Catalog::default()).unwrap_err();
    assert!(
        err.diagnostics()[0]
            .message
            .contains("organization \"acme\" is not declared")
    );
    // ... but valid once the control plane knows the organization and team.
    let docs =
        coditect_specs::load_effective(file.path(), false, &common::examples_catalog()).unwrap();
    assert_eq!(docs.len(), 1);
}

#[test]
fn workspace_owner_must_be_a_team_member() {
    let text = std::fs::read_to_string(common::examples_dir().join("04-workspace-bob.yaml"))
        .unwrap()
        .replace("owner: bob", "owner: mallory");
    let (mut docs, diags) = common::parse("w.yaml", &text);
    assert!(diags.is_empty());
    let err =
        coditect_specs::check_and_default(&mut docs, &common::examples_catalog()).unwrap_err();
    assert_eq!(
        err.diagnostics()[0].to_string(),
        r#"w.yaml:12:10: spec.owner: "mallory" is not a member of team "platform""#
    );
}

#[test]
fn duplicate_objects_in_one_apply_are_refused() {
    let org = std::fs::read_to_string(common::examples_dir().join("01-organization.yaml")).unwrap();
    let text = format!("{org}---\n{org}");
    let (mut docs, diags) = common::parse("d.yaml", &text);
    assert!(diags.is_empty());
    let err = coditect_specs::check_and_default(&mut docs, &Catalog::default()).unwrap_err();
    assert!(
        err.diagnostics()[0]
            .message
            .starts_with("duplicate organization/acme (first declared at d.yaml:6:9)"),
        "{err:?}"
    );
}
