//! The gate's verdict and its reports: a table for people, JSON for machines, JUnit XML
//! for CI systems (one test case per threshold), Markdown for pull requests.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::recorder::Summary;
use crate::scenarios::WakeRun;
use crate::thresholds::{Stat, Thresholds};

/// One threshold checked against one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The metric.
    pub metric: String,
    /// Its summary.
    pub summary: Summary,
    /// The rate the metric is judged by, for rate metrics.
    pub rate: Option<f64>,
    /// The threshold as written (empty when the metric has none).
    pub limit: String,
    /// The value compared (seconds or a rate).
    pub value: Option<f64>,
    /// Whether it passed (true when there is no threshold).
    pub pass: bool,
}

/// A whole run's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The thresholds file.
    pub thresholds: String,
    /// Every row.
    pub rows: Vec<Row>,
    /// Whether every threshold passed.
    pub pass: bool,
    /// Run parameters, for the record.
    pub parameters: BTreeMap<String, String>,
    /// What the wake scenario's arrivals met and the awake count it sampled, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake: Option<WakeRun>,
}

/// Checks every threshold against the measured summaries and rates.
/// Metrics in `skipped` belong to scenarios not chosen for the run: their thresholds are
/// listed as skipped; any other threshold without a measurement fails.
pub fn judge(
    thresholds: &Thresholds,
    summaries: &BTreeMap<String, (Summary, Option<f64>)>,
    skipped: &std::collections::BTreeSet<String>,
    name: &str,
    parameters: BTreeMap<String, String>,
) -> Report {
    let mut rows = Vec::new();
    for (metric, (summary, rate)) in summaries {
        let checks = thresholds.get(metric).cloned().unwrap_or_default();
        if checks.is_empty() {
            rows.push(Row {
                metric: metric.clone(),
                summary: summary.clone(),
                rate: *rate,
                limit: String::new(),
                value: None,
                pass: true,
            });
        }
        for t in checks {
            let value = match t.stat {
                Stat::Percentile(q) => percentile(summary, q),
                Stat::Avg => summary.avg,
                Stat::Med => summary.p50,
                Stat::Max => summary.max,
                Stat::Rate => rate.unwrap_or(summary.success_rate),
            };
            // No measurement at all cannot pass a latency threshold.
            let measured = summary.count > 0 || t.stat == Stat::Rate;
            rows.push(Row {
                metric: metric.clone(),
                summary: summary.clone(),
                rate: *rate,
                limit: t.text.clone(),
                value: Some(value),
                pass: measured && t.passes(value),
            });
        }
    }
    for metric in thresholds.keys().filter(|m| !summaries.contains_key(*m)) {
        let skip = skipped.contains(metric);
        for t in &thresholds[metric] {
            let note = if skip {
                "skipped: scenario not run"
            } else {
                "not measured"
            };
            rows.push(Row {
                metric: metric.clone(),
                summary: empty(),
                rate: None,
                limit: format!("{} ({note})", t.text),
                value: None,
                pass: skip,
            });
        }
    }
    let pass = rows.iter().all(|r| r.pass);
    Report {
        thresholds: name.to_string(),
        rows,
        pass,
        parameters,
        wake: None,
    }
}

fn empty() -> Summary {
    Summary {
        count: 0,
        failed: 0,
        p50: 0.0,
        p95: 0.0,
        p99: 0.0,
        p999: 0.0,
        max: 0.0,
        avg: 0.0,
        success_rate: 0.0,
        per_second: Vec::new(),
    }
}

fn percentile(s: &Summary, q: f64) -> f64 {
    match q {
        q if q <= 50.0 => s.p50,
        q if q <= 95.0 => s.p95,
        q if q <= 99.0 => s.p99,
        _ => s.p999,
    }
}

/// A latency for people: `812µs`, `4.2ms`, `1.36s`.
pub fn human(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{:.0}µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.1}ms", secs * 1e3)
    } else {
        format!("{secs:.2}s")
    }
}

