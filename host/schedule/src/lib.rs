//! # shoal-schedule: when a workflow's schedule fires
//!
//! DolphinScheduler schedules are Quartz cron expressions with seconds
//! (`sec min hour day-of-month month day-of-week [year]`), including `?` (no value),
//! `L` (last day / last weekday of the month), `W` (nearest weekday) and `#` (nth weekday,
//! Quartz numbering: 1 = Sunday … 7 = Saturday), evaluated in a time zone and limited to
//! a start/end window. [`CronSchedule`] parses such a schedule once (parsing is done by the
//! `croner` crate) and answers the one question the scheduler asks: the next fire time
//! after an instant. Daylight-saving changes follow the zone's rules: a fire whose
//! wall-clock time does not exist that day happens when the gap ends (the day's run is not
//! lost), and a time that happens twice fires once.

use chrono::{DateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("cron expression `{expression}`: {message}")]
    Cron { expression: String, message: String },
    #[error("unknown time zone `{0}` (expected an IANA name such as `Asia/Shanghai` or `UTC`)")]
    TimeZone(String),
    #[error("the schedule's start time {start} is after its end time {end}")]
    Window { start: String, end: String },
}

/// A parsed schedule: expression, zone and window.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    cron: croner::Cron,
    zone: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl CronSchedule {
    /// Parse a Quartz-style expression (seconds required) in the IANA time zone `zone`.
    pub fn new(expression: &str, zone: &str) -> Result<Self, ScheduleError> {
        let zone: Tz = zone
            .parse()
            .map_err(|_| ScheduleError::TimeZone(zone.to_owned()))?;
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            // Quartz numbers weekdays 1 (Sunday) to 7 (Saturday).
            .alternative_weekdays(true)
            .build()
            .parse(expression.trim())
            .map_err(|e| ScheduleError::Cron {
                expression: expression.to_owned(),
                message: e.to_string(),
            })?;
        // An expression that matches no date at all (31 February; a bare `L` as the weekday,
        // which croner accepts but never matches) makes every next-fire question search to
        // croner's limit, about 0.1 s of CPU each. It is refused once, here, instead.
        let epoch = zone.from_utc_datetime(&DateTime::<Utc>::UNIX_EPOCH.naive_utc());
        if cron.find_next_occurrence(&epoch, true).is_err() {
            return Err(ScheduleError::Cron {
                expression: expression.to_owned(),
                message: "no date matches it, so it would never fire".into(),
            });
        }
        Ok(Self {
            expression: expression.trim().to_owned(),
            cron,
            zone,
            start: None,
            end: None,
        })
    }

    /// Fire only within `[start, end]`.
    pub fn between(
        mut self,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<Self, ScheduleError> {
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return Err(ScheduleError::Window {
                start: s.to_rfc3339(),
                end: e.to_rfc3339(),
            });
        }
        self.start = start;
        self.end = end;
        Ok(self)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `after`, or none when the window is over.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (from, inclusive) = match self.start {
            Some(start) if start > after => (start, true),
            _ => (after, false),
        };
        // Fires fall on whole seconds; a sub-second start would leak into every fire.
        let from = from.with_nanosecond(0).unwrap_or(from);
        let local = self.zone.from_utc_datetime(&from.naive_utc());
        let next = self
            .cron
            .find_next_occurrence(&local, inclusive)
            .ok()?
            .with_timezone(&Utc);
        match self.end {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// Every fire time in `(after, until]`, at most `limit` of them (for a server that was
    /// down: its missed fires).
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::new();
        let mut at = after;
        while fires.len() < limit {
            match self.next_after(at) {
                Some(next) if next <= until => {
                    fires.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        fires
    }
}

/// What a schedule does about fires missed while the server was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissedFires {
    /// Forget them; the next run is the next fire from now.
    #[default]
    Skip,
    /// Run once, for the latest missed fire.
    RunOnce,
}

impl CronSchedule {
    /// The fires to run now for a schedule that last fired at `last_fire` (none: it never
    /// did) when the time is `now`: under [`MissedFires::Skip`] nothing, under
    /// [`MissedFires::RunOnce`] the latest fire in `(last_fire, now]`, if any.
    pub fn missed(
        &self,
        last_fire: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: MissedFires,
    ) -> Option<DateTime<Utc>> {
        match policy {
            MissedFires::Skip => None,
            MissedFires::RunOnce => {
                let now = now.with_nanosecond(0).unwrap_or(now);
                let local = self.zone.from_utc_datetime(&now.naive_utc());
                let latest = self
                    .cron
                    .find_previous_occurrence(&local, true)
                    .ok()?
                    .with_timezone(&Utc);
                (latest > last_fire && self.start.is_none_or(|s| latest >= s))
                    .then_some(latest)
                    .filter(|t| self.end.is_none_or(|e| *t <= e))
            }
        }
    }
}

/// The business dates of a backfill over `[from, to]` (both included), oldest first.
/// Refuses a reversed range and ranges over `max_days`, so a typo cannot queue a century.
pub fn backfill_dates(
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    max_days: usize,
) -> Result<Vec<chrono::NaiveDate>, String> {
    if from > to {
        return Err(format!("backfill from {from} is after its end {to}"));
    }
    let days = (to - from).num_days() as usize + 1;
    if days > max_days {
        return Err(format!(
            "backfill from {from} to {to} is {days} days; at most {max_days} at once"
        ));
    }
    Ok(from.iter_days().take(days).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, zone: &str, after: &str) -> String {
        CronSchedule::new(expr, zone)
            .unwrap()
            .next_after(utc(after))
            .unwrap()
            .with_timezone(&zone.parse::<Tz>().unwrap())
            .to_rfc3339()
    }

    #[test]
    fn expressions_that_never_fire_are_refused() {
        // Found by the `cron` fuzz target: each of these made every next-fire search run to
        // croner's limit.
        for expr in [
            "8 20/9 2 ? * l",
            "0 0 0 ? * L",
            "0 0 0 31 2 ?",
            "0 0 0 30 2 ?",
        ] {
            let started = std::time::Instant::now();
            let err = CronSchedule::new(expr, "America/Santiago").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("cron expression `{expr}`: no date matches it, so it would never fire")
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
        // Rare but real dates pass: a leap day on a Tuesday, one fire in a far year, a
        // year that is already over (it simply has no next fire).
        for expr in ["0 0 0 29 2 3#5", "0 0 0 1 1 ? 4999", "0 0 0 1 1 ? 1971"] {
            assert!(CronSchedule::new(expr, "UTC").is_ok(), "{expr}");
        }
        let past = CronSchedule::new("0 0 0 1 1 ? 1971", "UTC").unwrap();
        assert_eq!(past.next_after(utc("2024-01-01T00:00:00Z")), None);
    }

    #[test]
    fn quartz_forms() {
        let cases = [
            // Every 5 seconds.
            (
                "*/5 * * * * ?",
                "UTC",
                "2024-03-01T10:00:02Z",
                "2024-03-01T10:00:05+00:00",
            ),
            // 02:00 every day.
            (
                "0 0 2 * * ?",
                "UTC",
                "2024-03-01T02:00:00Z",
                "2024-03-02T02:00:00+00:00",
            ),
            // Noon on the last day of the month (a leap February).
            (
                "0 0 12 L * ?",
                "UTC",
                "2024-02-10T00:00:00Z",
                "2024-02-29T12:00:00+00:00",
            ),
            // 09:00 on the weekday nearest the 15th: 2024-06-15 is a Saturday -> Friday 14th.
            (
                "0 0 9 15W * ?",
                "UTC",
                "2024-06-01T00:00:00Z",
                "2024-06-14T09:00:00+00:00",
            ),
            // 10:00 on the third Friday (Quartz: 6 = Friday) of the month.
            (
                "0 0 10 ? * 6#3",
                "UTC",
                "2024-03-01T00:00:00Z",
                "2024-03-15T10:00:00+00:00",
            ),
            // Weekdays at 08:30 by name; from a Saturday, the next is Monday.
            (
                "0 30 8 ? * MON-FRI",
                "UTC",
                "2024-03-02T09:00:00Z",
                "2024-03-04T08:30:00+00:00",
            ),
            // In a zone: 02:00 in Shanghai is 18:00 UTC the day before.
            (
                "0 0 2 * * ?",
                "Asia/Shanghai",
                "2024-03-01T00:00:00Z",
                "2024-03-02T02:00:00+08:00",
            ),
        ];
        for (expr, zone, after, want) in cases {
            assert_eq!(
                next(expr, zone, after),
                want,
                "{expr} in {zone} after {after}"
            );
        }
    }

    #[test]
    fn daylight_saving_changes() {
        // New York springs forward on 2024-03-10: 02:30 does not exist that day.
        let spring = next("0 30 2 * * ?", "America/New_York", "2024-03-09T12:00:00Z");
        assert_eq!(
            spring, "2024-03-10T03:00:00-04:00",
            "a run whose time falls into the gap fires when the gap ends, not a day later"
        );
        // Falling back on 2024-11-03, 01:30 happens twice; the schedule fires once.
        let s = CronSchedule::new("0 30 1 * * ?", "America/New_York").unwrap();
        let fires = s.fires_between(utc("2024-11-03T00:00:00Z"), utc("2024-11-04T12:00:00Z"), 10);
        let on_the_day: Vec<_> = fires
            .iter()
            .map(|f| f.with_timezone(&s.zone()).date_naive().to_string())
            .filter(|d| d == "2024-11-03")
            .collect();
        assert_eq!(on_the_day.len(), 1, "{fires:?}");
        // Hourly fires keep their UTC spacing across the change.
        let hourly = CronSchedule::new("0 0 * * * ?", "Europe/Berlin").unwrap();
        let fires =
            hourly.fires_between(utc("2024-03-31T00:00:00Z"), utc("2024-03-31T03:00:00Z"), 10);
        assert_eq!(fires.len(), 3, "{fires:?}");
    }

    #[test]
    fn window_and_errors() {
        let s = CronSchedule::new("0 0 0 * * ?", "UTC")
            .unwrap()
            .between(
                Some(utc("2024-05-01T00:00:00Z")),
                Some(utc("2024-05-03T00:00:00Z")),
            )
            .unwrap();
        assert_eq!(
            s.next_after(utc("2024-01-01T00:00:00Z")),
            Some(utc("2024-05-01T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2024-05-02T00:00:00Z")),
            Some(utc("2024-05-03T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2024-05-03T00:00:00Z")),
            None,
            "the window is over"
        );
        assert_eq!(
            s.fires_between(utc("2024-04-01T00:00:00Z"), utc("2024-06-01T00:00:00Z"), 10)
                .len(),
            3
        );

        let err = CronSchedule::new("0 0 25 * * ?", "UTC").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cron expression `0 0 25 * * ?`"),
            "{err}"
        );
        let err = CronSchedule::new("0 0 2 * * ?", "Mars/Olympus").unwrap_err();
        assert_eq!(err, ScheduleError::TimeZone("Mars/Olympus".into()));
        let err = CronSchedule::new("0 0 2 * * ?", "UTC")
            .unwrap()
            .between(
                Some(utc("2024-02-01T00:00:00Z")),
                Some(utc("2024-01-01T00:00:00Z")),
            )
            .unwrap_err();
        assert!(matches!(err, ScheduleError::Window { .. }));
    }

    #[test]
    fn missed_fires_follow_the_policy() {
        let s = CronSchedule::new("0 0 * * * ?", "UTC").unwrap();
        let last = utc("2024-03-01T10:00:00Z");
        let now = utc("2024-03-01T13:20:00Z");
        assert_eq!(s.missed(last, now, MissedFires::Skip), None);
        assert_eq!(
            s.missed(last, now, MissedFires::RunOnce),
            Some(utc("2024-03-01T13:00:00Z")),
            "the latest missed fire, once"
        );
        assert_eq!(
            s.missed(utc("2024-03-01T13:00:00Z"), now, MissedFires::RunOnce),
            None,
            "nothing was missed"
        );
    }

    #[test]
    fn fires_fall_on_whole_seconds_whatever_the_clock_reads() {
        let s = CronSchedule::new("*/2 * * * * ?", "UTC").unwrap();
        let now = utc("2024-03-01T13:20:01.738Z");
        assert_eq!(s.next_after(now), Some(utc("2024-03-01T13:20:02Z")));
        assert_eq!(
            s.missed(utc("2024-03-01T13:00:00Z"), now, MissedFires::RunOnce),
            Some(utc("2024-03-01T13:20:00Z"))
        );
    }

    #[test]
    fn backfill_dates_cover_the_range() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let dates = backfill_dates(d("2024-02-27"), d("2024-03-01"), 100).unwrap();
        let shown: Vec<String> = dates.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            shown,
            ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
        );
        assert!(backfill_dates(d("2024-03-02"), d("2024-03-01"), 100).is_err());
        let err = backfill_dates(d("2024-01-01"), d("2024-12-31"), 100).unwrap_err();
        assert!(err.contains("366 days"), "{err}");
    }
}
