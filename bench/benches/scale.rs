//! 1,000 workspaces on one machine: one Organization whose awake quota
//! (`quotas.maxAwakeWorkspaces`, 50) is far below its workspace count, one Team, and
//! 1,000 Workspaces (offline agents, a local bucket folder) declared in one apply against
//! an embedded control plane. The first to start fill the quota and run; every later one
//! starts into a full organization and goes straight to Asleep (`quota::admit` without
//! eviction), so the machine never runs more than the quota.
//!
//! One measured run, not a criterion loop (a run is minutes of converging, and its
//! figures are a timeline and a peak, not a per-iteration mean). It prints:
//!
//! * apply → every workspace Ready or Asleep, with when the first and the last awake one
//!   became Ready, and per-workspace percentiles for both groups;
//! * that at most the quota were awake at any time (asserted from the store's change
//!   stream, and from the live instance processes);
//! * peak memory: the control plane's process (this one) plus every instance process,
//!   sampled from `/proc` while converging, total and per awake instance;
//! * wake on connect through the gateway into the full organization: each wake first puts
//!   the least recently active idle workspace to sleep.
//!
//! `CODITECT_BENCH_WORKSPACES` (default 1000), `CODITECT_BENCH_AWAKE` (50) and
//! `CODITECT_BENCH_WAKES` (20) change the sizes for a quick run. `CODITECT_LOG` (an
//! `EnvFilter`, as the CLI reads it, e.g. `coditect_control_plane=info`) logs the control
//! plane's spans to stderr with their busy and idle time when they close, to see where
//! the time of a run goes.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use coditect_bench::Percentiles;
use coditect_bench::memory::{Readings, Sample, Sampler, mib, sample};
use coditect_control_plane::client::Client;
use coditect_control_plane::selector::LabelSelector;
use coditect_control_plane::up::{ControlPlane, UpOptions, start};
use coditect_specs::{Kind, Resource};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

const ORG: &str = "bench";
/// How long the whole declaration may take to converge before the bench gives up.
const CONVERGE_LIMIT: Duration = Duration::from_secs(20 * 60);

/// The sizes of a run.
struct Sizes {
    workspaces: usize,
    awake: usize,
    wakes: usize,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sizes() -> Sizes {
    Sizes {
        workspaces: env_or("CODITECT_BENCH_WORKSPACES", 1000),
        awake: env_or("CODITECT_BENCH_AWAKE", 50),
        wakes: env_or("CODITECT_BENCH_WAKES", 20),
    }
}

fn name(i: usize) -> String {
    format!("w{i:04}")
}

fn manifest(s: &Sizes) -> String {
    let mut text = format!(
        "apiVersion: coditect.io/v1\nkind: Organization\nmetadata: {{name: {ORG}}}\nspec: {{storage: {{bucket: 'file:bucket/{ORG}'}}, quotas: {{maxWorkspaces: {}, maxAwakeWorkspaces: {}}}}}\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata: {{name: t, organization: {ORG}}}\nspec: {{}}\n",
        s.workspaces, s.awake
    );
    for i in 0..s.workspaces {
        text.push_str(&format!(
            "---\napiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {{name: {}, organization: {ORG}, team: t}}\nspec: {{owner: u{i}, agents: [{{name: a, provider: offline}}]}}\n",
            name(i)
        ));
    }
    text
}

fn objects(text: &str) -> Vec<Resource> {
    let (docs, diags) = coditect_specs::parse_str("scale.yaml", Path::new("."), text);
    assert!(diags.is_empty(), "{diags:?}");
    docs.into_iter().map(|d| d.resource).collect()
}

/// Where a workspace stands, as far as this bench cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Starting, waking or running: it holds a place in the awake quota.
    Awake { ready: bool },
    /// Asleep (or going), and why.
    Asleep { settled: bool, by_quota: bool },
    /// Neither yet (no status).
    Pending,
}

fn standing(status: &Value) -> Standing {
    let phase = status["phase"].as_str().unwrap_or_default();
    if !status["sleep"].is_null() {
        return Standing::Asleep {
            settled: phase == "Asleep",
            by_quota: status["sleep"]["by"] == "quota",
        };
    }
    match phase {
        "Running" => Standing::Awake { ready: true },
        "Starting" | "Waking" => Standing::Awake { ready: false },
        _ => Standing::Pending,
    }
}

