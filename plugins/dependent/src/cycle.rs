//! DolphinScheduler's dependent date cycles (`dependent_date`) and the business-time
//! intervals each one covers.
//!
//! A cycle is one or more `[from, to)` intervals relative to the run's business time,
//! one per hour or per day as in DolphinScheduler (`DependentDateUtils`), so `last7Days`
//! asks for a successful run on each of the seven days, not just one run somewhere in
//! the week.
//!
//! Calendar arithmetic is in UTC. DolphinScheduler uses the server's time zone; Shoal's
//! business times are instants (ms since the Unix epoch) and the host passes no zone,
//! so UTC is the one choice that gives every worker the same days. A workflow scheduled
//! at local midnight in a zone east or west of UTC therefore has its "today" on the UTC
//! date of that instant.

use std::fmt;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Weekday};

const HOUR_MS: i64 = 3_600_000;

/// A `dependent_date` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// The business time's own hour.
    CurrentHour,
    /// Each of the last 1, 2 or 3 whole hours before the business time's hour.
    LastHours(u8),
    /// Each hour from yesterday 01:00 to today 01:00 (DolphinScheduler's definition).
    Last24Hours,
    Today,
    /// Each of the last 1, 2, 3 or 7 days before the business day.
    LastDays(u8),
    /// Each day from this week's Monday to the business day.
    ThisWeek,
    /// Each day of last week, Monday to Sunday.
    LastWeek,
    /// That day of last week.
    LastWeekday(Weekday),
    /// Each day from the 1st of the month to the business day.
    ThisMonth,
    /// Each day of last month.
    LastMonth,
    LastMonthBegin,
    LastMonthEnd,
}

/// Every cycle, in DolphinScheduler's order (for messages and tests).
pub const ALL: &[Cycle] = &[
    Cycle::CurrentHour,
    Cycle::LastHours(1),
    Cycle::LastHours(2),
    Cycle::LastHours(3),
    Cycle::Last24Hours,
    Cycle::Today,
    Cycle::LastDays(1),
    Cycle::LastDays(2),
    Cycle::LastDays(3),
    Cycle::LastDays(7),
    Cycle::ThisWeek,
    Cycle::LastWeek,
    Cycle::LastWeekday(Weekday::Mon),
    Cycle::LastWeekday(Weekday::Tue),
    Cycle::LastWeekday(Weekday::Wed),
    Cycle::LastWeekday(Weekday::Thu),
    Cycle::LastWeekday(Weekday::Fri),
    Cycle::LastWeekday(Weekday::Sat),
    Cycle::LastWeekday(Weekday::Sun),
    Cycle::ThisMonth,
    Cycle::LastMonth,
    Cycle::LastMonthBegin,
    Cycle::LastMonthEnd,
];

impl Cycle {
    /// Read a cycle written as DolphinScheduler's server value (`last1Days`) or its
    /// Python SDK's constant name (`LAST_ONE_DAYS`), in any case.
    pub fn parse(text: &str) -> Option<Cycle> {
        let key: String = text
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Some(match key.as_str() {
            "currenthour" => Cycle::CurrentHour,
            "last1hour" | "lastonehour" => Cycle::LastHours(1),
            "last2hours" | "lasttwohours" => Cycle::LastHours(2),
            "last3hours" | "lastthreehours" => Cycle::LastHours(3),
            "last24hours" | "lasttwentyfourhours" => Cycle::Last24Hours,
            "today" => Cycle::Today,
            "last1days" | "last1day" | "lastonedays" | "lastoneday" | "yesterday" => {
                Cycle::LastDays(1)
            }
            "last2days" | "lasttwodays" => Cycle::LastDays(2),
            "last3days" | "lastthreedays" => Cycle::LastDays(3),
            "last7days" | "lastsevendays" => Cycle::LastDays(7),
            "thisweek" => Cycle::ThisWeek,
            "lastweek" => Cycle::LastWeek,
            "lastmonday" => Cycle::LastWeekday(Weekday::Mon),
            "lasttuesday" => Cycle::LastWeekday(Weekday::Tue),
            "lastwednesday" => Cycle::LastWeekday(Weekday::Wed),
            "lastthursday" => Cycle::LastWeekday(Weekday::Thu),
            "lastfriday" => Cycle::LastWeekday(Weekday::Fri),
            "lastsaturday" => Cycle::LastWeekday(Weekday::Sat),
            "lastsunday" => Cycle::LastWeekday(Weekday::Sun),
            "thismonth" => Cycle::ThisMonth,
            "lastmonth" => Cycle::LastMonth,
            "lastmonthbegin" => Cycle::LastMonthBegin,
            "lastmonthend" => Cycle::LastMonthEnd,
            _ => return None,
        })
    }

