//! Measured usage, the input of the cost report: for each workspace over a window, the
//! seconds it was awake (from the phase transitions the store records with every status
//! write) with the CPU and memory it requests, and from its bucket the bytes stored now,
//! the byte-days stored over the window and the operations, bytes read back and log bytes
//! its instances counted per day in the manifest. Pricing it is the ops crate's job.

use std::collections::{BTreeMap, HashMap};

use coditect_runtime::layout::Layout;
use coditect_runtime::sync::Bucket;
use coditect_runtime::sync::manifest::{MANIFEST, Manifest};
use coditect_runtime::sync::meter::{DayUsage, UsageRecord, day_of};
use coditect_specs::{Kind, Resource, Workspace};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::selector::LabelSelector;
use crate::store::{PhaseTransition, Store};

/// Phases in which a workspace has an instance, and so is billed for compute.
pub const AWAKE_PHASES: [&str; 5] = ["Starting", "Waking", "Running", "Stopping", "Terminating"];

const DAY_MS: u64 = 86_400_000;

/// One workspace's usage over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceUsage {
    /// The organization.
    pub organization: String,
    /// The team.
    pub team: String,
    /// The workspace.
    pub workspace: String,
    /// Its owner (a user).
    pub owner: String,
    /// Requested vCPUs.
    pub cpu: f64,
    /// Requested memory, GiB.
    pub memory_gib: f64,
    /// Seconds it had an instance in the window.
    pub awake_seconds: f64,
    /// Bytes under its prefix in the bucket now (listed).
    pub stored_bytes: u64,
    /// Stored bytes integrated over the window, in byte-days (from the manifest's daily
    /// levels, carried forward over days without a write).
    pub stored_byte_days: f64,
    /// Operations, bytes read back and log bytes on the window's days (whole UTC days).
    pub counted: DayUsage,
    /// Byte-days the hot mirror kept over the window (0 without a mirror).
    #[serde(default)]
    pub mirror_stored_byte_days: f64,
    /// The mirror's operations on the window's days.
    #[serde(default)]
    pub mirror_counted: DayUsage,
    /// Why the bucket could not be read, when it could not (its figures are then zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_error: Option<String>,
}

/// Usage of the workspaces of one organization (all when `None`) over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// Window start (ms since the epoch).
    pub since_ms: u64,
    /// Window end (ms since the epoch).
    pub until_ms: u64,
    /// Per workspace.
    pub workspaces: Vec<WorkspaceUsage>,
}

/// Milliseconds awake within `[since, until)`, from one workspace's transitions (oldest
/// first; the first may predate the window: the phase it was in when the window opened).
pub fn awake_ms(transitions: &[PhaseTransition], since_ms: u64, until_ms: u64) -> u64 {
    let mut total = 0;
    for (i, t) in transitions.iter().enumerate() {
        let end = transitions
            .get(i + 1)
            .map_or(until_ms, |n| n.at_ms)
            .min(until_ms);
        let start = t.at_ms.max(since_ms);
        if AWAKE_PHASES.contains(&t.phase.as_str()) && end > start {
            total += end - start;
        }
    }
    total
}

/// The day strings from `since`'s day to `until`'s, with the fraction of each in the window.
fn days(since_ms: u64, until_ms: u64) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut day_start = since_ms - since_ms % DAY_MS;
    while day_start < until_ms {
        let (from, to) = (day_start.max(since_ms), (day_start + DAY_MS).min(until_ms));
        out.push((day_of(day_start), (to - from) as f64 / DAY_MS as f64));
        day_start += DAY_MS;
    }
    out
}

/// Byte-days stored over the window, and the flows of the window's days, from a
/// manifest's usage record. The stored level of a day without a record is the last level
/// before it (zero before the first).
pub fn window_usage(record: &UsageRecord, since_ms: u64, until_ms: u64) -> (f64, DayUsage) {
    let mut flows = DayUsage::default();
    let mut byte_days = 0.0;
    for (day, fraction) in days(since_ms, until_ms) {
        if let Some(d) = record.get(&day) {
            flows.add_flows(d);
        }
        let level = record
            .range(..=day)
            .next_back()
            .map_or(0, |(_, d)| d.stored_bytes);
        byte_days += level as f64 * fraction;
    }
    (byte_days, flows)
}

/// How much of each bucket a measurement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketReads {
    /// The manifest and a listing of the prefix (`storedBytes` now): the cost report.
    ManifestAndListing,
    /// The manifest only (what is priced): the frequent budget passes.
    ManifestOnly,
}

