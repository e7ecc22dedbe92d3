//! Spec parse + validate + default of 1,000 documents (an organization, a team and 998
//! workspaces with four agents each), as `coditect apply` does before sending them.

use std::path::Path;

use coditect_specs::Catalog;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn manifest(n: usize) -> String {
    let mut text = String::from(
        "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {quotas: {maxWorkspaces: 10000, maxAwakeWorkspaces: 10000}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {}\n",
    );
    for i in 0..n - 2 {
        text.push_str(&format!(
            "---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata:\n  name: ws-{i}\n  organization: acme\n  team: t\n  labels: {{owner: u{i}}}\nspec:\n  owner: u{i}\n  agents:\n    - {{name: claude, provider: anthropic, role: lead, offlineFallback: true}}\n    - {{name: gemini, provider: google}}\n    - {{name: codex, provider: openai}}\n    - {{name: kimi, provider: moonshot}}\n  locks: {{leaseTtl: 30s}}\n  sync: {{databasesInterval: 30s, eventsInterval: 5s}}\n"
        ));
    }
    text
}

fn parse_validate(c: &mut Criterion) {
    let text = manifest(1000);
    let mut group = c.benchmark_group("specs");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("parse_validate_default_1000_documents", |b| {
        b.iter(|| {
            let (mut docs, diags) = coditect_specs::parse_str("bench.yaml", Path::new("."), &text);
            assert!(diags.is_empty());
            coditect_specs::check_and_default(&mut docs, &Catalog::default()).expect("valid");
            assert_eq!(docs.len(), 1000);
        });
    });
    group.finish();
}

criterion_group! {
    name = specs;
    config = Criterion::default().sample_size(10);
    targets = parse_validate
}
criterion_main!(specs);