/// Each workspace's standing from the store's change stream, with when it first settled
/// (Ready, or Asleep) and the most that were awake at once.
#[derive(Default)]
struct Progress {
    now: HashMap<String, Standing>,
    settled: HashMap<String, (Standing, Duration)>,
    most_awake: usize,
}

impl Progress {
    fn see(&mut self, object: &Value, at: Duration) {
        if object["kind"] != "Workspace" || object["metadata"]["organization"] != ORG {
            return;
        }
        let Some(n) = object["metadata"]["name"].as_str() else {
            return;
        };
        let s = standing(&object["status"]);
        self.now.insert(n.to_string(), s);
        let awake = self
            .now
            .values()
            .filter(|s| matches!(s, Standing::Awake { .. }))
            .count();
        self.most_awake = self.most_awake.max(awake);
        let settled = matches!(
            s,
            Standing::Awake { ready: true } | Standing::Asleep { settled: true, .. }
        );
        if settled && !self.settled.contains_key(n) {
            self.settled.insert(n.to_string(), (s, at));
        }
    }

    fn see_all(&mut self, cp: &ControlPlane, at: Duration) {
        let all = cp
            .store
            .list(Some(Kind::Workspace), Some(ORG), &LabelSelector::default())
            .expect("list workspaces");
        for r in all {
            self.see(&serde_json::to_value(&r).expect("a resource is JSON"), at);
        }
    }
}

/// This process's CPU time (user + system, every thread) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After "pid (comm)": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime stime, the times in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Follows the store's change stream until every workspace has settled once (on a lag,
/// or a quiet 5 s, it reads them all from the store).
async fn converge(
    cp: &ControlPlane,
    changes: &mut tokio::sync::broadcast::Receiver<coditect_control_plane::store::Change>,
    t0: Instant,
    workspaces: usize,
) -> Progress {
    let mut progress = Progress::default();
    while progress.settled.len() < workspaces {
        assert!(
            t0.elapsed() < CONVERGE_LIMIT,
            "{} of {workspaces} settled after {:?}",
            progress.settled.len(),
            t0.elapsed()
        );
        match tokio::time::timeout(Duration::from_secs(5), changes.recv()).await {
            Ok(Ok(c)) => progress.see(&c.object, t0.elapsed()),
            Ok(Err(RecvError::Lagged(_))) | Err(_) => progress.see_all(cp, t0.elapsed()),
            Ok(Err(RecvError::Closed)) => panic!("the store closed its change stream"),
        }
    }
    progress
}

/// The end state, from the store itself: at most the quota awake, every other one asleep
/// by the quota. Returns how many are awake and the names of the sleeping ones.
fn check_end_state(cp: &ControlPlane, s: &Sizes, progress: &Progress) -> (usize, Vec<String>) {
    let mut end = Progress::default();
    end.see_all(cp, Duration::ZERO);
    let awake = end
        .now
        .values()
        .filter(|s| matches!(s, Standing::Awake { .. }))
        .count();
    let mut asleep: Vec<String> = end
        .now
        .iter()
        .filter(|(_, s)| matches!(s, Standing::Asleep { by_quota: true, .. }))
        .map(|(n, _)| n.clone())
        .collect();
    asleep.sort();
    assert!(
        awake <= s.awake && progress.most_awake <= s.awake,
        "quota {}: {awake} awake at the end, {} at most",
        s.awake,
        progress.most_awake
    );
    assert_eq!(
        awake + asleep.len(),
        s.workspaces,
        "each is awake or asleep by quota"
    );
    (awake, asleep)
}

/// When the first and the last awake one became Ready and the last one Asleep; prints
/// each group's percentiles.
fn timeline(progress: &Progress) -> (Duration, Duration, Duration) {
    let ready = Percentiles::new("scale/apply_to_ready_awake_each");
    let slept = Percentiles::new("scale/apply_to_asleep_each");
    let (mut first_ready, mut last_ready, mut last_asleep) =
        (Duration::MAX, Duration::ZERO, Duration::ZERO);
    for (standing, at) in progress.settled.values() {
        if let Standing::Awake { .. } = standing {
            ready.record(*at);
            last_ready = last_ready.max(*at);
            first_ready = first_ready.min(*at);
        } else {
            slept.record(*at);
            last_asleep = last_asleep.max(*at);
        }
    }
    (first_ready, last_ready, last_asleep)
}

