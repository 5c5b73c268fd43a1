//! Quartz 2.3.2 cron expressions (`org.quartz.CronExpression`, which DolphinScheduler
//! schedules with): parsing into the values of each field, and the wall-clock times they
//! match, searched forwards and backwards on a naive calendar. Time zones are the caller's.
//!
//! What Quartz accepts and what it means:
//! - Six or seven whitespace-separated fields: seconds, minutes, hours, day-of-month,
//!   month, day-of-week, and optionally year. Weekdays are numbered 1 (Sunday) to 7
//!   (Saturday), months 1 to 12; names (`JAN`-`DEC`, `SUN`-`SAT`, exactly three letters),
//!   `L` and `W` may be written in either case.
//! - Items are `*`, a value, a range `a-b`, and either followed by `/step`; `*/s` (or `/s`)
//!   starts at the field's first value and `a/s` runs from `a` to the field's last value.
//!   A range whose end is below its start wraps past the field's end (`addToSet`): hours
//!   `22-2` are 22, 23, 0, 1, 2; `FRI-MON` is Friday to Monday; `NOV-FEB` November to
//!   February. A step counts on across the wrap, so hours `22-2/2` are 22, 0, 2. Days of
//!   the month wrap modulo 31 whatever the month's length.
//! - Exactly one of day-of-month and day-of-week is `?`; Quartz cannot combine them.
//! - Day-of-month: `L` (the last day), `L-n` (the last day minus n, n at most 30), `LW`
//!   (the last weekday, Monday to Friday), `L-nW` (the weekday nearest `L-n`), `nW` (the
//!   weekday nearest day n, without leaving the month: `1W` on a Saturday is Monday the
//!   3rd, and the last day on a Sunday is the Friday before). As in Quartz, `31W` in a
//!   30-day month (or `29W` in a 28-day February) can fire on the last day when that is a
//!   Friday, the 31st rolling over to a Saturday that moves back a day; whether it does
//!   depends on where the search starts (see `Cron::skipped_from`).
//! - Day-of-week: `L` alone is 7 (Saturday); `nL` is the last weekday n of the month
//!   (`6L`, `FRIL`: the last Friday); `n#k` the k-th (1 to 5) weekday n (`6#3`: the third
//!   Friday), and no fire in a month without one.
//! - `L`, `W` and `#` stand alone in their field; Quartz refuses lists with them.
//!
//! Where Quartz silently ignores text (characters after a value, a step after a name, a
//! range or list next to `W`, `L` or `#`, empty list items, fields after the seventh) or
//! reads a step of 0 as something odd, we refuse the expression instead, naming the
//! field, rather than run something other than what was written. Years run 1970 to 9999
//! (Quartz stops looking a hundred years from when it started).

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

const FIRST_YEAR: u32 = 1970;
const LAST_YEAR: u32 = 9999;

