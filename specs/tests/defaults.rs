//! Defaults are explicit, idempotent and survive a round trip through YAML; the spec hash
//! ignores spelling and order but sees every change of value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use coditect_specs::{Catalog, Resource, apply_defaults, spec_hash};

#[test]
fn defaults_are_filled_visibly() {
    let docs = common::examples();
    let Resource::Workspace(bob) = &docs[3].resource else {
        panic!("bob is a workspace")
    };
    assert_eq!(bob.spec.session.max_duration.to_string(), "8h");
    assert_eq!(bob.spec.locks.lease_ttl.to_string(), "30s");
    assert_eq!(bob.spec.sync.databases_interval.to_string(), "30s");
    assert_eq!(bob.spec.sync.events_interval.to_string(), "5s");
    assert_eq!(bob.spec.resources.memory.to_string(), "4Gi");
    // From the team's workspaceDefaults:
    let sleep = bob
        .spec
        .auto_sleep
        .as_ref()
        .expect("auto-sleep from the team");
    assert_eq!(sleep.schedule.as_ref().unwrap().timezone, "Europe/Berlin");
    // From the provider:
    let gemini = &bob.spec.agents[1];
    assert_eq!(gemini.model.as_deref(), Some("gemini-3.5-flash"));
    assert_eq!(
        gemini.credentials.as_ref().unwrap().env.as_deref(),
        Some("GEMINI_API_KEY")
    );
    assert_eq!(
        gemini.base_url.as_deref(),
        Some("https://generativelanguage.googleapis.com")
    );
}

#[test]
fn defaults_round_trip_and_are_idempotent() {
    for doc in common::examples() {
        let yaml = serde_yaml::to_string(&doc.resource).unwrap();
        let (mut again, diags) = common::parse("again.yaml", &yaml);
        assert!(diags.is_empty(), "{diags:?}\n{yaml}");
        let mut reparsed = again.remove(0).resource;
        assert_eq!(
            reparsed,
            doc.resource,
            "YAML round trip changed {}",
            doc.resource.key()
        );
        apply_defaults(&mut reparsed, None);
        assert_eq!(
            reparsed,
            doc.resource,
            "defaults twice changed {}",
            doc.resource.key()
        );
    }
}

#[test]
fn spec_hash_is_stable_under_reordering_and_respelling() {
    let a = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: x}\nspec:\n  displayName: X\n  quotas: {maxWorkspaces: 5, maxAwakeWorkspaces: 2}\n";
    let b = "kind: Organization\nspec:\n  quotas:\n    maxAwakeWorkspaces: 2\n    maxWorkspaces: 5\n  displayName: 'X'\n  storage: {bucket: 'file:bucket'}\nmetadata: {name: x, labels: {a: b}}\napiVersion: coditect.io/v1\n";
    let hash = |text: &str| {
        let (mut docs, diags) = common::parse("h.yaml", text);
        assert!(diags.is_empty(), "{diags:?}");
        coditect_specs::check_and_default(&mut docs, &Catalog::default()).unwrap();
        spec_hash(&docs[0].resource)
    };
    assert_eq!(
        hash(a),
        hash(b),
        "order, quoting, labels and explicit defaults must not matter"
    );
    assert_ne!(
        hash(a),
        hash(&a.replace("maxWorkspaces: 5", "maxWorkspaces: 6"))
    );
    assert!(hash(a).starts_with("sha256:"));
}

#[test]
fn spec_hash_sees_equal_durations_as_equal() {
    let base =
        std::fs::read_to_string(common::examples_dir().join("03-workspace-alice.yaml")).unwrap();
    let hash = |text: &str| {
        let (mut docs, diags) = common::parse("w.yaml", text);
        assert!(diags.is_empty(), "{diags:?}");
        coditect_specs::check_and_default(&mut docs, &common::examples_catalog()).unwrap();
        spec_hash(&docs[0].resource)
    };
    let original = hash(&base);
    assert_eq!(
        original,
        hash(&base.replace("leaseTtl: 30s", "leaseTtl: 30000ms"))
    );
    assert_ne!(
        original,
        hash(&base.replace("leaseTtl: 30s", "leaseTtl: 31s"))
    );
}
