//! # shoal-schedule: when a workflow's schedule fires
//!
//! DolphinScheduler schedules are Quartz 2.3.2 cron expressions with seconds
//! (`sec min hour day-of-month month day-of-week [year]`), including `?` (no value),
//! `L` (last day, `L-n` days before it, `LW` the last weekday; `nL` the last weekday n),
//! `W` (nearest weekday), `#` (nth weekday, Quartz numbering: 1 = Sunday … 7 = Saturday)
//! and ranges that wrap (`22-2`, `FRI-MON`), evaluated in a time zone and limited to a
//! start/end window. [`CronSchedule`] parses such a schedule once (the `quartz` module
//! reads it as Quartz's `CronExpression` does, refusing the text Quartz silently ignores)
//! and answers the one question the scheduler asks: the next fire time after an instant.
//!
//! Daylight-saving changes follow the zone's rules: a fire whose wall-clock time does not
//! exist that day happens when the gap ends (the day's run is not lost), and a time that
//! happens twice fires once, at its first occurrence. (Quartz, through Java's lenient
//! calendar, would run a 02:30 fire in the gap at 03:30; Shoal keeps its own rule.)

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

mod describe;
mod quartz;

pub use describe::describe;

/// How far a gap in a zone's wall clock is searched for its end. The longest since 1970
/// is a whole day (Samoa skipped 2011-12-30).
const MAX_GAP_MINUTES: i64 = 2 * 24 * 60;

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
    cron: quartz::Cron,
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
        let cron = quartz::parse(expression.trim()).map_err(|message| ScheduleError::Cron {
            expression: expression.to_owned(),
            message,
        })?;
        // An expression that matches no date at all (31 February; years with no such
        // weekday) is refused here rather than accepted as a schedule that never runs.
        let epoch = DateTime::<Utc>::UNIX_EPOCH.naive_utc();
        if cron.next_from(epoch).is_none() {
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

    /// The next `count` fire times after `after` (fewer when the window ends first).
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut at = after;
        while out.len() < count {
            match self.next_after(at) {
                Some(t) => {
                    out.push(t);
                    at = t;
                }
                None => break,
            }
        }
        out
    }

    /// The first fire time strictly after `after`, or none when the window is over.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (from, inclusive) = match self.start {
            Some(start) if start > after => (start, true),
            _ => (after, false),
        };
        // Fires fall on whole seconds; a sub-second start would leak into every fire.
        let from = from.with_nanosecond(0).unwrap_or(from);
        let next = self.first_fire(from, inclusive)?;
        match self.end {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The first fire after `bound` (at or after, if `inclusive`). Wall-clock fire times map
    /// to instants in their order (see [`Self::instant`]), so the search walks them from
    /// `bound`'s own wall-clock time and passes over the few that map to `bound` or before
    /// it: those in the repeated hour after a clock went back, or in a gap that ended
    /// before `bound`.
    fn first_fire(&self, bound: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        let mut from = self.local(bound);
        if !inclusive {
            from = from.checked_add_signed(TimeDelta::seconds(1))?;
        }
        loop {
            let local = self.cron.next_from(from)?;
            let after = local.checked_add_signed(TimeDelta::seconds(1))?;
            match self.instant(local) {
                Some((at, _)) if at > bound || (inclusive && at == bound) => return Some(at),
                // Everything else in the gap maps to the same instant.
                Some((_, Some(gap_end))) => from = gap_end.max(after),
                _ => from = after,
            }
        }
    }

    /// The last fire at or before `bound`, with no window applied.
    fn last_fire(&self, bound: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = self.local(bound);
        // A later wall-clock time still maps to `bound` or before when `bound` is in the
        // second pass of a repeated hour; it is the latest fire if there is one.
        let mut latest = None;
        let mut from = local.checked_add_signed(TimeDelta::seconds(1))?;
        while let Some(next) = self.cron.next_from(from) {
            match self.instant(next) {
                Some((at, _)) if at <= bound => latest = Some(at),
                _ => break,
            }
            from = next.checked_add_signed(TimeDelta::seconds(1))?;
        }
        if latest.is_some() {
            return latest;
        }
        let mut upto = local;
        loop {
            let prev = self.cron.prev_from(upto)?;
            if let Some((at, _)) = self.instant(prev) {
                return Some(at);
            }
            upto = prev.checked_sub_signed(TimeDelta::seconds(1))?;
        }
    }

    fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        self.zone.from_utc_datetime(&at.naive_utc()).naive_local()
    }

    /// The instant a wall-clock fire time happens at: a repeated time at its first
    /// occurrence, a time in a gap when the gap ends (then also the wall-clock time the
    /// gap ends at).
    fn instant(&self, local: NaiveDateTime) -> Option<(DateTime<Utc>, Option<NaiveDateTime>)> {
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(at) => Some((at.with_timezone(&Utc), None)),
            LocalResult::Ambiguous(first, _) => Some((first.with_timezone(&Utc), None)),
            LocalResult::None => {
                let (at, end) = self.gap_end(local)?;
                Some((at, Some(end)))
            }
        }
    }

    /// The first existing wall-clock time after `local`, which is in a gap, and its
    /// instant. Found a minute at a time, then to the second.
    fn gap_end(&self, local: NaiveDateTime) -> Option<(DateTime<Utc>, NaiveDateTime)> {
        let exists = |t: NaiveDateTime| self.zone.from_local_datetime(&t).earliest();
        let whole_minute = local.with_second(0)?;
        let minute = (1..=MAX_GAP_MINUTES)
            .filter_map(|m| whole_minute.checked_add_signed(TimeDelta::minutes(m)))
            .find(|t| exists(*t).is_some())?;
        let start = (minute - TimeDelta::seconds(59)).max(local + TimeDelta::seconds(1));
        let mut t = start;
        while t <= minute {
            if let Some(at) = exists(t) {
                return Some((at.with_timezone(&Utc), t));
            }
            t += TimeDelta::seconds(1);
        }
        None
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
                let latest = self.last_fire(now)?;
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
mod tests;