/// Quartz's bound on `L-n` ("Offset from last day must be <= 30").
const MAX_LAST_DAY_OFFSET: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Seconds,
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Seconds => "seconds",
            Field::Minutes => "minutes",
            Field::Hours => "hours",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
            Field::Year => "year",
        }
    }

    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Seconds | Field::Minutes => (0, 59),
            Field::Hours => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (1, 7),
            Field::Year => (FIRST_YEAR, LAST_YEAR),
        }
    }

    /// What a backwards range counts modulo (`max` in Quartz's `addToSet`); years do not
    /// wrap.
    fn modulus(self) -> Option<u32> {
        match self {
            Field::Seconds | Field::Minutes => Some(60),
            Field::Hours => Some(24),
            Field::DayOfMonth => Some(31),
            Field::Month => Some(12),
            Field::DayOfWeek => Some(7),
            Field::Year => None,
        }
    }

    /// The largest step Quartz takes after `*` or a single value (`checkIncrementRange`;
    /// it does not check steps after a range, nor in years).
    fn max_step(self) -> Option<u32> {
        match self {
            Field::Seconds | Field::Minutes => Some(59),
            Field::Hours => Some(23),
            Field::DayOfMonth => Some(31),
            Field::Month => Some(12),
            Field::DayOfWeek => Some(7),
            Field::Year => None,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
            Field::DayOfWeek => &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
            _ => &[],
        }
    }

    fn range_hint(self) -> &'static str {
        match self {
            Field::Month => " (or JAN-DEC)",
            Field::DayOfWeek => " (1 = SUN ... 7 = SAT)",
            _ => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    /// Bit n for day n.
    Days(u32),
    /// `L`, `L-n`, `LW`, `L-nW`.
    Last { offset: u32, weekday: bool },
    /// `nW`.
    NearestWeekday(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    /// Bit n for Quartz weekday n (1 = Sunday).
    Days(u8),
    /// `nL`.
    Last(u8),
    /// `n#k`.
    Nth(u8, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    OfMonth(DayOfMonth),
    OfWeek(DayOfWeek),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Years {
    All,
    /// Sorted.
    Only(Vec<u32>),
}

impl Years {
    fn at_or_after(&self, year: i32) -> Option<i32> {
        let year = u32::try_from(year).unwrap_or(0).max(FIRST_YEAR);
        let found = match self {
            Years::All => Some(year).filter(|y| *y <= LAST_YEAR),
            Years::Only(years) => years.get(years.partition_point(|y| *y < year)).copied(),
        };
        found.and_then(|y| i32::try_from(y).ok())
    }

    fn at_or_before(&self, year: i32) -> Option<i32> {
        let year = u32::try_from(year).ok()?.min(LAST_YEAR);
        let found = match self {
            Years::All => Some(year).filter(|y| *y >= FIRST_YEAR),
            Years::Only(years) => years
                .partition_point(|y| *y <= year)
                .checked_sub(1)
                .map(|i| years[i]),
        };
        found.and_then(|y| i32::try_from(y).ok())
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: Days,
    /// Bit n for month n.
    months: u64,
    years: Years,
}

/// Parses `expression` as Quartz does; the error names the field that is wrong.
pub(crate) fn parse(expression: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = expression.split_ascii_whitespace().collect();
    if !(6..=7).contains(&fields.len()) {
        return Err(format!(
            "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week \
             [year]), got {}",
            fields.len()
        ));
    }
    // Fields are declared in the order they are written; the year defaults to every year.
    let text = |field: Field| fields.get(field as usize).copied().unwrap_or("*");
    let in_field = |field: Field| {
        let shown = text(field);
        move |reason: String| format!("{} `{shown}`: {reason}", field.name())
    };
    let mask = |field: Field| -> Result<u64, String> {
        let values = parse_list(field, text(field)).map_err(in_field(field))?;
        Ok(values.iter().fold(0, |mask, v| mask | 1 << v))
    };
    let seconds = mask(Field::Seconds)?;
    let minutes = mask(Field::Minutes)?;
    let hours = mask(Field::Hours)?;
    let dom = parse_day_of_month(text(Field::DayOfMonth)).map_err(in_field(Field::DayOfMonth))?;
    let months = mask(Field::Month)?;
    let dow = parse_day_of_week(text(Field::DayOfWeek)).map_err(in_field(Field::DayOfWeek))?;
    let years = match text(Field::Year) {
        "*" => Years::All,
        year => Years::Only(
            parse_list(Field::Year, year)
                .map_err(in_field(Field::Year))?
                .into_iter()
                .collect(),
        ),
    };
    let days = match (dom, dow) {
        (Some(dom), None) => Days::OfMonth(dom),
        (None, Some(dow)) => Days::OfWeek(dow),
        (None, None) => {
            return Err(
                "day-of-month and day-of-week are both `?`; one of them must name the days"
                    .to_string(),
            );
        }
        (Some(_), Some(_)) => {
            return Err(format!(
                "day-of-month `{}` and day-of-week `{}` both name days; Quartz needs one of \
                 them to be `?` (e.g. `0 0 12 ? * MON` or `0 0 12 15 * ?`)",
                text(Field::DayOfMonth),
                text(Field::DayOfWeek)
            ));
        }
    };
    Ok(Cron {
        seconds,
        minutes,
        hours,
        days,
        months,
        years,
    })
}

fn parse_list(field: Field, text: &str) -> Result<BTreeSet<u32>, String> {
    if text.contains('?') {
        return Err(match field {
            Field::DayOfMonth | Field::DayOfWeek => "`?` must be the whole field".to_string(),
            _ => "`?` is only for day-of-month or day-of-week".to_string(),
        });
    }
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty item in the list".to_string());
        }
        parse_item(field, item, &mut values).map_err(|reason| {
            if item == text {
                reason
            } else {
                format!("`{item}`: {reason}")
            }
        })?;
    }
    Ok(values)
}

fn parse_item(field: Field, item: &str, values: &mut BTreeSet<u32>) -> Result<(), String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(step)?)),
        None => (item, None),
    };
    let (first, last) = field.bounds();
    let step_after_one = |step: u32| match field.max_step() {
        Some(max) if step > max => Err(format!(
            "a step of {step} is more than Quartz allows here ({max})"
        )),
        _ => Ok(step),
    };
    let (start, stop, step) = match range {
        "*" | "" => (
            first,
            last,
            step.map(step_after_one).transpose()?.unwrap_or(1),
        ),
        _ => match range.split_once('-') {
            Some((a, b)) => {
                let (a, a_name) = parse_value(field, a)?;
                let (b, b_name) = parse_value(field, b)?;
                if a_name != b_name {
                    return Err("a range takes two names or two numbers".to_string());
                }
                if a_name && step.is_some() {
                    return Err(name_step());
                }
                if b < a && field.modulus().is_none() {
                    return Err(format!("the range runs backwards ({a} to {b})"));
                }
                (a, b, step.unwrap_or(1))
            }
            None => {
                let (a, is_name) = parse_value(field, range)?;
                match step {
                    Some(_) if is_name => return Err(name_step()),
                    Some(step) => (a, last, step_after_one(step)?),
                    None => (a, a, 1),
                }
            }
        },
    };
    add_range(field, start, stop, step, values);
    Ok(())
}