fn cells(r: &Row) -> [String; 8] {
    let s = &r.summary;
    let is_rate = r.rate.is_some();
    let lat = |v: f64| {
        if is_rate && s.count == 0 {
            "-".to_string()
        } else {
            human(v)
        }
    };
    [
        r.metric.clone(),
        r.rate.map_or_else(
            || s.count.to_string(),
            |rate| format!("{:.4}%", rate * 100.0),
        ),
        lat(s.p50),
        lat(s.p95),
        lat(s.p99),
        lat(s.max),
        if r.limit.is_empty() {
            "-".into()
        } else {
            r.limit.clone()
        },
        if r.pass { "pass".into() } else { "FAIL".into() },
    ]
}

const HEADERS: [&str; 8] = [
    "METRIC",
    "COUNT/RATE",
    "P50",
    "P95",
    "P99",
    "MAX",
    "LIMIT",
    "RESULT",
];

/// The table printed at the end of a run.
pub fn table(report: &Report) -> String {
    let rows: Vec<[String; 8]> = report.rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(&HEADERS.map(String::from)) + "\n";
    for row in &rows {
        out += &(line(row) + "\n");
    }
    for line in wake_lines(report) {
        out += &(line + "\n");
    }
    out += if report.pass {
        "all thresholds passed\n"
    } else {
        "THRESHOLDS FAILED\n"
    };
    out
}

/// The JSON report.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

/// The Markdown report.
pub fn markdown(report: &Report) -> String {
    let mut out = format!(
        "# Coditect load test\n\nThresholds: `{}` — **{}**\n\n",
        report.thresholds,
        if report.pass { "pass" } else { "FAIL" }
    );
    out += &format!(
        "| {} |\n|{}|\n",
        HEADERS.join(" | "),
        " --- |".repeat(HEADERS.len())
    );
    for r in &report.rows {
        out += &format!("| {} |\n", cells(r).join(" | "));
    }
    let wake = wake_lines(report);
    if !wake.is_empty() {
        out += "\n";
        for line in wake {
            out += &format!("- {line}\n");
        }
    }
    let charts: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.summary.per_second.len() > 1)
        .map(|r| {
            let peak = r
                .summary
                .per_second
                .iter()
                .map(|s| s.p99)
                .fold(0.0, f64::max);
            format!(
                "| {} | `{}` | {} |",
                r.metric,
                sparkline(&r.summary.per_second),
                human(peak)
            )
        })
        .collect();
    if !charts.is_empty() {
        out += "\np99 per second (each character one second, scaled to the metric's worst second):\n\n| metric | p99 per second | worst second |\n| --- | --- | --- |\n";
        for line in charts {
            out += &line;
            out += "\n";
        }
    }
    out += "\nParameters: ";
    out += &report
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    out + "\n"
}

/// One character per second, its height the second's p99 against the worst second's; a
/// second without a success is a space.
pub fn sparkline(series: &[crate::recorder::Second]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let peak = series.iter().map(|s| s.p99).fold(0.0, f64::max);
    let last = series.last().map_or(0, |s| s.second as usize);
    let mut out = vec![' '; last + 1];
    for s in series {
        let level = if peak > 0.0 {
            ((s.p99 / peak) * 7.0).round() as usize
        } else {
            0
        };
        out[s.second as usize] = BARS[level.min(7)];
    }
    out.into_iter().collect()
}

