//! The idleness rule: one pure function over observed facts, a policy and the time.
//!
//! A workspace is idle only when all hold: no client request for `idleAfter` and no open
//! WebSocket, no task queued or running, no model call in flight, no lock held, no
//! keep-alive in force, and outside its keep-awake windows. Anything else keeps it awake,
//! and the verdict says which.

use coditect_runtime::activity::ActivityFacts;
use coditect_specs::workspace::AutoSleepPolicy;
use jiff::Timestamp;

use crate::schedule::{ScheduleError, open_window};

/// What the rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Put it to sleep, for this reason.
    Sleep(String),
    /// Keep it awake, because of this (stable words: written to the status only when
    /// they change).
    Keep(String),
}

/// Whether a workspace with `facts` may sleep at `now` under `policy`.
///
/// # Errors
/// [`ScheduleError`] when the policy's schedule cannot be evaluated (the caller keeps the
/// workspace awake and says why).
pub fn idle(
    facts: &ActivityFacts,
    policy: &AutoSleepPolicy,
    now: Timestamp,
) -> Result<Verdict, ScheduleError> {
    if !policy.enabled {
        return Ok(Verdict::Keep("auto-sleep is off for this workspace".into()));
    }
    if !facts.busy.is_empty() {
        return Ok(Verdict::Keep(facts.busy.join(", ")));
    }
    let idle_after = policy.idle_after.to_std();
    let idle_ms = now
        .as_millisecond()
        .saturating_sub(i64::try_from(facts.last_activity_ms).unwrap_or(i64::MAX));
    let idle_for = std::time::Duration::from_millis(u64::try_from(idle_ms).unwrap_or(0));
    if idle_for < idle_after {
        return Ok(Verdict::Keep(format!(
            "recent activity (sleeps after {} idle)",
            policy.idle_after
        )));
    }
    if let Some(schedule) = &policy.schedule
        && let Some(w) = open_window(schedule, now)?
    {
        return Ok(Verdict::Keep(format!(
            "inside a keep-awake window ({}–{} {})",
            w.from, w.to, schedule.timezone
        )));
    }
    Ok(Verdict::Sleep(format!(
        "idle for {}s (no request, WebSocket, task, model call, lock or keep-alive)",
        idle_for.as_secs()
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use coditect_specs::workspace::{Schedule, Weekday, Window};

    use super::*;

    fn facts(last: &str) -> ActivityFacts {
        let last: Timestamp = last.parse().unwrap();
        let ms = u64::try_from(last.as_millisecond()).unwrap();
        ActivityFacts {
            last_activity_at: last.to_string(),
            last_activity_ms: ms,
            connections: 0,
            tasks_open: 0,
            model_calls_in_flight: 0,
            locks_held: 0,
            keep_alive_until: None,
            busy: Vec::new(),
        }
    }

    fn policy() -> AutoSleepPolicy {
        AutoSleepPolicy {
            enabled: true,
            idle_after: "30m".parse().unwrap(),
            schedule: Some(Schedule {
                timezone: "America/New_York".into(),
                keep_awake: vec![Window {
                    days: vec![
                        Weekday::Mon,
                        Weekday::Tue,
                        Weekday::Wed,
                        Weekday::Thu,
                        Weekday::Fri,
                    ],
                    from: "09:00".into(),
                    to: "17:00".into(),
                }],
            }),
            free_local_disk: false,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn idle_long_enough_outside_every_window_sleeps() {
        // Wednesday 03:00 UTC is Tuesday 22:00 in New York.
        let v = idle(
            &facts("2026-12-02T02:00:00Z"),
            &policy(),
            at("2026-12-02T03:00:00Z"),
        )
        .unwrap();
        assert!(matches!(v, Verdict::Sleep(_)), "{v:?}");
    }

    #[test]
    fn recent_activity_keeps_it_awake_until_idle_after_has_passed() {
        let p = policy();
        let f = facts("2026-12-02T02:40:00Z");
        assert!(matches!(
            idle(&f, &p, at("2026-12-02T03:09:59Z")).unwrap(),
            Verdict::Keep(_)
        ));
        assert!(matches!(
            idle(&f, &p, at("2026-12-02T03:10:00Z")).unwrap(),
            Verdict::Sleep(_)
        ));
    }

    #[test]
    fn agents_at_work_keep_it_awake_whatever_the_clock_says() {
        for (fact, word) in [
            ("connections", "WebSocket"),
            ("tasks_open", "task"),
            ("model_calls_in_flight", "model call"),
            ("locks_held", "lock"),
        ] {
            let mut f = facts("2026-12-01T00:00:00Z");
            match fact {
                "connections" => f.connections = 1,
                "tasks_open" => f.tasks_open = 1,
                "model_calls_in_flight" => f.model_calls_in_flight = 1,
                _ => f.locks_held = 1,
            }
            f.busy = f.reasons();
            let v = idle(&f, &policy(), at("2026-12-02T03:00:00Z")).unwrap();
            assert!(
                matches!(&v, Verdict::Keep(why) if why.contains(word)),
                "{fact}: {v:?}"
            );
        }
    }

    #[test]
    fn a_keep_awake_window_holds_in_its_time_zone_across_the_utc_date() {
        let p = policy();
        let f = facts("2026-12-01T00:00:00Z");
        // Wednesday 14:30 UTC is 09:30 in New York (EST, -5): inside.
        assert!(matches!(
            idle(&f, &p, at("2026-12-02T14:30:00Z")).unwrap(),
            Verdict::Keep(_)
        ));
        // Thursday 00:30 UTC is still Wednesday 19:30 in New York: outside, so it sleeps.
        assert!(matches!(
            idle(&f, &p, at("2026-12-03T00:30:00Z")).unwrap(),
            Verdict::Sleep(_)
        ));
        // Saturday 14:30 UTC: a weekend, sleeps.
        assert!(matches!(
            idle(&f, &p, at("2026-12-05T14:30:00Z")).unwrap(),
            Verdict::Sleep(_)
        ));
    }

    #[test]
    fn a_disabled_policy_never_sleeps() {
        let p = AutoSleepPolicy {
            enabled: false,
            ..policy()
        };
        let v = idle(
            &facts("2026-01-01T00:00:00Z"),
            &p,
            at("2026-12-05T14:30:00Z"),
        )
        .unwrap();
        assert!(matches!(v, Verdict::Keep(_)));
    }
}