fn name_step() -> String {
    "a step after a name is ignored by Quartz; write numbers instead (e.g. `2-6/2`)".to_string()
}

/// Quartz's `addToSet`: a backwards range counts on past the field's end and takes each
/// value modulo the field's size, where the one-based fields read 0 as their last value.
fn add_range(field: Field, start: u32, stop: u32, step: u32, values: &mut BTreeSet<u32>) {
    let step = usize::try_from(step).unwrap_or(usize::MAX);
    match field.modulus() {
        Some(modulus) if stop < start => {
            let one_based = field.bounds().0 == 1;
            for i in (start..=stop + modulus).step_by(step) {
                let v = i % modulus;
                values.insert(if v == 0 && one_based { modulus } else { v });
            }
        }
        _ => values.extend((start..=stop).step_by(step)),
    }
}

fn parse_step(text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("`/` must be followed by a step".to_string());
    }
    match parse_number(text)? {
        0 => Err("a step must be at least 1".to_string()),
        step => Ok(step),
    }
}

fn parse_number(text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("a value is missing".to_string());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a number"));
    }
    text.parse()
        .map_err(|_| format!("`{text}` is too large a number"))
}

/// A number or, in month and day-of-week, a three-letter name; and whether it was a name.
fn parse_value(field: Field, text: &str) -> Result<(u32, bool), String> {
    let (first, last) = field.bounds();
    if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let names = field.names();
        if names.is_empty() {
            return Err(format!("`{text}` is not a number"));
        }
        let index = names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("`{text}` is not one of {}", names.join(" ")))?;
        let value = u32::try_from(index).map_or(last, |i| i + 1);
        return Ok((value, true));
    }
    let value = parse_number(text)?;
    if !(first..=last).contains(&value) {
        return Err(format!(
            "{value} is outside {first}-{last}{}",
            field.range_hint()
        ));
    }
    Ok((value, false))
}

