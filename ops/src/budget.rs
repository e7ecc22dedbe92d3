//! Budget alerts: an organization with `budget.monthlyUsd` gets a `BudgetAlert` condition,
//! True (with a Warning event, once, when it turns) while its month-to-date spend — its
//! measured usage since the first of the month (UTC), priced like the cost report — is at
//! or past `budget.alertAtPercent` of the budget. A pass takes the time as an argument, so
//! tests drive it with a clock they control.

use std::sync::Arc;
use std::time::Duration;

use coditect_control_plane::conditions;
use coditect_control_plane::error::StoreError;
use coditect_control_plane::selector::LabelSelector;
use coditect_control_plane::store::Store;
use coditect_control_plane::usage::{BucketReads, measure};
use coditect_specs::organization::Budget;
use coditect_specs::{ConditionStatus, Kind, Resource, RollupStatus};

use crate::cost::Pricing;
use crate::report::{Scope, price};

/// The condition's type, and the event's reason when it turns True.
pub const BUDGET_ALERT: &str = "BudgetAlert";

/// What a pass found for one organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    /// The organization.
    pub organization: String,
    /// Month-to-date spend, dollars.
    pub month_to_date: f64,
    /// Whether it is at or past the alert threshold.
    pub alert: bool,
}

/// Whether `spent` dollars reach the alert threshold of `budget`, and the message saying so.
pub fn judge(spent: f64, budget: &Budget) -> (bool, String) {
    let threshold = f64::from(budget.monthly_usd) * f64::from(budget.alert_at_percent) / 100.0;
    let alert = spent >= threshold;
    let share = if budget.monthly_usd == 0 {
        0.0
    } else {
        spent / f64::from(budget.monthly_usd) * 100.0
    };
    let message = format!(
        "month-to-date spend ${spent:.2} is {share:.0}% of the ${} monthly budget (alert at {}%)",
        budget.monthly_usd, budget.alert_at_percent
    );
    (alert, message)
}

/// The first instant of `now_ms`'s month, UTC, in ms since the epoch.
pub fn month_start_ms(now_ms: u64) -> u64 {
    let ts = jiff::Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let first = ts
        .in_tz("UTC")
        .map_or(jiff::civil::date(1970, 1, 1), |z| z.date().first_of_month());
    first
        .in_tz("UTC")
        .map_or(0, |z| z.timestamp().as_millisecond().max(0) as u64)
}

/// Watches the budgets of one control plane's organizations.
#[derive(Debug, Clone)]
pub struct BudgetWatch {
    store: Arc<Store>,
    pricing: Pricing,
}

impl BudgetWatch {
    /// A watch over `store`'s organizations, pricing with `pricing`.
    pub fn new(store: Arc<Store>, pricing: Pricing) -> Self {
        BudgetWatch { store, pricing }
    }

    /// Runs a pass every `every` until dropped (abort the task to stop it).
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.pass(coditect_runtime::clock::now_ms()).await {
                tracing::warn!(error = %e, "budget pass failed");
            }
        }
    }

    /// Prices each budgeted organization's month to `now_ms` and sets its condition.
    ///
    /// # Errors
    /// Store failures.
    pub async fn pass(&self, now_ms: u64) -> Result<Vec<Spend>, StoreError> {
        let mut out = Vec::new();
        for r in self
            .store
            .list(Some(Kind::Organization), None, &LabelSelector::default())?
        {
            let Resource::Organization(org) = r else {
                continue;
            };
            let Some(budget) = org.spec.budget.clone() else {
                continue;
            };
            let name = org.metadata.name.clone();
            let since = month_start_ms(now_ms);
            let until = now_ms.max(since + 1);
            let reads = BucketReads::ManifestOnly;
            let usage = match measure(&self.store, Some(&name), (since, until), reads, |_| true)
                .await
            {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(organization = %name, error = %e, "budget: usage not measured");
                    continue;
                }
            };
            let spent = match price(&usage, &self.pricing) {
                Ok(report) => report
                    .rows
                    .iter()
                    .find(|row| row.scope == Scope::Total)
                    .map_or(0.0, |row| row.cost.total),
                Err(e) => {
                    tracing::warn!(error = %e, "budget: pricing failed");
                    continue;
                }
            };
            let (alert, message) = judge(spent, &budget);
            let key = Resource::Organization(org.clone()).key();
            let was = org
                .status
                .as_ref()
                .is_some_and(|s| conditions::is_true(&s.conditions, BUDGET_ALERT));
            self.store.update(&key, |r| {
                let Resource::Organization(o) = r else { return };
                let generation = o.metadata.generation;
                let status = o.status.get_or_insert_with(RollupStatus::default);
                let (state, reason) = if alert {
                    (ConditionStatus::True, "OverAlertThreshold")
                } else {
                    (ConditionStatus::False, "WithinBudget")
                };
                conditions::set(
                    &mut status.conditions,
                    BUDGET_ALERT,
                    state,
                    reason,
                    &message,
                    generation,
                );
            })?;
            if alert && !was {
                tracing::warn!(organization = %name, %message, "budget alert");
                self.store
                    .record_event(&key, "Warning", BUDGET_ALERT, &message);
            }
            out.push(Spend {
                organization: name,
                month_to_date: spent,
                alert,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_alert_holds_from_the_threshold_on() {
        let b = Budget {
            monthly_usd: 1000,
            alert_at_percent: 80,
        };
        assert!(!judge(799.99, &b).0);
        let (alert, message) = judge(800.0, &b);
        assert!(alert);
        assert!(message.contains("$800.00 is 80% of the $1000"), "{message}");
    }

    #[test]
    fn the_month_starts_on_the_first_at_midnight_utc() {
        // 2026-12-02T16:48:28Z
        let now = 1_796_230_108_000;
        let start = month_start_ms(now);
        assert_eq!(
            jiff::Timestamp::from_millisecond(start as i64)
                .unwrap()
                .to_string(),
            "2026-12-01T00:00:00Z"
        );
    }
}
