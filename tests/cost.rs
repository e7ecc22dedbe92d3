//! The cost report from measured usage, end to end: a real workspace instance runs,
//! syncs and is put to sleep; `coditect cost report -o json` then reports the seconds it
//! was awake (from its recorded phase transitions), the bytes its bucket prefix holds, and
//! the object operations its replicator counted into the manifest — each checked against
//! the bucket folder itself — priced to the dollars the pricing file says. And the
//! organization's `BudgetAlert` follows its month-to-date spend, driven by a clock the
//! test controls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::{Duration, Instant};

use coditect_ops::budget::{BUDGET_ALERT, BudgetWatch};
use coditect_ops::cost::{DEFAULT_PRICING, Pricing};
use coditect_runtime::sync::manifest::Manifest;
use coditect_runtime::testkit::TempRoot;
use coditect_specs::{Kind, ObjectKey, Resource};
use serde_json::Value;

mod common;
use common::objects;

const MINUTE: Duration = Duration::from_secs(60);
const GIB: f64 = (1u64 << 30) as f64;

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        organization: (kind != Kind::Organization).then(|| "acme".into()),
        name: name.into(),
    }
}

/// Every file under `dir`, recursively, with its size.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if !e.file_name().to_string_lossy().starts_with('.') {
            out.push((p.clone(), e.metadata().unwrap().len()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_report_prices_what_was_measured_and_budgets_raise_an_alert() {
    let tmp = TempRoot::new();
    let data = tmp.path().join("data");
    let started = Instant::now();
    let (cp, admin, _) = common::embedded(&data).await;
    let text = "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {name: acme}\nspec: {storage: {bucket: 'file:bucket/acme'}, budget: {monthlyUsd: 10, alertAtPercent: 50}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {name: t, organization: acme}\nspec: {}\n---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: w, organization: acme, team: t}\nspec: {owner: alice, resources: {cpu: '2', memory: 4Gi}, agents: [{name: a, provider: offline}]}\n";
    admin.apply(&objects(text), false, None).await.unwrap();
    admin
        .watch_until(&key(Kind::Workspace, "w"), MINUTE, |r| {
            r.status_json()["phase"] == "Running"
        })
        .await
        .unwrap();
    common::sleep_or_wake(&admin, "w", "sleep").await;
    let elapsed = started.elapsed().as_secs_f64();

    // The report, through the CLI, as JSON.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coditect"))
        .args([
            "cost",
            "report",
            "--org",
            "acme",
            "--since",
            "1d",
            "-o",
            "json",
            "--server",
            &cp.server,
            "--token",
            &cp.admin_token,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let usage = &v["usage"]["workspaces"][0];
    assert_eq!(usage["workspace"], "w");
    assert!(usage["bucketError"].is_null(), "{usage}");

    // Awake: from Starting to Asleep, within what the test waited.
    let awake = usage["awakeSeconds"].as_f64().unwrap();
    assert!(
        awake > 0.0 && awake <= elapsed + 1.0,
        "{awake} of {elapsed}"
    );

    // Bytes stored: what the bucket folder holds under the workspace's prefix.
    let prefix = data.join("bucket/acme/organizations/acme/teams/t/users/alice/workspaces/w");
    let on_disk: u64 = files(&prefix).iter().map(|(_, n)| n).sum();
    assert!(on_disk > 0);
    assert_eq!(usage["storedBytes"].as_u64().unwrap(), on_disk);

    // Operations: what the replicator counted into the manifest, today's record; at least
    // the six snapshots and the manifest writes.
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(prefix.join("manifest.json")).unwrap()).unwrap();
    let recorded: u64 = manifest.usage.values().map(|d| d.class_a).sum();
    assert!(recorded >= 7, "{:?}", manifest.usage);
    assert_eq!(usage["counted"]["classA"].as_u64().unwrap(), recorded);
    assert_eq!(
        usage["counted"]["classB"].as_u64().unwrap(),
        manifest.usage.values().map(|d| d.class_b).sum::<u64>()
    );
    assert!(
        manifest.usage.values().any(|d| d.stored_bytes > 0),
        "{:?}",
        manifest.usage
    );

    // The dollars: the shipped prices applied by hand to the measured figures.
    let row = v["report"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "acme/t/w")
        .unwrap();
    let hours = awake / 3600.0;
    let compute = hours * (2.0 * 0.0445 + 4.0 * 0.0049225);
    let ops = recorded as f64 / 10_000.0 * 0.05
        + usage["counted"]["classB"].as_f64().unwrap() / 10_000.0 * 0.004;
    let storage = usage["storedByteDays"].as_f64().unwrap() / GIB / (730.0 / 24.0) * 0.020;
    let egress = usage["counted"]["readBytes"].as_f64().unwrap() / GIB * 0.12;
    let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-9;
    assert!(close(&row["cost"]["compute"], compute), "{row}");
    assert!(close(&row["cost"]["operations"], ops), "{row}");
    assert!(close(&row["cost"]["storage"], storage), "{row}");
    assert!(close(&row["cost"]["egress"], egress), "{row}");
    assert_eq!(row["users"], 1);

    // Usage is behind access control: a user with no role in acme sees none of it, and a
    // request without a token is refused with the reason.
    let v = admin
        .post_json(
            "/apis/coditect.io/v1/tokens",
            &serde_json::json!({"user": "mallory"}),
        )
        .await
        .unwrap();
    let mallory = coditect_control_plane::client::Client::with_token(
        &cp.server,
        v["token"].as_str().unwrap(),
    )
    .unwrap();
    let seen = mallory
        .get_json("/apis/coditect.io/v1/usage", &[])
        .await
        .unwrap();
    assert_eq!(seen["workspaces"].as_array().unwrap().len(), 0, "{seen}");
    let anonymous = reqwest::get(format!("{}/apis/coditect.io/v1/usage", cp.server))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(anonymous.text().await.unwrap().contains("token"));

    // Budgets: the month so far costs cents, under the $5 alert threshold…
    let watch = BudgetWatch::new(cp.store.clone(), Pricing::parse(DEFAULT_PRICING).unwrap());
    let now = coditect_runtime::clock::now_ms();
    let spend = watch.pass(now).await.unwrap();
    assert!(!spend[0].alert, "{spend:?}");
    let org = admin.get(&key(Kind::Organization, "acme")).await.unwrap();
    let condition = |org: &Resource| {
        org.status_json()["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == BUDGET_ALERT)
            .cloned()
            .unwrap()
    };
    assert_eq!(condition(&org)["status"], "False");
    // …and past it once the workspace has been awake (woken now) for days: the clock is
    // the test's, 40 days on from the first of this month, some 9 to 12 days into the next
    // (over $23 at $0.1087 an hour, against the $5 threshold).
    common::sleep_or_wake(&admin, "w", "wake").await;
    let later = coditect_ops::budget::month_start_ms(now) + 40 * 86_400_000;
    let over = watch.pass(later).await.unwrap();
    assert!(over[0].alert && over[0].month_to_date > 23.0, "{over:?}");
    let org = admin.get(&key(Kind::Organization, "acme")).await.unwrap();
    let c = condition(&org);
    assert_eq!(c["status"], "True", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("of the $10 monthly budget (alert at 50%)"),
        "{c}"
    );
    let events = admin
        .events(&key(Kind::Organization, "acme"))
        .await
        .unwrap();
    assert_eq!(
        events.iter().filter(|e| e.reason == BUDGET_ALERT).count(),
        1,
        "one event when it turns: {events:?}"
    );
    // A second pass over the threshold does not repeat the event.
    watch.pass(later + 3_600_000).await.unwrap();
    let events = admin
        .events(&key(Kind::Organization, "acme"))
        .await
        .unwrap();
    assert_eq!(
        events.iter().filter(|e| e.reason == BUDGET_ALERT).count(),
        1
    );
    cp.shutdown().await;
}