fn parse_day_of_month(text: &str) -> Result<Option<DayOfMonth>, String> {
    if text == "?" {
        return Ok(None);
    }
    if !text.contains(['L', 'l', 'W', 'w']) {
        let days = parse_list(Field::DayOfMonth, text)?;
        return Ok(Some(DayOfMonth::Days(
            days.iter().fold(0, |mask, d| mask | 1 << d),
        )));
    }
    if text.contains(',') {
        return Err(if text.contains(['L', 'l']) {
            "`L` cannot be listed with other days (Quartz refuses it)".to_string()
        } else {
            "`W` takes a single day (e.g. `15W`), not a list (Quartz would use only the first)"
                .to_string()
        });
    }
    if let Some(rest) = text.strip_prefix(['L', 'l']) {
        let (rest, weekday) = match rest.strip_suffix(['W', 'w']) {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let offset = match rest.strip_prefix('-') {
            None if rest.is_empty() => 0,
            Some(n) => parse_number(n)?,
            None => return Err(day_of_month_forms()),
        };
        if offset > MAX_LAST_DAY_OFFSET {
            return Err(format!(
                "the offset from the last day must be at most {MAX_LAST_DAY_OFFSET}, got {offset}"
            ));
        }
        return Ok(Some(DayOfMonth::Last { offset, weekday }));
    }
    if let Some(day) = text.strip_suffix(['W', 'w']) {
        if day.is_empty() {
            return Err("`W` needs a day before it (e.g. `15W`)".to_string());
        }
        if day.contains(['-', '/', '*', 'L', 'l', 'W', 'w']) {
            return Err("`W` takes a single day (e.g. `15W`), not a range or a step".to_string());
        }
        let (day, _) = parse_value(Field::DayOfMonth, day)?;
        return Ok(Some(DayOfMonth::NearestWeekday(day)));
    }
    Err(day_of_month_forms())
}

fn day_of_month_forms() -> String {
    "`L` and `W` go as `L`, `L-3`, `LW`, `L-3W` or `15W`".to_string()
}

fn parse_day_of_week(text: &str) -> Result<Option<DayOfWeek>, String> {
    if text == "?" {
        return Ok(None);
    }
    let single = |day: &str| -> Result<u8, String> {
        if day.contains(['-', '/', '*', ',']) {
            return Err(
                "`L` and `#` take a single weekday (e.g. `6L`, `FRI#3`), not a range or a step"
                    .to_string(),
            );
        }
        let (day, _) = parse_value(Field::DayOfWeek, day)?;
        Ok(u8::try_from(day).unwrap_or(u8::MAX))
    };
    if !text.contains(['L', 'l', '#']) {
        let days = parse_list(Field::DayOfWeek, text)?;
        return Ok(Some(DayOfWeek::Days(
            days.iter().fold(0, |mask, d| mask | 1 << d),
        )));
    }
    if text.contains(',') {
        return Err(if text.contains(['L', 'l']) {
            "`L` cannot be listed with other days (Quartz refuses it)".to_string()
        } else {
            "`#` takes a single weekday, not a list (Quartz would apply it to the lowest \
             weekday listed)"
                .to_string()
        });
    }
    if text.eq_ignore_ascii_case("L") {
        // Quartz: "If used in the day-of-week field by itself, it simply means 7 or SAT".
        return Ok(Some(DayOfWeek::Days(1 << 7)));
    }
    if let Some((day, nth)) = text.split_once('#') {
        let day = single(day)?;
        let nth = parse_number(nth)
            .ok()
            .and_then(|n| u8::try_from(n).ok())
            .filter(|n| (1..=5).contains(n))
            .ok_or("`#` must be followed by 1 to 5 (the week of the month)")?;
        return Ok(Some(DayOfWeek::Nth(day, nth)));
    }
    if let Some(day) = text.strip_suffix(['L', 'l']) {
        return Ok(Some(DayOfWeek::Last(single(day)?)));
    }
    Err("`L` goes after a weekday (`6L`, `FRIL`: the last Friday) or alone (`L`: Saturday)".into())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt())
        .map_or(28, |last| last.day())
}

/// The first set bit at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    let above = mask.checked_shr(from)?.checked_shl(from)?;
    (above != 0).then(|| above.trailing_zeros())
}

/// The last set bit at or below `upto`.
fn prev_bit(mask: u64, upto: u32) -> Option<u32> {
    let below = match upto {
        63.. => mask,
        _ => mask & ((1u64 << (upto + 1)) - 1),
    };
    (below != 0).then(|| 63 - below.leading_zeros())
}