/// The wake scenario's arrivals and the awake count, two lines (none without it).
fn wake_lines(report: &Report) -> Vec<String> {
    let Some(w) = &report.wake else {
        return Vec::new();
    };
    vec![
        format!(
            "wake arrivals ({:.1}/s): {} measured, {} wakes, {} caught awake, {} joined a wake, {} failed",
            w.rate, w.arrivals, w.wakes, w.caught_awake, w.joined, w.failed
        ),
        w.awake.line(),
    ]
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The JUnit XML report: one test case per threshold.
pub fn junit(report: &Report) -> String {
    let failures = report.rows.iter().filter(|r| !r.pass).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out += &format!(
        "<testsuites name=\"coditect-loadtest\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
        report.rows.len(),
        xml_escape(&report.thresholds),
        report.rows.len()
    );
    for r in &report.rows {
        let name = if r.limit.is_empty() {
            r.metric.clone()
        } else {
            format!("{} {}", r.metric, r.limit)
        };
        let time = r.summary.p99;
        out += &format!(
            "    <testcase classname=\"kpi\" name=\"{}\" time=\"{time:.6}\">",
            xml_escape(&name)
        );
        if !r.pass {
            let value = r.value.map_or("not measured".to_string(), |v| {
                if r.rate.is_some() {
                    format!("{v:.6}")
                } else {
                    human(v)
                }
            });
            out += &format!(
                "\n      <failure message=\"{}\">measured {}; limit {}</failure>\n    ",
                xml_escape(&format!("{} failed", name)),
                xml_escape(&value),
                xml_escape(&r.limit)
            );
        }
        out += "</testcase>\n";
    }
    out + "  </testsuite>\n</testsuites>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thresholds;

    fn summary(p99: f64) -> Summary {
        Summary {
            count: 10,
            failed: 0,
            p50: p99 / 2.0,
            p95: p99,
            p99,
            p999: p99,
            max: p99,
            avg: p99 / 2.0,
            success_rate: 1.0,
            per_second: Vec::new(),
        }
    }

    #[test]
    fn the_sparkline_shows_a_dip_second_by_second() {
        use crate::recorder::Second;
        let s = |second: u32, p99: f64| Second {
            second,
            count: 1,
            p99,
        };
        let line = sparkline(&[s(0, 0.001), s(1, 0.008), s(3, 0.001)]);
        assert_eq!(line, "▂█ ▂");
    }

    fn report() -> Report {
        let t = thresholds::parse("k.yaml", "thresholds:\n  reconnect: ['p(99)<10ms']\n  startup: ['p(99)<150ms']\n  availability: ['rate>0.999']\n  lock_contended: ['p(99)<1s']\n").unwrap();
        let mut m = BTreeMap::new();
        m.insert("reconnect".to_string(), (summary(0.020), None));
        m.insert("startup".to_string(), (summary(0.050), None));
        m.insert("availability".to_string(), (summary(0.005), Some(0.9995)));
        let skipped = ["lock_contended".to_string()].into();
        judge(&t, &m, &skipped, "k.yaml", BTreeMap::new())
    }

    #[test]
    fn judges_each_threshold() {
        let r = report();
        let by = |m: &str| r.rows.iter().find(|row| row.metric == m).unwrap().pass;
        assert!(!by("reconnect"), "20 ms is over 10 ms");
        assert!(by("startup") && by("availability"));
        assert!(
            by("lock_contended"),
            "a skipped scenario does not fail the gate"
        );
        assert!(!r.pass);
        assert!(table(&r).contains("FAIL") && table(&r).contains("THRESHOLDS FAILED"));
    }

    #[test]
    fn reports_are_valid_json_and_junit() {
        let r = report();
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["pass"], false);
        let xml = junit(&r);
        let mut reader = quick_xml::Reader::from_str(&xml);
        let (mut cases, mut failures) = (0, 0);
        loop {
            match reader.read_event().unwrap() {
                quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                    match e.name().as_ref() {
                        b"testcase" => cases += 1,
                        b"failure" => failures += 1,
                        _ => {}
                    }
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!((cases, failures), (4, 1));
        assert!(markdown(&r).contains("| reconnect |"));
        assert!(
            v.get("wake").is_none(),
            "no wake section without the scenario"
        );
    }

    #[test]
    fn the_wake_scenario_adds_its_arrivals_and_awake_count() {
        let mut r = report();
        let mut awake = crate::awake::AwakeSeries {
            organization: "loadtest".into(),
            interval_ms: 100,
            ..Default::default()
        };
        awake
            .samples
            .push(crate::awake::Sample { at_ms: 0, awake: 2 });
        (awake.min, awake.max) = (2, 2);
        r.wake = Some(WakeRun {
            rate: 5.0,
            arrivals: 25,
            wakes: 24,
            caught_awake: 1,
            awake,
            ..Default::default()
        });
        let table = table(&r);
        assert!(
            table.contains("wake arrivals (5.0/s): 25 measured, 24 wakes, 1 caught awake"),
            "{table}"
        );
        assert!(
            table.contains("awake workspaces (loadtest, every 100ms, 1 samples): min 2, max 2")
        );
        assert!(markdown(&r).contains("- awake workspaces"));
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["wake"]["awake"]["samples"][0]["awake"], 2);
    }
}