/// Wakes each of `names` through the gateway into the full organization (each wake puts
/// the least recently active idle one to sleep first); checks the quota still holds.
async fn wake_into_full(cp: &ControlPlane, names: &[String], quota: usize) {
    let woken = Percentiles::new("scale/wake_on_connect_org_full_evicts_one");
    let http = reqwest::Client::new();
    for n in names {
        let t = Instant::now();
        let resp = http
            .get(format!("{}/w/{ORG}/{n}/v1/health", cp.server))
            .bearer_auth(&cp.admin_token)
            .send()
            .await
            .expect("send");
        let d = t.elapsed();
        assert!(resp.status().is_success(), "{n}: {}", resp.status());
        woken.record(d);
    }
    let awake = cp.store.count_awake(ORG, "").expect("count the awake ones");
    assert!(
        awake as usize <= quota,
        "{awake} awake after the wakes, quota {quota}"
    );
}

/// The memory line: at idle, at the peak, and in the steady state after converging.
fn print_memory(idle: &Sample, r: &Readings, steady: &Sample) {
    let peak = r.peak;
    let per = |total: u64| mib(total / peak.children.max(1) as u64);
    eprintln!(
        "SCALE memory: control plane idle rss={} | peak at {:.1}s: total rss={} (control plane {} + {} instances {}; per instance {}) total pss={} (control plane {} + instances {}; per instance {}) | steady: control plane rss={} pss={}, {} instances rss={} pss={} | samples={}",
        mib(idle.own_rss),
        peak.at.as_secs_f64(),
        mib(peak.total_rss()),
        mib(peak.own_rss),
        peak.children,
        mib(peak.children_rss),
        per(peak.children_rss),
        mib(peak.total_pss()),
        mib(peak.own_pss),
        mib(peak.children_pss),
        per(peak.children_pss),
        mib(steady.own_rss),
        mib(steady.own_pss),
        steady.children,
        mib(steady.children_rss),
        mib(steady.children_pss),
        r.count
    );
}

fn main() {
    if coditect_bench::serve_instance_if_asked() {
        return;
    }
    coditect_bench::trace_if_asked();
    let s = sizes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let sampler = Sampler::start(Duration::from_millis(200));
    let cp = rt
        .block_on(start(UpOptions::new(
            "127.0.0.1:0".parse().expect("addr"),
            tmp.path().to_path_buf(),
            std::env::current_exe().expect("own path"),
        )))
        .expect("control plane");
    let idle = sample(Duration::ZERO);
    let client = Client::with_token(&cp.server, &cp.admin_token).expect("client");
    let t = Instant::now();
    let objs = objects(&manifest(&s));
    let parsed = t.elapsed();

    let mut changes = cp.store.subscribe();
    let (cpu0, t0) = (cpu_time(), Instant::now());
    rt.block_on(client.apply(&objs, false, None))
        .expect("apply");
    let applied = t0.elapsed();
    let progress = rt.block_on(converge(&cp, &mut changes, t0, s.workspaces));
    let (converged, cpu) = (t0.elapsed(), cpu_time().saturating_sub(cpu0));
    let (awake, asleep) = check_end_state(&cp, &s, &progress);
    let (first_ready, last_ready, last_asleep) = timeline(&progress);
    // Steady state: the awake instances have done their first sync round.
    std::thread::sleep(Duration::from_secs(3));
    let steady = sample(Duration::ZERO);
    let wakes = &asleep[..s.wakes.min(asleep.len())];
    rt.block_on(wake_into_full(&cp, wakes, s.awake));
    let readings = sampler.finish();
    assert!(
        readings.most_children <= s.awake,
        "{} instance processes at once, quota {}",
        readings.most_children,
        s.awake
    );
    eprintln!(
        "SCALE workspaces={} quota={} parse={} apply={} first_ready={} last_ready={} last_asleep={} all_settled={} awake_end={awake} most_awake={} most_instance_processes={} cp_cpu={:.2}s",
        s.workspaces,
        s.awake,
        ms(parsed),
        ms(applied),
        ms(first_ready),
        ms(last_ready),
        ms(last_asleep),
        ms(converged),
        progress.most_awake,
        readings.most_children,
        cpu.as_secs_f64()
    );
    print_memory(&idle, &readings, &steady);
    let shutdown = Instant::now();
    rt.block_on(cp.shutdown());
    eprintln!(
        "SCALE shutdown (every awake instance stopped cleanly) in {}",
        ms(shutdown.elapsed())
    );
}