/// Measures the workspaces of `org` (all when `None`) that `visible` admits over
/// `[since_ms, until_ms)`.
///
/// # Errors
/// Store failures (a bucket that cannot be read is reported per workspace instead).
pub async fn measure(
    store: &Store,
    org: Option<&str>,
    (since_ms, until_ms): (u64, u64),
    reads: BucketReads,
    visible: impl Fn(&Resource) -> bool,
) -> Result<UsageReport, StoreError> {
    let mut history: HashMap<(String, String), Vec<PhaseTransition>> = HashMap::new();
    for t in store.phase_history(org, since_ms, until_ms)? {
        history
            .entry((t.organization.clone(), t.workspace.clone()))
            .or_default()
            .push(t);
    }
    let mut buckets: BTreeMap<String, Result<Bucket, String>> = BTreeMap::new();
    let mut workspaces = Vec::new();
    for r in store.list(Some(Kind::Workspace), org, &LabelSelector::default())? {
        if !visible(&r) {
            continue;
        }
        let Resource::Workspace(w) = r else { continue };
        let m = &w.metadata;
        let organization = m.organization.clone().unwrap_or_default();
        let transitions = history
            .get(&(organization.clone(), m.name.clone()))
            .map_or(&[][..], Vec::as_slice);
        let mut usage = WorkspaceUsage {
            team: m.team.clone().unwrap_or_default(),
            workspace: m.name.clone(),
            owner: w.spec.owner.clone(),
            cpu: w.spec.resources.cpu.value(),
            memory_gib: w.spec.resources.memory.value() / f64::from(1u32 << 30),
            awake_seconds: awake_ms(transitions, since_ms, until_ms) as f64 / 1000.0,
            organization,
            stored_bytes: 0,
            stored_byte_days: 0.0,
            counted: DayUsage::default(),
            mirror_stored_byte_days: 0.0,
            mirror_counted: DayUsage::default(),
            bucket_error: None,
        };
        if let Err(e) = read_bucket(&w, &mut buckets, &mut usage, (since_ms, until_ms), reads).await
        {
            usage.bucket_error = Some(e);
        }
        workspaces.push(usage);
    }
    Ok(UsageReport {
        since_ms,
        until_ms,
        workspaces,
    })
}

/// Fills in what the workspace's bucket says.
async fn read_bucket(
    w: &Workspace,
    buckets: &mut BTreeMap<String, Result<Bucket, String>>,
    usage: &mut WorkspaceUsage,
    (since_ms, until_ms): (u64, u64),
    reads: BucketReads,
) -> Result<(), String> {
    // Never started (asleep since it was declared): nothing stored yet.
    let Some(url) = w.status.as_ref().and_then(|s| s.bucket.clone()) else {
        return Ok(());
    };
    if !buckets.contains_key(&url) {
        let opened = Bucket::open(&url).await.map_err(|e| e.to_string());
        buckets.insert(url.clone(), opened);
    }
    let bucket = match buckets.get(&url) {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(e.clone()),
        None => return Ok(()),
    };
    let m = &w.metadata;
    let prefix = Layout::relative(
        m.organization.as_deref().unwrap_or_default(),
        m.team.as_deref().unwrap_or_default(),
        &w.spec.owner,
        &m.name,
    )
    .display()
    .to_string();
    if reads == BucketReads::ManifestAndListing {
        let listed = bucket
            .list(&format!("{prefix}/"))
            .await
            .map_err(|e| e.to_string())?;
        usage.stored_bytes = listed.iter().map(|o| o.size).sum();
    }
    let manifest = bucket
        .get(&format!("{prefix}/{MANIFEST}"))
        .await
        .map_err(|e| e.to_string())?;
    if let Some((bytes, _)) = manifest {
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("{prefix}/{MANIFEST}: {e}"))?;
        (usage.stored_byte_days, usage.counted) = window_usage(&manifest.usage, since_ms, until_ms);
        (usage.mirror_stored_byte_days, usage.mirror_counted) =
            window_usage(&manifest.mirror_usage, since_ms, until_ms);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn t(phase: &str, at_ms: u64) -> PhaseTransition {
        PhaseTransition {
            organization: "o".into(),
            workspace: "w".into(),
            phase: phase.into(),
            at_ms,
        }
    }

    #[test]
    fn awake_time_counts_the_phases_with_an_instance_clipped_to_the_window() {
        let h = [
            t("Running", 0), // before the window: awake when it opens at 100
            t("Stopping", 300),
            t("Asleep", 350),
            t("Waking", 1000),
            t("Running", 1010),
            t("Gone", 1500),
        ];
        // 100..300 Running + 300..350 Stopping + 1000..1500 Waking/Running = 750
        assert_eq!(awake_ms(&h, 100, 2000), 750);
        // Cut at 1200: 100..350 and 1000..1200
        assert_eq!(awake_ms(&h, 100, 1200), 450);
        assert_eq!(awake_ms(&h, 400, 900), 0, "asleep throughout");
        assert_eq!(awake_ms(&[t("Running", 0)], 10, 20), 10, "still running");
    }

    #[test]
    fn storage_is_integrated_over_days_carrying_the_last_level_forward() {
        let mut r = UsageRecord::new();
        r.insert(
            "1970-01-02".into(),
            DayUsage {
                class_a: 10,
                stored_bytes: 1000,
                ..DayUsage::default()
            },
        );
        r.insert(
            "1970-01-04".into(),
            DayUsage {
                class_b: 5,
                stored_bytes: 3000,
                ..DayUsage::default()
            },
        );
        // Days 1..5 (Jan 1 to Jan 5 exclusive of the 6th), half of Jan 1 in the window.
        let (byte_days, flows) = window_usage(&r, DAY_MS / 2, 5 * DAY_MS);
        // Jan 1: 0 × 0.5; Jan 2: 1000; Jan 3: 1000 (carried); Jan 4: 3000; Jan 5: 3000
        assert!((byte_days - 8000.0).abs() < 1e-6, "{byte_days}");
        assert_eq!((flows.class_a, flows.class_b), (10, 5));
    }
}
