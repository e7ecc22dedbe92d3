//! Keep-awake windows in a time zone: whether one is open at an instant, and when the
//! next one opens. Time zones come from jiff's bundled tz database (DST and all), never
//! hand-written offsets.

use coditect_specs::workspace::{Schedule, Weekday, Window};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

/// A schedule that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The time zone is not in the tz database.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    /// A window's time is not `HH:MM`.
    #[error("invalid time {0:?}: expected HH:MM")]
    BadTime(String),
}

fn zone(schedule: &Schedule) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(&schedule.timezone)
        .map_err(|_| ScheduleError::UnknownTimeZone(schedule.timezone.clone()))
}

fn hh_mm(s: &str) -> Result<Time, ScheduleError> {
    let bad = || ScheduleError::BadTime(s.to_string());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn day_matches(days: &[Weekday], d: jiff::civil::Weekday) -> bool {
    let i = d.to_monday_zero_offset();
    days.iter().any(|w| *w as i8 == i)
}

/// The window open at `now`, if any.
///
/// # Errors
/// [`ScheduleError`] for an unknown zone or a bad time.
pub fn open_window(schedule: &Schedule, now: Timestamp) -> Result<Option<&Window>, ScheduleError> {
    let local = now.to_zoned_datetime(zone(schedule)?);
    let time = local.time();
    for w in &schedule.keep_awake {
        let (from, to) = (hh_mm(&w.from)?, hh_mm(&w.to)?);
        if day_matches(&w.days, local.weekday()) && from <= time && time < to {
            return Ok(Some(w));
        }
    }
    Ok(None)
}

/// When the next window opens after `now` (within a week), if any.
///
/// # Errors
/// [`ScheduleError`] for an unknown zone or a bad time.
pub fn next_opening(
    schedule: &Schedule,
    now: Timestamp,
) -> Result<Option<Timestamp>, ScheduleError> {
    let tz = zone(schedule)?;
    let today: Date = now.to_zoned_datetime(tz.clone()).date();
    let mut best: Option<Timestamp> = None;
    let mut day = today;
    for _ in 0..8 {
        for w in &schedule.keep_awake {
            let from = hh_mm(&w.from)?;
            if !day_matches(&w.days, day.weekday()) {
                continue;
            }
            // A local time that does not exist (a DST gap) resolves forward, as jiff's
            // default disambiguation does.
            let Ok(at) = day.to_datetime(from).to_zoned_datetime(tz.clone()) else {
                continue;
            };
            let at = at.timestamp();
            if at > now && best.is_none_or(|b| at < b) {
                best = Some(at);
            }
        }
        day = match day.tomorrow() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn berlin_office() -> Schedule {
        Schedule {
            timezone: "Europe/Berlin".into(),
            keep_awake: vec![Window {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                from: "08:00".into(),
                to: "19:00".into(),
            }],
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_is_read_in_its_own_time_zone() {
        let s = berlin_office();
        // Wednesday 2026-12-02: 07:30 UTC is 08:30 in Berlin (CET, +1): open.
        assert!(
            open_window(&s, at("2026-12-02T07:30:00Z"))
                .unwrap()
                .is_some()
        );
        // 06:30 UTC is 07:30 in Berlin: not yet.
        assert!(
            open_window(&s, at("2026-12-02T06:30:00Z"))
                .unwrap()
                .is_none()
        );
        // 18:30 UTC is 19:30 in Berlin: closed, though it is before 19:00 UTC.
        assert!(
            open_window(&s, at("2026-12-02T18:30:00Z"))
                .unwrap()
                .is_none()
        );
        // In summer (CEST, +2), 06:30 UTC is 08:30 in Berlin: open.
        assert!(
            open_window(&s, at("2026-07-01T06:30:00Z"))
                .unwrap()
                .is_some()
        );
        // Saturday: closed all day.
        assert!(
            open_window(&s, at("2026-12-05T10:00:00Z"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_window_across_the_date_line_follows_local_days() {
        // Monday 08:00 in Auckland (+13 in December) is Sunday 19:00 UTC.
        let s = Schedule {
            timezone: "Pacific/Auckland".into(),
            keep_awake: vec![Window {
                days: vec![Weekday::Mon],
                from: "08:00".into(),
                to: "09:00".into(),
            }],
        };
        assert!(
            open_window(&s, at("2026-12-06T19:30:00Z"))
                .unwrap()
                .is_some()
        );
        assert!(
            open_window(&s, at("2026-12-07T19:30:00Z"))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            next_opening(&s, at("2026-12-06T12:00:00Z")).unwrap(),
            Some(at("2026-12-06T19:00:00Z"))
        );
    }

    #[test]
    fn the_next_opening_skips_the_weekend_and_follows_dst() {
        let s = berlin_office();
        // Friday evening → Monday 08:00 CET = 07:00 UTC.
        assert_eq!(
            next_opening(&s, at("2026-12-04T20:00:00Z")).unwrap(),
            Some(at("2026-12-07T07:00:00Z"))
        );
        // Across the spring change (2027-03-28): Monday 2027-03-29 08:00 CEST = 06:00 UTC.
        assert_eq!(
            next_opening(&s, at("2027-03-26T20:00:00Z")).unwrap(),
            Some(at("2027-03-29T06:00:00Z"))
        );
    }

    #[test]
    fn an_unknown_zone_is_an_error_not_a_guess() {
        let s = Schedule {
            timezone: "Mars/Olympus".into(),
            ..berlin_office()
        };
        assert!(matches!(
            open_window(&s, at("2026-12-02T07:30:00Z")),
            Err(ScheduleError::UnknownTimeZone(_))
        ));
    }
}
