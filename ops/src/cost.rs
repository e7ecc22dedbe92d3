//! The cost model: prices are data (a versioned YAML file, each price with its source and
//! date, `ops/pricing/`), usage is a record of what was measured, and the arithmetic is
//! one pure function from the two. A projection for N users is the same arithmetic over a
//! usage profile instead of a measured record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The pricing file that ships with the binary.
pub const DEFAULT_PRICING: &str = include_str!("../pricing/2026-12.yaml");

/// A pricing file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// It is not valid YAML of the expected shape.
    #[error("pricing file: {0}")]
    Pricing(String),
    /// A price the model needs is missing.
    #[error("pricing file: no price {0:?}")]
    MissingPrice(&'static str),
}

/// One price, with where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// Dollars per unit.
    pub price: f64,
    /// The unit.
    pub per: String,
    /// Where the figure comes from.
    pub source: String,
    /// When it was read.
    pub date: String,
}

/// A pricing file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    /// Its version (a date).
    pub version: String,
    /// The currency of every price.
    pub currency: String,
    /// The prices, by name.
    pub prices: BTreeMap<String, Price>,
}

impl Pricing {
    /// Parses a pricing file.
    ///
    /// # Errors
    /// [`CostError`] when it does not parse or lacks a price the model uses.
    pub fn parse(text: &str) -> Result<Pricing, CostError> {
        let p: Pricing =
            serde_yaml::from_str(text).map_err(|e| CostError::Pricing(e.to_string()))?;
        for name in NEEDED {
            p.get(name)?;
        }
        Ok(p)
    }

    pub(crate) fn get(&self, name: &'static str) -> Result<f64, CostError> {
        self.prices
            .get(name)
            .map(|p| p.price)
            .ok_or(CostError::MissingPrice(name))
    }
}

const NEEDED: [&str; 11] = [
    "vcpuHour",
    "memoryGibHour",
    "storageGibMonth",
    "classAPer10k",
    "classBPer10k",
    "egressGib",
    "loggingGib",
    "loggingFreeGib",
    "mirrorStorageGbMonth",
    "mirrorClassAPerMillion",
    "mirrorClassBPerMillion",
];

/// What was used over a period (one workspace, or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// vCPU-hours: awake hours × requested CPU.
    pub vcpu_hours: f64,
    /// GiB-hours: awake hours × requested memory.
    pub memory_gib_hours: f64,
    /// GiB-months stored in the bucket (average GiB × months).
    pub stored_gib_months: f64,
    /// Uploads and lists (class A).
    pub class_a_ops: f64,
    /// Reads (class B); deletes are free.
    pub class_b_ops: f64,
    /// GiB read out of the bucket to another region or the internet (restores elsewhere).
    pub egress_gib: f64,
    /// GiB of logs ingested.
    pub log_gib: f64,
    /// GB-months (decimal, as R2 bills) stored in the hot mirror.
    #[serde(default)]
    pub mirror_stored_gb_months: f64,
    /// Uploads and lists in the mirror (its class A).
    #[serde(default)]
    pub mirror_class_a_ops: f64,
    /// Reads in the mirror (its class B).
    #[serde(default)]
    pub mirror_class_b_ops: f64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            vcpu_hours: self.vcpu_hours + o.vcpu_hours,
            memory_gib_hours: self.memory_gib_hours + o.memory_gib_hours,
            stored_gib_months: self.stored_gib_months + o.stored_gib_months,
            class_a_ops: self.class_a_ops + o.class_a_ops,
            class_b_ops: self.class_b_ops + o.class_b_ops,
            egress_gib: self.egress_gib + o.egress_gib,
            log_gib: self.log_gib + o.log_gib,
            mirror_stored_gb_months: self.mirror_stored_gb_months + o.mirror_stored_gb_months,
            mirror_class_a_ops: self.mirror_class_a_ops + o.mirror_class_a_ops,
            mirror_class_b_ops: self.mirror_class_b_ops + o.mirror_class_b_ops,
        }
    }
}

/// What usage costs, by line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// vCPU and memory while awake.
    pub compute: f64,
    /// Bytes stored in the bucket.
    pub storage: f64,
    /// Object operations by billing class.
    pub operations: f64,
    /// Restore egress.
    pub egress: f64,
    /// Log ingestion beyond the free allotment (which is per project: pass the whole
    /// project's usage to apply it once).
    pub observability: f64,
    /// The hot mirror: its stored bytes and operations (R2 charges no egress).
    pub mirror: f64,
    /// The sum.
    pub total: f64,
}

/// The cost of `usage` at `pricing`.
///
/// # Errors
/// [`CostError::MissingPrice`] (a file that passed [`Pricing::parse`] has them all).
pub fn cost(usage: &Usage, pricing: &Pricing) -> Result<Cost, CostError> {
    let compute = usage.vcpu_hours * pricing.get("vcpuHour")?
        + usage.memory_gib_hours * pricing.get("memoryGibHour")?;
    let storage = usage.stored_gib_months * pricing.get("storageGibMonth")?;
    let operations = usage.class_a_ops / 10_000.0 * pricing.get("classAPer10k")?
        + usage.class_b_ops / 10_000.0 * pricing.get("classBPer10k")?;
    let egress = usage.egress_gib * pricing.get("egressGib")?;
    let billable_logs = (usage.log_gib - pricing.get("loggingFreeGib")?).max(0.0);
    let observability = billable_logs * pricing.get("loggingGib")?;
    let mirror = usage.mirror_stored_gb_months * pricing.get("mirrorStorageGbMonth")?
        + usage.mirror_class_a_ops / 1e6 * pricing.get("mirrorClassAPerMillion")?
        + usage.mirror_class_b_ops / 1e6 * pricing.get("mirrorClassBPerMillion")?;
    Ok(Cost {
        compute,
        storage,
        operations,
        egress,
        observability,
        mirror,
        total: compute + storage + operations + egress + observability + mirror,
    })
}

