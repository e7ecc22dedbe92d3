//! The resource store's Kubernetes bookkeeping, on a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use coditect_control_plane::error::StoreError;
use coditect_control_plane::selector::LabelSelector;
use coditect_control_plane::store::{ApplyAction, ChangeType, RUNTIME_FINALIZER, Store};
use coditect_specs::{Kind, Resource};

fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("t.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

const ORG: &str = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme, labels: {tier: a}}\nspec: {displayName: Acme}\n";
const WS: &str = "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: w, organization: acme, team: t}\nspec: {owner: alice, agents: [{name: a, provider: offline}]}\n";

#[test]
fn generation_moves_only_with_the_spec_and_every_write_has_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cp.db")).unwrap();
    let r = store.apply(&objects(ORG), false).unwrap();
    assert_eq!((r[0].action, r[0].generation), (ApplyAction::Created, 1));
    let r = store.apply(&objects(ORG), false).unwrap();
    assert_eq!(r[0].action, ApplyAction::Unchanged);
    let rv_before = store.resource_version();
    let r = store
        .apply(&objects(&ORG.replace("tier: a", "tier: b")), false)
        .unwrap();
    assert_eq!(
        (r[0].action, r[0].generation),
        (ApplyAction::Configured, 1),
        "labels do not bump generation"
    );
    assert!(store.resource_version() > rv_before);
    let r = store
        .apply(&objects(&ORG.replace("Acme}", "Acme Corp}")), false)
        .unwrap();
    assert_eq!((r[0].action, r[0].generation), (ApplyAction::Configured, 2));
    let key = objects(ORG)[0].key();
    store
        .update(&key, |o| {
            if let Resource::Organization(o) = o {
                o.status = Some(Default::default());
            }
        })
        .unwrap();
    assert_eq!(
        store.get(&key).unwrap().unwrap().metadata().generation,
        Some(2),
        "status writes keep the generation"
    );
}

#[test]
fn dry_run_writes_nothing_and_a_stale_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cp.db")).unwrap();
    let r = store.apply(&objects(ORG), true).unwrap();
    assert_eq!(r[0].action, ApplyAction::Created);
    assert!(
        store
            .list(None, None, &LabelSelector::default())
            .unwrap()
            .is_empty()
    );
    store.apply(&objects(ORG), false).unwrap();
    let mut stale = objects(&ORG.replace("Acme}", "Other}"));
    stale[0].metadata_mut().resource_version = Some("0".into());
    let err = store.apply(&stale, false).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

#[test]
fn a_workspace_waits_for_its_finalizer_and_the_change_log_replays() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cp.db")).unwrap();
    let start = store.resource_version();
    store.apply(&objects(WS), false).unwrap();
    let key = objects(WS)[0].key();
    let ws = store.get(&key).unwrap().unwrap();
    assert_eq!(
        ws.metadata().finalizers,
        vec![RUNTIME_FINALIZER.to_string()]
    );
    assert!(store.delete(&key).unwrap());
    let marked = store
        .get(&key)
        .unwrap()
        .expect("still there until the finalizer runs");
    assert!(marked.metadata().deletion_timestamp.is_some());
    store.remove_finalizer(&key, RUNTIME_FINALIZER).unwrap();
    assert!(store.get(&key).unwrap().is_none());
    let changes: Vec<ChangeType> = store
        .changes_since(start)
        .unwrap()
        .iter()
        .map(|c| c.change)
        .collect();
    assert_eq!(
        changes,
        vec![ChangeType::Added, ChangeType::Modified, ChangeType::Deleted]
    );
    assert!(
        !store.delete(&key).unwrap(),
        "deleting what is gone reports it"
    );
    assert_eq!(
        store
            .list(Some(Kind::Workspace), None, &LabelSelector::default())
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn concurrent_writers_publish_changes_in_version_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(&dir.path().join("cp.db")).unwrap());
    let orgs: Vec<Resource> = (0..8)
        .flat_map(|i| objects(&ORG.replace("name: acme", &format!("name: org{i}"))))
        .collect();
    store.apply(&orgs, false).unwrap();
    let mut rx = store.subscribe();
    let writers: Vec<_> = orgs
        .iter()
        .map(|o| {
            let (store, key) = (store.clone(), o.key());
            std::thread::spawn(move || {
                for n in 0..50 {
                    store
                        .update(&key, |r| {
                            r.metadata_mut()
                                .annotations
                                .insert("n".into(), n.to_string());
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut versions = Vec::new();
    while let Ok(c) = rx.try_recv() {
        versions.push(c.resource_version);
    }
    assert_eq!(versions.len(), 400);
    let first = versions[0];
    assert_eq!(
        versions,
        (first..first + 400).collect::<Vec<_>>(),
        "published in resourceVersion order, no gaps"
    );
}