    /// The intervals this cycle covers for a run with business time `schedule_ms`,
    /// oldest first. None only for a time outside the calendar's range.
    pub fn intervals(self, schedule_ms: i64) -> Option<Vec<Interval>> {
        let today = DateTime::from_timestamp_millis(schedule_ms)?.date_naive();
        let hour = schedule_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let hours = |starts: &mut dyn Iterator<Item = i64>| -> Vec<Interval> {
            starts
                .map(|from| Interval {
                    from_ms: from,
                    to_ms: from + HOUR_MS,
                })
                .collect()
        };
        let monday =
            today.checked_sub_days(Days::new(today.weekday().num_days_from_monday().into()))?;
        let last_monday = monday.checked_sub_days(Days::new(7))?;
        let first_of_month = today.with_day(1)?;
        let end_of_last_month = first_of_month.pred_opt()?;
        let first_of_last_month = end_of_last_month.with_day(1)?;
        Some(match self {
            Cycle::CurrentHour => hours(&mut std::iter::once(hour)),
            Cycle::LastHours(n) => hours(&mut (1..=i64::from(n)).rev().map(|k| hour - k * HOUR_MS)),
            Cycle::Last24Hours => {
                let midnight = day_start(today)?;
                hours(&mut (0..24).map(|k| midnight - 23 * HOUR_MS + k * HOUR_MS))
            }
            Cycle::Today => days(today, today)?,
            Cycle::LastDays(n) => days(
                today.checked_sub_days(Days::new(n.into()))?,
                today.pred_opt()?,
            )?,
            Cycle::ThisWeek => days(monday, today)?,
            Cycle::LastWeek => days(last_monday, monday.pred_opt()?)?,
            Cycle::LastWeekday(day) => {
                let d =
                    last_monday.checked_add_days(Days::new(day.num_days_from_monday().into()))?;
                days(d, d)?
            }
            Cycle::ThisMonth => days(first_of_month, today)?,
            Cycle::LastMonth => days(first_of_last_month, end_of_last_month)?,
            Cycle::LastMonthBegin => days(first_of_last_month, first_of_last_month)?,
            Cycle::LastMonthEnd => days(end_of_last_month, end_of_last_month)?,
        })
    }
}

/// DolphinScheduler's server value, e.g. `last1Days`.
impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cycle::CurrentHour => f.write_str("currentHour"),
            Cycle::LastHours(1) => f.write_str("last1Hour"),
            Cycle::LastHours(n) => write!(f, "last{n}Hours"),
            Cycle::Last24Hours => f.write_str("last24Hours"),
            Cycle::Today => f.write_str("today"),
            Cycle::LastDays(n) => write!(f, "last{n}Days"),
            Cycle::ThisWeek => f.write_str("thisWeek"),
            Cycle::LastWeek => f.write_str("lastWeek"),
            Cycle::LastWeekday(day) => f.write_str(match day {
                Weekday::Mon => "lastMonday",
                Weekday::Tue => "lastTuesday",
                Weekday::Wed => "lastWednesday",
                Weekday::Thu => "lastThursday",
                Weekday::Fri => "lastFriday",
                Weekday::Sat => "lastSaturday",
                Weekday::Sun => "lastSunday",
            }),
            Cycle::ThisMonth => f.write_str("thisMonth"),
            Cycle::LastMonth => f.write_str("lastMonth"),
            Cycle::LastMonthBegin => f.write_str("lastMonthBegin"),
            Cycle::LastMonthEnd => f.write_str("lastMonthEnd"),
        }
    }
}

/// A range of business times, `[from_ms, to_ms)` in ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Short and readable: `2024-03-05` for a whole day, `2024-03-05 09:00-10:00` for an
/// hour, else both ends; always UTC.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Some(from), Some(to)) = (
            DateTime::from_timestamp_millis(self.from_ms),
            DateTime::from_timestamp_millis(self.to_ms),
        ) else {
            return write!(f, "[{}, {}) ms", self.from_ms, self.to_ms);
        };
        let length = self.to_ms - self.from_ms;
        if length == 24 * HOUR_MS && from.time() == NaiveTime::MIN {
            write!(f, "{}", from.format("%Y-%m-%d"))
        } else if length == HOUR_MS && self.from_ms % HOUR_MS == 0 {
            write!(
                f,
                "{}-{} UTC",
                from.format("%Y-%m-%d %H:%M"),
                to.format("%H:%M")
            )
        } else {
            write!(
                f,
                "[{}, {}) UTC",
                from.format("%Y-%m-%d %H:%M:%S"),
                to.format("%Y-%m-%d %H:%M:%S")
            )
        }
    }
}