impl Cron {
    /// Bit d for each day d of the month that fires. Each month is decided on its own,
    /// which is what Quartz's `getTimeAfter` comes to: a day it computes outside the month
    /// (a `W` day past the end, an `L-n` before the start) moves its calendar into another
    /// month, where the rule is computed afresh. The exceptions: [`Self::skipped_from`],
    /// and `L-nW` for a day before the 1st, on which Quartz 2.3.2 can loop forever; here
    /// the month fires only if the weekday rule brings the day back into it.
    fn day_mask(&self, year: i32, month: u32) -> u64 {
        let Some(first) = NaiveDate::from_ymd_opt(year, month, 1) else {
            return 0;
        };
        let last = days_in_month(year, month);
        // 0 = Sunday, as `Calendar.DAY_OF_WEEK - 1`.
        let first_weekday = first.weekday().num_days_from_sunday();
        let weekday_of = |day: i64| (i64::from(first_weekday) + day - 1).rem_euclid(7);
        let month_days = ((1u64 << (last + 1)) - 1) & !1;
        match &self.days {
            Days::OfMonth(DayOfMonth::Days(days)) => u64::from(*days) & month_days,
            Days::OfMonth(DayOfMonth::Last { offset, weekday }) => {
                let day = i64::from(last) - i64::from(*offset);
                if *weekday {
                    nearest_weekday(day, weekday_of(day), last)
                } else if day >= 1 {
                    1 << day
                } else {
                    0
                }
            }
            Days::OfMonth(DayOfMonth::NearestWeekday(day)) => {
                let day = i64::from(*day);
                nearest_weekday(day, weekday_of(day), last)
            }
            Days::OfWeek(DayOfWeek::Days(weekdays)) => (1..=i64::from(last))
                .filter(|d| weekdays & (1 << (weekday_of(*d) + 1)) != 0)
                .fold(0, |mask, d| mask | 1 << d),
            Days::OfWeek(DayOfWeek::Last(weekday)) => {
                let back = (weekday_of(i64::from(last)) - i64::from(*weekday - 1)).rem_euclid(7);
                1 << (i64::from(last) - back)
            }
            Days::OfWeek(DayOfWeek::Nth(weekday, nth)) => {
                let first_one = 1 + (i64::from(*weekday - 1) - weekday_of(1)).rem_euclid(7);
                let day = first_one + 7 * i64::from(nth - 1);
                if day <= i64::from(last) { 1 << day } else { 0 }
            }
        }
    }

    fn first_time(&self) -> NaiveTime {
        let at = |mask: u64| next_bit(mask, 0).unwrap_or(0);
        NaiveTime::from_hms_opt(at(self.hours), at(self.minutes), at(self.seconds))
            .unwrap_or(NaiveTime::MIN)
    }

    fn last_time(&self) -> NaiveTime {
        let at = |mask: u64| prev_bit(mask, 63).unwrap_or(0);
        NaiveTime::from_hms_opt(at(self.hours), at(self.minutes), at(self.seconds))
            .unwrap_or(NaiveTime::MIN)
    }

    fn time_at_or_after(&self, t: NaiveTime) -> Option<NaiveTime> {
        let (h, m, s) = (t.hour(), t.minute(), t.second());
        let first = |mask: u64| next_bit(mask, 0);
        let hms = |h, m, s| NaiveTime::from_hms_opt(h, m, s);
        if self.hours & (1 << h) != 0 {
            if self.minutes & (1 << m) != 0
                && let Some(s) = next_bit(self.seconds, s)
            {
                return hms(h, m, s);
            }
            if let Some(m) = next_bit(self.minutes, m + 1) {
                return hms(h, m, first(self.seconds)?);
            }
        }
        let h = next_bit(self.hours, h + 1)?;
        hms(h, first(self.minutes)?, first(self.seconds)?)
    }

    fn time_at_or_before(&self, t: NaiveTime) -> Option<NaiveTime> {
        let (h, m, s) = (t.hour(), t.minute(), t.second());
        let last = |mask: u64| prev_bit(mask, 63);
        let hms = |h, m, s| NaiveTime::from_hms_opt(h, m, s);
        if self.hours & (1 << h) != 0 {
            if self.minutes & (1 << m) != 0
                && let Some(s) = prev_bit(self.seconds, s)
            {
                return hms(h, m, s);
            }
            if let Some(m) = m.checked_sub(1).and_then(|m| prev_bit(self.minutes, m)) {
                return hms(h, m, last(self.seconds)?);
            }
        }
        let h = h.checked_sub(1).and_then(|h| prev_bit(self.hours, h))?;
        hms(h, last(self.minutes)?, last(self.seconds)?)
    }

