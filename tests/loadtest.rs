//! The load-test gate, run as CI runs it: the real binary with an embedded control plane.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use coditect_runtime::testkit::TempRoot;
use serde_json::Value;

fn loadtest(thresholds: &str, extra: &[&str]) -> (std::process::Output, TempRoot) {
    run(
        thresholds,
        &["reconnect", "lock_uncontended", "task_start"],
        &["--workspaces", "2", "--duration", "1s"],
        extra,
    )
}

/// The real binary, an embedded control plane, the named scenarios with a small load.
fn run(
    thresholds: &str,
    scenarios: &[&str],
    load: &[&str],
    extra: &[&str],
) -> (std::process::Output, TempRoot) {
    let tmp = TempRoot::new();
    let file = tmp.path().join("kpis.yaml");
    std::fs::write(&file, thresholds).unwrap();
    let reports = tmp.path().join("reports");
    let out = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CI", "1")
        .args(["loadtest", "--embedded", "--users", "4", "--warmup", "0s"])
        .args(load)
        .args(scenarios.iter().flat_map(|s| ["--scenario", s]))
        .arg("--thresholds")
        .arg(&file)
        .args(["--report", "json", "--report", "junit", "--report-dir"])
        .arg(&reports)
        .args(extra)
        .output()
        .unwrap();
    (out, tmp)
}

#[test]
fn a_missed_threshold_fails_the_gate_with_exit_99_and_says_which() {
    let (out, tmp) = loadtest(
        "thresholds:\n  reconnect: ['p(99)<1us']\n  lock_uncontended: ['p(99)<1m']\n",
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("THRESHOLDS FAILED"), "{table}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("reports/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["pass"], false);
    let rows = report["rows"].as_array().unwrap();
    let failing: Vec<&str> = rows
        .iter()
        .filter(|r| r["pass"] == false)
        .map(|r| r["metric"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["reconnect"]);
    let reconnect = rows.iter().find(|r| r["metric"] == "reconnect").unwrap();
    assert!(
        reconnect["summary"]["count"].as_u64().unwrap() > 0,
        "it measured something"
    );
    let xml = std::fs::read_to_string(tmp.path().join("reports/report.xml")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut failures = Vec::new();
    let mut current = String::new();
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"testcase" => {
                current = e
                    .try_get_attribute("name")
                    .unwrap()
                    .unwrap()
                    .unescape_value()
                    .unwrap()
                    .to_string();
            }
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"failure" => {
                failures.push(current.clone())
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(failures, ["reconnect p(99)<1us"]);
}

#[test]
fn met_thresholds_pass_the_gate() {
    let (out, tmp) = loadtest(
        "thresholds:\n  reconnect: ['p(99)<30s']\n  lock_uncontended: ['p(99)<30s']\n  errors: ['rate<0.5']\n",
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("all thresholds passed"));
    assert!(tmp.path().join("reports/report.xml").exists());
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("reports/report.json")).unwrap(),
    )
    .unwrap();
    let measured = |metric: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == metric)
            .unwrap()["summary"]["count"]
            .as_u64()
            .unwrap()
    };
    for metric in ["reconnect", "lock_uncontended", "task_start"] {
        assert!(measured(metric) > 0, "{metric} measured nothing");
    }
}

#[test]
fn a_bad_thresholds_file_is_refused_before_anything_runs() {
    let (out, _tmp) = loadtest("thresholds:\n  reconnect: ['p(99) ~ 1s']\n", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("thresholds.reconnect: invalid expression"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The wake scenario: the run's workspaces are put to sleep, users arrive at them through
/// the gateway and wake them (each put back to sleep after), every wake is measured, and
/// the organization's awake count is sampled meanwhile.
#[test]
fn the_wake_scenario_measures_wakes_and_samples_the_awake_count() {
    let (out, tmp) = run(
        "thresholds:\n  wake: ['p(99)<30s']\n  errors: ['rate<0.01']\n",
        &["wake"],
        &["--workspaces", "2", "--duration", "2s"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("wake arrivals (2.0/s)"), "{stdout}");
    assert!(
        stdout.contains("awake workspaces (loadtest, every 100ms"),
        "{stdout}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("reports/report.json")).unwrap(),
    )
    .unwrap();
    let rows = report["rows"].as_array().unwrap();
    let wake = rows.iter().find(|r| r["metric"] == "wake").unwrap();
    let measured = wake["summary"]["count"].as_u64().unwrap();
    assert!(
        measured >= 2,
        "two workspaces, 2 s: about four wakes; got {wake}"
    );
    assert!(wake["summary"]["p50"].as_f64().unwrap() > 0.0);
    let run = &report["wake"];
    assert_eq!(run["failed"], 0, "{run}");
    assert_eq!(run["wakes"].as_u64().unwrap(), measured, "{run}");
    let arrivals = run["arrivals"].as_u64().unwrap();
    let others = run["caught_awake"].as_u64().unwrap() + run["joined"].as_u64().unwrap();
    assert_eq!(arrivals, measured + others, "{run}");
    let series = &run["awake"];
    let samples = series["samples"].as_array().unwrap();
    assert!(samples.len() >= 5, "one every 100 ms over 2 s: {series}");
    assert!(
        samples
            .iter()
            .all(|s| s["awake"].as_u64().unwrap() <= 2 && s["at_ms"].is_u64()),
        "{series}"
    );
    assert!(series["max"].as_u64().unwrap() <= 2);
}