fn day_start(day: NaiveDate) -> Option<i64> {
    Some(day.and_time(NaiveTime::MIN).and_utc().timestamp_millis())
}

/// One interval per day from `first` to `last`, both included.
fn days(first: NaiveDate, last: NaiveDate) -> Option<Vec<Interval>> {
    let mut out = Vec::new();
    let mut day = first;
    while day <= last {
        let next = day.succ_opt()?;
        out.push(Interval {
            from_ms: day_start(day)?,
            to_ms: day_start(next)?,
        });
        day = next;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-06 (a Wednesday, in a leap year) 10:30:00 UTC.
    const WEDNESDAY: &str = "2024-03-06 10:30:00";

    fn ms(text: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn day(date: &str) -> Interval {
        let from = ms(&format!("{date} 00:00:00"));
        Interval {
            from_ms: from,
            to_ms: from + 24 * HOUR_MS,
        }
    }

    fn hour(date: &str, h: u32) -> Interval {
        let from = ms(&format!("{date} {h:02}:00:00"));
        Interval {
            from_ms: from,
            to_ms: from + HOUR_MS,
        }
    }

    fn days_of(dates: &[&str]) -> Vec<Interval> {
        dates.iter().map(|d| day(d)).collect()
    }

    fn of(cycle: &str, at: &str) -> Vec<Interval> {
        Cycle::parse(cycle)
            .unwrap_or_else(|| panic!("{cycle} parses"))
            .intervals(ms(at))
            .unwrap()
    }

    #[test]
    fn hour_cycles() {
        assert_eq!(of("currentHour", WEDNESDAY), [hour("2024-03-06", 10)]);
        assert_eq!(of("last1Hour", WEDNESDAY), [hour("2024-03-06", 9)]);
        assert_eq!(
            of("last2Hours", WEDNESDAY),
            [hour("2024-03-06", 8), hour("2024-03-06", 9)]
        );
        assert_eq!(
            of("last3Hours", WEDNESDAY),
            [
                hour("2024-03-06", 7),
                hour("2024-03-06", 8),
                hour("2024-03-06", 9)
            ]
        );
        // Across midnight.
        assert_eq!(
            of("last2Hours", "2024-03-06 00:59:59"),
            [hour("2024-03-05", 22), hour("2024-03-05", 23)]
        );
    }

    #[test]
    fn last_24_hours_is_yesterday_1am_to_today_1am_hour_by_hour() {
        let got = of("last24Hours", WEDNESDAY);
        let mut want: Vec<Interval> = (1..24).map(|h| hour("2024-03-05", h)).collect();
        want.push(hour("2024-03-06", 0));
        assert_eq!(got, want);
        // The same whatever the hour of the business time.
        assert_eq!(of("last24Hours", "2024-03-06 23:59:59"), want);
    }

    #[test]
    fn day_cycles() {
        assert_eq!(of("today", WEDNESDAY), [day("2024-03-06")]);
        assert_eq!(of("last1Days", WEDNESDAY), [day("2024-03-05")]);
        assert_eq!(
            of("last2Days", WEDNESDAY),
            days_of(&["2024-03-04", "2024-03-05"])
        );
        assert_eq!(
            of("last3Days", WEDNESDAY),
            days_of(&["2024-03-03", "2024-03-04", "2024-03-05"])
        );
        // Through the leap day.
        assert_eq!(
            of("last7Days", WEDNESDAY),
            days_of(&[
                "2024-02-28",
                "2024-02-29",
                "2024-03-01",
                "2024-03-02",
                "2024-03-03",
                "2024-03-04",
                "2024-03-05"
            ])
        );
        // Midnight belongs to the day it starts.
        assert_eq!(of("today", "2024-03-06 00:00:00"), [day("2024-03-06")]);
    }

    #[test]
    fn week_cycles() {
        assert_eq!(
            of("thisWeek", WEDNESDAY),
            days_of(&["2024-03-04", "2024-03-05", "2024-03-06"])
        );
        assert_eq!(of("thisWeek", "2024-03-04 08:00:00"), [day("2024-03-04")]);
        assert_eq!(of("thisWeek", "2024-03-10 08:00:00").len(), 7);
        assert_eq!(
            of("lastWeek", WEDNESDAY),
            days_of(&[
                "2024-02-26",
                "2024-02-27",
                "2024-02-28",
                "2024-02-29",
                "2024-03-01",
                "2024-03-02",
                "2024-03-03"
            ])
        );
        for (cycle, date) in [
            ("lastMonday", "2024-02-26"),
            ("lastTuesday", "2024-02-27"),
            ("lastWednesday", "2024-02-28"),
            ("lastThursday", "2024-02-29"),
            ("lastFriday", "2024-03-01"),
            ("lastSaturday", "2024-03-02"),
            ("lastSunday", "2024-03-03"),
        ] {
            assert_eq!(of(cycle, WEDNESDAY), [day(date)], "{cycle}");
        }
        // On a Sunday, last week is still the week before the one that Sunday ends.
        assert_eq!(of("lastMonday", "2024-03-10 23:00:00"), [day("2024-02-26")]);
    }

    #[test]
    fn month_cycles() {
        let this_month = of("thisMonth", WEDNESDAY);
        assert_eq!(
            this_month,
            days_of(&[
                "2024-03-01",
                "2024-03-02",
                "2024-03-03",
                "2024-03-04",
                "2024-03-05",
                "2024-03-06"
            ])
        );
        let last_month = of("lastMonth", WEDNESDAY);
        assert_eq!(last_month.len(), 29);
        assert_eq!(last_month[0], day("2024-02-01"));
        assert_eq!(last_month[28], day("2024-02-29"));
        assert_eq!(of("lastMonthBegin", WEDNESDAY), [day("2024-02-01")]);
        assert_eq!(of("lastMonthEnd", WEDNESDAY), [day("2024-02-29")]);

        // Across the year boundary.
        let january = "2024-01-10 03:00:00";
        assert_eq!(of("lastMonth", january).len(), 31);
        assert_eq!(of("lastMonthBegin", january), [day("2023-12-01")]);
        assert_eq!(of("lastMonthEnd", january), [day("2023-12-31")]);
        assert_eq!(of("thisMonth", "2024-01-01 00:00:00"), [day("2024-01-01")]);
    }

    #[test]
    fn both_dolphinscheduler_spellings_in_any_case() {
        for (java, python) in [
            ("currentHour", "CURRENT_HOUR"),
            ("last1Hour", "LAST_ONE_HOUR"),
            ("last2Hours", "LAST_TWO_HOURS"),
            ("last3Hours", "LAST_THREE_HOURS"),
            ("last24Hours", "LAST_TWENTY_FOUR_HOURS"),
            ("today", "TODAY"),
            ("last1Days", "LAST_ONE_DAYS"),
            ("last2Days", "LAST_TWO_DAYS"),
            ("last3Days", "LAST_THREE_DAYS"),
            ("last7Days", "LAST_SEVEN_DAYS"),
            ("thisWeek", "THIS_WEEK"),
            ("lastWeek", "LAST_WEEK"),
            ("lastMonday", "LAST_MONDAY"),
            ("lastTuesday", "LAST_TUESDAY"),
            ("lastWednesday", "LAST_WEDNESDAY"),
            ("lastThursday", "LAST_THURSDAY"),
            ("lastFriday", "LAST_FRIDAY"),
            ("lastSaturday", "LAST_SATURDAY"),
            ("lastSunday", "LAST_SUNDAY"),
            ("thisMonth", "THIS_MONTH"),
            ("lastMonth", "LAST_MONTH"),
            ("lastMonthBegin", "LAST_MONTH_BEGIN"),
            ("lastMonthEnd", "LAST_MONTH_END"),
        ] {
            let cycle = Cycle::parse(java).unwrap_or_else(|| panic!("{java}"));
            assert_eq!(Cycle::parse(python), Some(cycle), "{python}");
            assert_eq!(Cycle::parse(&java.to_uppercase()), Some(cycle), "{java}");
            assert_eq!(cycle.to_string(), java);
        }
        assert_eq!(Cycle::parse("yesterday"), Some(Cycle::LastDays(1)));
        assert_eq!(Cycle::parse("last5Days"), None);
        assert_eq!(Cycle::parse(""), None);
        for cycle in ALL {
            assert_eq!(Cycle::parse(&cycle.to_string()), Some(*cycle));
        }
    }

    #[test]
    fn intervals_read_well() {
        assert_eq!(day("2024-03-05").to_string(), "2024-03-05");
        assert_eq!(
            hour("2024-03-05", 9).to_string(),
            "2024-03-05 09:00-10:00 UTC"
        );
        let odd = Interval {
            from_ms: ms("2024-03-05 09:30:00"),
            to_ms: ms("2024-03-05 10:00:00"),
        };
        assert_eq!(
            odd.to_string(),
            "[2024-03-05 09:30:00, 2024-03-05 10:00:00) UTC"
        );
    }
}
