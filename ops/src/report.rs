//! The cost report: measured usage (the control plane's [`UsageReport`]) priced by a
//! pricing file, per workspace, team and organization, with what it comes to per user
//! per month. Pure: the same record and prices give the same dollars, which is what the
//! hand-computed test holds it to.

use std::collections::{BTreeMap, BTreeSet};

use coditect_control_plane::usage::{UsageReport, WorkspaceUsage};
use serde::Serialize;

use crate::cost::{Cost, CostError, Pricing, Usage, cost};

const GIB: f64 = (1u64 << 30) as f64;
/// Hours in a billing month (GCS and GKE bill a month as 730 hours).
pub const MONTH_HOURS: f64 = 730.0;

/// Where a row's figures are summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One workspace.
    Workspace,
    /// A team's workspaces.
    Team,
    /// An organization's workspaces.
    Organization,
    /// Everything in the report.
    Total,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// What it sums.
    pub scope: Scope,
    /// `org/team/workspace`, `org/team`, `org`, or `total`.
    pub name: String,
    /// Hours awake (summed over workspaces).
    pub awake_hours: f64,
    /// The usage priced.
    pub usage: Usage,
    /// What it costs over the window.
    pub cost: Cost,
    /// Distinct owners.
    pub users: usize,
    /// `cost.total` per user, scaled to a 730-hour month.
    pub per_user_per_month: f64,
}

/// The priced report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// Window start (ms since the epoch).
    pub since_ms: u64,
    /// Window end.
    pub until_ms: u64,
    /// The pricing file's version.
    pub pricing: String,
    /// Workspaces first, then teams, organizations and the total.
    pub rows: Vec<Row>,
}

/// What one workspace's measured record amounts to.
pub fn usage_of(w: &WorkspaceUsage) -> Usage {
    let hours = w.awake_seconds / 3600.0;
    Usage {
        vcpu_hours: hours * w.cpu,
        memory_gib_hours: hours * w.memory_gib,
        stored_gib_months: w.stored_byte_days / GIB / (MONTH_HOURS / 24.0),
        class_a_ops: w.counted.class_a as f64,
        class_b_ops: w.counted.class_b as f64,
        egress_gib: w.counted.read_bytes as f64 / GIB,
        log_gib: w.counted.log_bytes as f64 / GIB,
        mirror_stored_gb_months: w.mirror_stored_byte_days / 1e9 / (MONTH_HOURS / 24.0),
        mirror_class_a_ops: w.mirror_counted.class_a as f64,
        mirror_class_b_ops: w.mirror_counted.class_b as f64,
    }
}

struct Group {
    usage: Usage,
    awake_hours: f64,
    owners: BTreeSet<String>,
}