    /// The one way Quartz's answer depends on where its search starts: `nW` for a day one
    /// past the end of a month M (`31W` in a 30-day month, `29W` in a 28-day February)
    /// fires on M's last day when that is a Friday, but only if `getTimeAfter` looks at M
    /// at all. Searching from the month before, once that month's own `nW` day has passed,
    /// it moves on with "day n of the next month", which rolls over past M into the month
    /// after. The month skipped that way for a search from `from`, if any.
    fn skipped_from(&self, from: NaiveDateTime) -> Option<(i32, u32)> {
        let Days::OfMonth(DayOfMonth::NearestWeekday(n)) = self.days else {
            return None;
        };
        let (year, month) = (from.year(), from.month());
        let next = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        if n <= days_in_month(next.0, next.1) {
            return None;
        }
        // The day the search reaches before it applies the day rule: later today if a fire
        // time is left, else tomorrow (which may already be in the next month).
        let day = from.day() + u32::from(self.time_at_or_after(from.time()).is_none());
        if day > days_in_month(year, month) {
            return None;
        }
        let passed = next_bit(self.day_mask(year, month), 0).is_some_and(|w| w < day);
        passed.then_some(next)
    }

    /// Whether month (`year`, `month`) is one [`Self::skipped_from`] passes over when the
    /// search starts from the previous month's fire, as it does for a schedule running
    /// from fire to fire. (Quartz has no backwards search; this is what the forward one
    /// does in that steady state.)
    fn skipped_in_sequence(&self, year: i32, month: u32) -> bool {
        let Days::OfMonth(DayOfMonth::NearestWeekday(n)) = self.days else {
            return false;
        };
        if n <= days_in_month(year, month) {
            return false;
        }
        let (py, pm) = if month == 1 {
            (year - 1, 12)
        } else {
            (year, month - 1)
        };
        let last = days_in_month(py, pm);
        self.months & (1 << pm) != 0
            && prev_bit(self.day_mask(py, pm), 31).is_some_and(|w| w < last)
    }

    /// The first wall-clock time at or after `from` that the expression matches.
    pub(crate) fn next_from(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let (mut year, mut month, mut day) = (from.year(), from.month(), from.day());
        let mut floor = Some(from.time());
        let skipped = self.skipped_from(from);
        loop {
            let matching_year = self.years.at_or_after(year)?;
            if matching_year != year {
                (year, month, day, floor) = (matching_year, 1, 1, None);
            }
            match next_bit(self.months, month) {
                Some(m) if m == month => {}
                Some(m) => (month, day, floor) = (m, 1, None),
                None => {
                    (year, month, day, floor) = (year + 1, 1, 1, None);
                    continue;
                }
            }
            let mask = if skipped == Some((year, month)) {
                0
            } else {
                self.day_mask(year, month)
            };
            let Some(d) = next_bit(mask, day) else {
                (month, day, floor) = (month + 1, 1, None);
                continue;
            };
            if d != day {
                (day, floor) = (d, None);
            }
            let time = match floor {
                None => Some(self.first_time()),
                Some(t) => self.time_at_or_after(t),
            };
            match time {
                Some(t) => return NaiveDate::from_ymd_opt(year, month, day).map(|d| d.and_time(t)),
                None => (day, floor) = (day + 1, None),
            }
        }
    }

    /// The last wall-clock time at or before `from` that the expression matches.
    pub(crate) fn prev_from(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let (mut year, mut month, mut day) = (from.year(), from.month(), from.day());
        let mut ceiling = Some(from.time());
        loop {
            let matching_year = self.years.at_or_before(year)?;
            if matching_year != year {
                (year, month, day, ceiling) = (matching_year, 12, 31, None);
            }
            match prev_bit(self.months, month) {
                Some(m) if m == month => {}
                Some(m) if m > 0 => (month, day, ceiling) = (m, 31, None),
                _ => {
                    (year, month, day, ceiling) = (year - 1, 12, 31, None);
                    continue;
                }
            }
            let mask = if self.skipped_in_sequence(year, month) {
                0
            } else {
                self.day_mask(year, month)
            };
            let Some(d) = prev_bit(mask, day).filter(|d| *d > 0) else {
                (month, day, ceiling) = (month - 1, 31, None);
                continue;
            };
            if d != day {
                (day, ceiling) = (d, None);
            }
            let time = match ceiling {
                None => Some(self.last_time()),
                Some(t) => self.time_at_or_before(t),
            };
            match time {
                Some(t) => return NaiveDate::from_ymd_opt(year, month, day).map(|d| d.and_time(t)),
                None => (day, ceiling) = (day - 1, None),
            }
        }
    }
}