/// One user's month, for a projection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Requested vCPUs of the user's workspace.
    pub vcpus: f64,
    /// Requested memory, GiB.
    pub memory_gib: f64,
    /// Hours awake in a month.
    pub awake_hours: f64,
    /// GiB in the bucket.
    pub stored_gib: f64,
    /// Sync objects written while awake and busy, per awake hour (one per tick with
    /// changes, none when idle).
    pub uploads_per_awake_hour: f64,
    /// Reads per month (restores, wakes that restore).
    pub reads: f64,
    /// Restore egress per month, GiB.
    pub egress_gib: f64,
    /// Log GiB per month.
    pub log_gib: f64,
}

impl Profile {
    /// The defaults of `coditect cost project`: a workspace requesting 250m CPU and 1 GiB
    /// (agents mostly wait on remote model calls; set `spec.resources` to match), 2 GiB
    /// in the bucket; awake 730 h (always on) without auto-sleep, or 9 h on 22 working days
    /// with it (198 h: a keep-awake window plus an idle-after); one sync object every 30 s
    /// while awake (none when idle).
    pub fn default_for(auto_sleep: bool) -> Profile {
        Profile {
            vcpus: 0.25,
            memory_gib: 1.0,
            awake_hours: if auto_sleep { 9.0 * 22.0 } else { 730.0 },
            stored_gib: 2.0,
            uploads_per_awake_hour: 120.0,
            reads: 200.0,
            egress_gib: 0.0,
            log_gib: 0.05,
        }
    }

    /// The month of `users` such users.
    pub fn month(&self, users: u32) -> Usage {
        let n = f64::from(users);
        Usage {
            vcpu_hours: n * self.awake_hours * self.vcpus,
            memory_gib_hours: n * self.awake_hours * self.memory_gib,
            stored_gib_months: n * self.stored_gib,
            class_a_ops: n * self.awake_hours * self.uploads_per_awake_hour,
            class_b_ops: n * self.reads,
            egress_gib: n * self.egress_gib,
            log_gib: n * self.log_gib,
            ..Usage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_shipped_pricing_file_has_every_price_with_a_source() {
        let p = Pricing::parse(DEFAULT_PRICING).unwrap();
        assert!(
            p.prices
                .values()
                .all(|x| !x.source.is_empty() && !x.date.is_empty())
        );
        assert_eq!(p.prices["vcpuHour"].price, 0.0445);
    }

    #[test]
    fn a_fixed_usage_record_costs_what_the_hand_computation_says() {
        let p = Pricing::parse(DEFAULT_PRICING).unwrap();
        let u = Usage {
            vcpu_hours: 100.0,             // 100 × 0.0445      = 4.45
            memory_gib_hours: 200.0,       // 200 × 0.0049225   = 0.9845
            stored_gib_months: 10.0,       // 10 × 0.020        = 0.20
            class_a_ops: 30_000.0,         // 3 × 0.05          = 0.15
            class_b_ops: 50_000.0,         // 5 × 0.004         = 0.02
            egress_gib: 2.0,               // 2 × 0.12          = 0.24
            log_gib: 60.0,                 // (60 − 50) × 0.50  = 5.00
            mirror_stored_gb_months: 10.0, // 10 × 0.015     = 0.15
            mirror_class_a_ops: 2e6,       // 2 × 4.50       = 9.00
            mirror_class_b_ops: 5e6,       // 5 × 0.36       = 1.80
        };
        let c = cost(&u, &p).unwrap();
        assert!(close(c.compute, 4.45 + 0.9845), "{c:?}");
        assert!(close(c.storage, 0.20));
        assert!(close(c.operations, 0.15 + 0.02));
        assert!(close(c.egress, 0.24));
        assert!(close(c.observability, 5.0));
        assert!(close(c.mirror, 0.15 + 9.0 + 1.8), "{c:?}");
        assert!(close(
            c.total,
            4.45 + 0.9845 + 0.20 + 0.17 + 0.24 + 5.0 + 10.95
        ));
    }

    #[test]
    fn auto_sleep_is_what_brings_a_user_under_four_dollars() {
        let p = Pricing::parse(DEFAULT_PRICING).unwrap();
        let per_user = |sleep: bool| {
            cost(&Profile::default_for(sleep).month(1000), &p)
                .unwrap()
                .total
                / 1000.0
        };
        let (awake, asleep) = (per_user(false), per_user(true));
        assert!(awake > 7.0, "always-on: {awake}");
        assert!(asleep < 4.0 && asleep > 0.0, "with auto-sleep: {asleep}");
    }

    #[test]
    fn a_price_missing_from_a_replacement_file_is_named() {
        let text = "version: x\ncurrency: USD\nprices: {}\n";
        let e = Pricing::parse(text).unwrap_err();
        assert!(e.to_string().contains("vcpuHour"), "{e}");
    }
}