/// Prices `report` at `pricing`. The free log allotment is the project's and a month's, so
/// it is taken off the whole report once (scaled to the window's length) and each row
/// carries its share of what remains.
///
/// # Errors
/// [`CostError::MissingPrice`] (a parsed pricing file has them all).
pub fn price(report: &UsageReport, pricing: &Pricing) -> Result<CostReport, CostError> {
    let mut groups: BTreeMap<(Scope, String), Group> = BTreeMap::new();
    for w in &report.workspaces {
        let names = [
            (
                Scope::Workspace,
                format!("{}/{}/{}", w.organization, w.team, w.workspace),
            ),
            (Scope::Team, format!("{}/{}", w.organization, w.team)),
            (Scope::Organization, w.organization.clone()),
            (Scope::Total, "total".to_string()),
        ];
        for key in names {
            let g = groups.entry(key).or_insert_with(|| Group {
                usage: Usage::default(),
                awake_hours: 0.0,
                owners: BTreeSet::new(),
            });
            g.usage = g.usage + usage_of(w);
            g.awake_hours += w.awake_seconds / 3600.0;
            g.owners.insert(w.owner.clone());
        }
    }
    let all_logs = groups
        .get(&(Scope::Total, "total".to_string()))
        .map_or(0.0, |g| g.usage.log_gib);
    let months =
        (report.until_ms.saturating_sub(report.since_ms)) as f64 / 3_600_000.0 / MONTH_HOURS;
    // The free allotment is a month's: a shorter window gets its share of it.
    let free = pricing.get("loggingFreeGib")? * months;
    let project_logging = (all_logs - free).max(0.0) * pricing.get("loggingGib")?;
    let mut rows = Vec::new();
    for ((scope, name), g) in groups {
        let mut c = cost(
            &Usage {
                log_gib: 0.0,
                ..g.usage
            },
            pricing,
        )?;
        c.observability = if all_logs > 0.0 {
            project_logging * g.usage.log_gib / all_logs
        } else {
            0.0
        };
        c.total += c.observability;
        let users = g.owners.len();
        rows.push(Row {
            scope,
            name,
            awake_hours: g.awake_hours,
            usage: g.usage,
            cost: c,
            users,
            per_user_per_month: if users == 0 || months <= 0.0 {
                0.0
            } else {
                c.total / users as f64 / months
            },
        });
    }
    Ok(CostReport {
        since_ms: report.since_ms,
        until_ms: report.until_ms,
        pricing: pricing.version.clone(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use coditect_runtime::sync::meter::DayUsage;

    use super::*;
    use crate::cost::DEFAULT_PRICING;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn ws(
        team: &str,
        name: &str,
        owner: &str,
        awake_hours: f64,
        counted: DayUsage,
    ) -> WorkspaceUsage {
        WorkspaceUsage {
            organization: "acme".into(),
            team: team.into(),
            workspace: name.into(),
            owner: owner.into(),
            cpu: 2.0,
            memory_gib: 4.0,
            awake_seconds: awake_hours * 3600.0,
            stored_bytes: 0,
            // 2 GiB over 30 days = 60 GiB-days
            stored_byte_days: 2.0 * GIB * 30.0,
            counted,
            mirror_stored_byte_days: 0.0,
            mirror_counted: DayUsage::default(),
            bucket_error: None,
        }
    }

    #[test]
    fn a_fixed_usage_record_prices_to_the_hand_computed_dollars() {
        let counted = DayUsage {
            class_a: 20_000,
            class_b: 10_000,
            free: 7,
            read_bytes: (GIB * 0.5) as u64,
            log_bytes: 0,
            stored_bytes: 0,
        };
        let report = UsageReport {
            since_ms: 0,
            // one billing month: 730 h
            until_ms: (MONTH_HOURS * 3_600_000.0) as u64,
            workspaces: vec![
                ws("platform", "alice-main", "alice", 100.0, counted),
                ws("platform", "bob-main", "bob", 10.0, DayUsage::default()),
            ],
        };
        let p = Pricing::parse(DEFAULT_PRICING).unwrap();
        let r = price(&report, &p).unwrap();
        let alice = r
            .rows
            .iter()
            .find(|r| r.name == "acme/platform/alice-main")
            .unwrap();
        // compute: 100 h × (2 × 0.0445 + 4 × 0.0049225) = 100 × 0.10869 = 10.869
        assert!(close(alice.cost.compute, 10.869), "{:?}", alice.cost);
        // storage: 60 GiB-days / (730/24) days a month × 0.020
        assert!(close(alice.cost.storage, 60.0 / (730.0 / 24.0) * 0.020));
        // operations: 2 × 0.05 + 1 × 0.004 = 0.104; deletes free
        assert!(close(alice.cost.operations, 0.104));
        // egress: 0.5 GiB × 0.12
        assert!(close(alice.cost.egress, 0.06));
        assert!(close(alice.per_user_per_month, alice.cost.total));
        let bob = r
            .rows
            .iter()
            .find(|r| r.name == "acme/platform/bob-main")
            .unwrap();
        assert!(close(bob.cost.compute, 1.0869));
        let team = r.rows.iter().find(|r| r.scope == Scope::Team).unwrap();
        assert_eq!(team.users, 2);
        assert!(close(team.cost.total, alice.cost.total + bob.cost.total));
        assert!(close(team.per_user_per_month, team.cost.total / 2.0));
        let total = r.rows.last().unwrap();
        assert_eq!(total.scope, Scope::Total);
        assert!(close(total.awake_hours, 110.0));
    }

    #[test]
    fn the_free_log_allotment_is_taken_once_for_the_project_and_shared_out() {
        let logs = |gib: f64| DayUsage {
            log_bytes: (gib * GIB) as u64,
            ..DayUsage::default()
        };
        let report = UsageReport {
            since_ms: 0,
            until_ms: (MONTH_HOURS * 3_600_000.0) as u64,
            workspaces: vec![
                ws("a", "x", "u1", 0.0, logs(45.0)),
                ws("b", "y", "u2", 0.0, logs(15.0)),
            ],
        };
        let p = Pricing::parse(DEFAULT_PRICING).unwrap();
        let r = price(&report, &p).unwrap();
        let obs = |name: &str| {
            r.rows
                .iter()
                .find(|r| r.name == name)
                .unwrap()
                .cost
                .observability
        };
        // (45 + 15 − 50) × 0.50 = 5.00, shared 3:1
        assert!(close(obs("total"), 5.0));
        assert!(close(obs("acme/a/x"), 3.75));
        assert!(close(obs("acme/b/y"), 1.25));
        // Over half a month, half the allotment: (60 − 25) × 0.50.
        let half = UsageReport {
            until_ms: report.until_ms / 2,
            ..report
        };
        let r = price(&half, &p).unwrap();
        let total = r.rows.last().unwrap().cost.observability;
        assert!(close(total, 17.5), "{total}");
    }
}