/// Quartz's nearest-weekday rule for day `day` (which may lie outside the month; its
/// weekday is that of the date it would roll over to), 0 = Sunday ... 6 = Saturday:
/// a Saturday moves to Friday, or to Monday the 3rd if it is the 1st; a Sunday moves to
/// Monday, or to Friday if it is the last day. A result outside the month does not fire.
fn nearest_weekday(day: i64, weekday: i64, last: u32) -> u64 {
    let last = i64::from(last);
    let moved = match weekday {
        6 if day == 1 => day + 2,
        6 => day - 1,
        0 if day == last => day - 2,
        0 => day + 1,
        _ => day,
    };
    if (1..=last).contains(&moved) {
        1 << moved
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(expr: &str, year: i32, month: u32) -> Vec<u32> {
        let cron = parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mask = cron.day_mask(year, month);
        (1..=31).filter(|d| mask & (1 << d) != 0).collect()
    }

    fn values(field: Field, text: &str) -> Vec<u32> {
        parse_list(field, text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .into_iter()
            .collect()
    }

    #[test]
    fn wrapping_ranges_follow_add_to_set() {
        assert_eq!(values(Field::Hours, "22-2"), [0, 1, 2, 22, 23]);
        assert_eq!(values(Field::Hours, "22-2/2"), [0, 2, 22]);
        assert_eq!(values(Field::Hours, "23-1/3"), [23]);
        assert_eq!(values(Field::Seconds, "50-10/5"), [0, 5, 10, 50, 55]);
        assert_eq!(values(Field::Minutes, "58-2"), [0, 1, 2, 58, 59]);
        assert_eq!(values(Field::DayOfWeek, "FRI-MON"), [1, 2, 6, 7]);
        assert_eq!(values(Field::DayOfWeek, "7-3/2"), [2, 7]);
        assert_eq!(values(Field::Month, "NOV-FEB"), [1, 2, 11, 12]);
        assert_eq!(values(Field::Month, "11-4/2"), [1, 3, 11]);
        // Days wrap modulo 31 whatever the month's length.
        assert_eq!(values(Field::DayOfMonth, "30-2"), [1, 2, 30, 31]);
        assert_eq!(values(Field::DayOfMonth, "28-3/2"), [1, 3, 28, 30]);
    }

    #[test]
    fn steps_and_lists() {
        assert_eq!(values(Field::DayOfMonth, "1/5"), [1, 6, 11, 16, 21, 26, 31]);
        assert_eq!(values(Field::Seconds, "*/15"), [0, 15, 30, 45]);
        assert_eq!(values(Field::Seconds, "/20"), [0, 20, 40]);
        assert_eq!(values(Field::Month, "*/4"), [1, 5, 9]);
        assert_eq!(values(Field::DayOfWeek, "*/3"), [1, 4, 7]);
        assert_eq!(values(Field::Minutes, "5/20,1"), [1, 5, 25, 45]);
        // A step after a range is not bounded by Quartz.
        assert_eq!(values(Field::Minutes, "0-59/60"), [0]);
        assert_eq!(
            values(Field::Year, "2024/400"),
            [
                2024, 2424, 2824, 3224, 3624, 4024, 4424, 4824, 5224, 5624, 6024, 6424, 6824, 7224,
                7624, 8024, 8424, 8824, 9224, 9624
            ]
        );
    }

    #[test]
    fn day_rules_decide_each_month() {
        // March 2024 starts on a Friday and ends on a Sunday.
        assert_eq!(days("0 0 0 L * ?", 2024, 3), [31]);
        assert_eq!(days("0 0 0 L-3 * ?", 2024, 3), [28]);
        assert_eq!(days("0 0 0 LW * ?", 2024, 3), [29]);
        assert_eq!(days("0 0 0 L-1W * ?", 2024, 3), [29]);
        assert_eq!(days("0 0 0 1W * ?", 2024, 3), [1]);
        assert_eq!(days("0 0 0 31W * ?", 2024, 3), [29]);
        assert_eq!(days("0 0 0 ? * 6L", 2024, 3), [29]);
        assert_eq!(days("0 0 0 ? * 1L", 2024, 3), [31]);
        assert_eq!(days("0 0 0 ? * 6#1", 2024, 3), [1]);
        assert_eq!(days("0 0 0 ? * 6#5", 2024, 3), [29]);
        assert_eq!(days("0 0 0 ? * 5#5", 2024, 3), [] as [u32; 0]);
        assert_eq!(days("0 0 0 ? * L", 2024, 3), [2, 9, 16, 23, 30]);
        // June 2024 starts on a Saturday and ends on a Sunday.
        assert_eq!(days("0 0 0 1W * ?", 2024, 6), [3]);
        assert_eq!(days("0 0 0 LW * ?", 2024, 6), [28]);
        assert_eq!(days("0 0 0 15W * ?", 2024, 6), [14]);
        assert_eq!(days("0 0 0 16W * ?", 2024, 6), [17]);
        // `L-n` before the start of the month never fires in it.
        assert_eq!(days("0 0 0 L-30 * ?", 2024, 2), [] as [u32; 0]);
        assert_eq!(days("0 0 0 L-30 * ?", 2024, 3), [1]);
        assert_eq!(days("0 0 0 L-28 * ?", 2024, 2), [1]);
        // `31W` in a 30-day month: Quartz rolls the 31st into the next month; when that
        // day is a Saturday it steps back to the 30th. October 2022 starts on a Saturday.
        assert_eq!(days("0 0 0 31W * ?", 2022, 9), [30]);
        assert_eq!(days("0 0 0 31W * ?", 2024, 4), [] as [u32; 0]);
        assert_eq!(days("0 0 0 30 * ?", 2024, 2), [] as [u32; 0]);
    }

    #[test]
    fn searches_in_both_directions() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let cron = parse("0 0/30 9-10 ? * MON-FRI").unwrap();
        // Friday 2024-03-08 10:30 is the last of the week.
        assert_eq!(
            cron.next_from(at("2024-03-08 10:30:00")),
            Some(at("2024-03-08 10:30:00"))
        );
        assert_eq!(
            cron.next_from(at("2024-03-08 10:30:01")),
            Some(at("2024-03-11 09:00:00"))
        );
        assert_eq!(
            cron.prev_from(at("2024-03-11 08:59:59")),
            Some(at("2024-03-08 10:30:00"))
        );
        assert_eq!(
            cron.prev_from(at("2024-03-11 09:00:00")),
            Some(at("2024-03-11 09:00:00"))
        );
        assert_eq!(
            cron.prev_from(at("2024-03-11 09:29:59")),
            Some(at("2024-03-11 09:00:00"))
        );
        let yearly = parse("0 0 0 1 1 ? 1971,2030").unwrap();
        assert_eq!(
            yearly.next_from(at("1971-01-01 00:00:01")),
            Some(at("2030-01-01 00:00:00"))
        );
        assert_eq!(
            yearly.prev_from(at("2029-12-31 23:59:59")),
            Some(at("1971-01-01 00:00:00"))
        );
        assert_eq!(yearly.prev_from(at("1970-12-31 00:00:00")), None);
        assert_eq!(yearly.next_from(at("2030-01-01 00:00:01")), None);
        let every = parse("* * * * * ?").unwrap();
        assert_eq!(
            every.next_from(at("9999-12-31 23:59:59")),
            Some(at("9999-12-31 23:59:59"))
        );
        assert_eq!(
            every.next_from(at("9999-12-31 23:59:59") + chrono::TimeDelta::seconds(1)),
            None
        );
        assert_eq!(
            every.prev_from(at("1970-01-01 00:00:00")),
            Some(at("1970-01-01 00:00:00"))
        );
        assert_eq!(every.prev_from(at("1969-12-31 23:59:59")), None);
    }

    #[test]
    fn bit_helpers() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(u64::MAX, 64), None);
        assert_eq!(prev_bit(0b1010, 2), Some(1));
        assert_eq!(prev_bit(0b1010, 0), None);
        assert_eq!(prev_bit(1 << 63, 63), Some(63));
    }
}
