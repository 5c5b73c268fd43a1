//! `$[...]` time expressions: a date pattern, optionally shifted by a day-fraction offset
//! (`yyyyMMdd-1`, `HHmmss+1/24`), one of DolphinScheduler's date functions, or
//! `timestamp(...)` of either.
//!
//! The functions, as DolphinScheduler's `TimePlaceholderUtils` defines them (`N` may be an
//! arithmetic expression and negative):
//! - `add_months(format, N)`: N calendar months on, the day clamped to the month's length.
//! - `this_day(format)`, `last_day(format)`: the base date and the day before it.
//! - `month_first_day(format, N)`, `month_last_day(format, N)`: the first and last day of the
//!   month N months from the base date's.
//! - `week_first_day(format, N)`, `week_last_day(format, N)`: the Monday and the Sunday of
//!   the week N weeks from the base date's.
//! - `month_begin(format, N)`, `month_end(format, N)`: the first and last day of the base
//!   date's month, then N *days* on.
//! - `week_begin(format, N)`, `week_end(format, N)`: the Monday and the Sunday of the base
//!   date's week, then N *days* on.
//! - `year_week(format[, start])`: the week-based year and week number.
//! - `timestamp(expr)`: `expr` (a pattern with an optional offset, or any function above
//!   except `year_week`) is printed, read back as `yyyyMMddHHmmss` and given as Unix
//!   seconds, so its format must print exactly those fourteen digits
//!   (`timestamp(yyyyMMdd'000000')` is the base day's midnight).
//!
//! Weeks run Monday to Sunday, so a Sunday belongs to the week that began six days before
//! it (Java's `Calendar` with `setFirstDayOfWeek(MONDAY)`, as DolphinScheduler's
//! `DateUtils.getMonday`/`getSunday` use).
//!
//! Everything is computed from the base time the caller passes (a run's schedule time) as a
//! naive local time, so results do not depend on the machine's time zone. Functions move the
//! date and keep the base time of day, which only shows if the pattern prints `HH`/`mm`/`ss`.
//! The one place a zone matters is `timestamp`: DolphinScheduler reads the digits back in
//! the JVM's default zone, while Shoal has only the naive time and reads them as UTC. The
//! numbers agree with a DolphinScheduler server running in UTC; elsewhere they differ by
//! the server's offset.

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, TimeDelta, Weekday};

use crate::arith;
use crate::error::{ParamError, shorten};
use crate::pattern::{Field, Pattern, Token, render_year};

const SECONDS_PER_DAY: i128 = 86_400;

const FUNCTIONS: &str = "add_months, this_day, last_day, month_first_day, month_last_day, \
                         week_first_day, week_last_day, month_begin, month_end, week_begin, \
                         week_end, year_week, timestamp";

/// The text DolphinScheduler reads a `timestamp(...)` back with (`PARAMETER_FORMAT_TIME`).
const TIMESTAMP_DIGITS: usize = 14;

/// How deeply parentheses may nest in one expression (`add_months(yyyyMM, -(12*(1+1)))` is
/// three levels). Real expressions use two or three; the limit keeps a hostile one from
/// exhausting the stack of the thread that dispatches the task.
pub const MAX_EXPRESSION_DEPTH: usize = crate::arith::MAX_DEPTH;

const OUT_OF_RANGE: &str = "result is outside the supported date range";

/// Evaluates one time expression (the text between `$[` and `]`) against `base`.
///
/// ```
/// # use chrono::NaiveDate;
/// let base = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap().and_hms_opt(0, 30, 0).unwrap();
/// assert_eq!(shoal_params::eval_time_expr("yyyyMMdd-1", base).unwrap(), "20240229");
/// assert_eq!(shoal_params::eval_time_expr("HH:mm-1/24", base).unwrap(), "23:30");
/// assert_eq!(shoal_params::eval_time_expr("add_months(yyyy-MM, -12*1)", base).unwrap(), "2023-03");
/// assert_eq!(shoal_params::eval_time_expr("month_end(yyyyMMdd, -1)", base).unwrap(), "20240330");
/// assert_eq!(shoal_params::eval_time_expr("timestamp(yyyyMMddHHmmss)", base).unwrap(), "1709253000");
/// ```
pub fn eval_time_expr(expr: &str, base: NaiveDateTime) -> Result<String, ParamError> {
    check_depth(expr)?;
    evaluate(expr, base).map_err(|reason| ParamError::BadExpression {
        expr: expr.to_string(),
        reason,
    })
}

fn evaluate(expr: &str, base: NaiveDateTime) -> Result<String, String> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("empty expression".to_string());
    }
    check_parentheses(expr)?;
    match split_call(expr)? {
        Some(("year_week", args)) => year_week(&args, base.date()),
        Some(("timestamp", args)) => timestamp(&args, base),
        _ => {
            let (pattern, when) = dated(expr, base)?;
            Ok(pattern.render(when))
        }
    }
}

/// Whether DolphinScheduler takes the text between `$[` and `]` for a time expression.
/// Its `ParameterUtils.dateTemplateParse` matches `\$\[([^\$\]]+)]` and then skips a match
/// for which `Pattern.matches("^[0-9]", body)` holds; `matches` is anchored at both ends,
/// so only a body of exactly one ASCII digit is skipped: `$[1]` stays, while `$[10]` is
/// the pattern `10` (printing `10`) and `$[0-9]` the pattern `0` shifted nine days back
/// (printing `0`). An empty body or one holding a `$` is not matched at all. Shell
/// arithmetic such as `$[1]` or `$[$i+1]` therefore reaches the script untouched.
pub(crate) fn is_time_expression(body: &str) -> bool {
    let one_digit = body.len() == 1 && body.as_bytes()[0].is_ascii_digit();
    !(body.is_empty() || body.contains('$') || one_digit)
}

/// The date and pattern of an expression that prints one date: a pattern with an optional
/// offset, or any function but `year_week` and `timestamp` (DolphinScheduler's
/// `calcTimeExpression`, which `timestamp` also uses for its argument).
fn dated(expr: &str, base: NaiveDateTime) -> Result<(Pattern, NaiveDateTime), String> {
    match split_call(expr)? {
        Some((name @ ("year_week" | "timestamp"), _)) => Err(format!(
            "`{name}(...)` cannot be used inside another function; `timestamp` takes a \
             pattern or a date function, e.g. timestamp(yyyyMMddHHmmss-1)"
        )),
        Some((name, args)) => call(name, &args, base),
        None => {
            let (format, when) = apply_offset(expr, base)?;
            Ok((Pattern::parse(format)?, when))
        }
    }
}

/// `timestamp(expr)`: DolphinScheduler formats `expr`, parses the text with
/// `yyyyMMddHHmmss` and prints `Date.getTime() / 1000`. Its parser
/// (`LocalDateTime.parse`) accepts nothing but those fourteen digits, so neither do we.
fn timestamp(args: &[&str], base: NaiveDateTime) -> Result<String, String> {
    let [inner] = args else {
        return Err(format!(
            "`timestamp` takes one argument (a time expression such as yyyyMMddHHmmss), got {}",
            args.len()
        ));
    };
    if inner.is_empty() {
        return Err(
            "`timestamp` needs a time expression, e.g. timestamp(yyyyMMddHHmmss)".to_string(),
        );
    }
    let (pattern, when) = dated(inner, base)?;
    let text = pattern.render(when);
    let read = read_timestamp_digits(&text).ok_or_else(|| {
        format!(
            "`timestamp` reads its expression back as yyyyMMddHHmmss, but `{}` prints \
             `{}`; use a format that prints exactly those 14 digits, e.g. \
             yyyyMMddHHmmss or yyyyMMdd'000000'",
            shorten(inner),
            shorten(&text)
        )
    })?;
    Ok(read.and_utc().timestamp().to_string())
}

fn read_timestamp_digits(text: &str) -> Option<NaiveDateTime> {
    if text.len() != TIMESTAMP_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text[range].parse::<u32>().ok();
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?)?.and_hms_opt(
        num(8..10)?,
        num(10..12)?,
        num(12..14)?,
    )
}

/// Refuses an expression whose parentheses nest deeper than [`MAX_EXPRESSION_DEPTH`],
/// without evaluating it (so it can be checked when a definition is uploaded).
pub fn check_depth(expr: &str) -> Result<(), ParamError> {
    let mut depth = 0usize;
    for (_, c) in unquoted(expr) {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => continue,
        }
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(ParamError::ExpressionTooDeep {
                expr: expr.to_string(),
                limit: MAX_EXPRESSION_DEPTH,
            });
        }
    }
    Ok(())
}

/// Iterates the characters of `s` that are outside `'quoted'` pattern text, with their byte
/// offsets, so that quoted literals can contain `(`, `,`, `+` and `-` freely.
fn unquoted(s: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut in_quote = false;
    s.char_indices().filter(move |&(_, c)| {
        if c == '\'' {
            in_quote = !in_quote;
            return false;
        }
        !in_quote
    })
}

fn check_parentheses(expr: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for (_, c) in unquoted(expr) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or("unbalanced parentheses: `)` without `(`")?;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("unbalanced parentheses: missing `)`".to_string());
    }
    Ok(())
}

/// Recognises `name(args)`. An identifier directly followed by `(` is always taken as a call
/// so that a misspelt function is reported rather than printed as a pattern.
fn split_call(expr: &str) -> Result<Option<(&str, Vec<&str>)>, String> {
    let ident_len = expr
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(expr.len(), |(i, _)| i);
    if ident_len == 0 {
        return Ok(None);
    }
    let (name, rest) = expr.split_at(ident_len);
    let Some(inner_and_tail) = rest.strip_prefix('(') else {
        return Ok(None);
    };
    // Parentheses are balanced (checked before), so a matching `)` exists.
    let mut depth = 1usize;
    let mut close = None;
    for (i, c) in unquoted(inner_and_tail) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close.ok_or("unbalanced parentheses: missing `)`")?;
    let tail = inner_and_tail[close + 1..].trim();
    if !tail.is_empty() {
        return Err(format!("unexpected `{tail}` after `{name}(...)`"));
    }
    let inner = &inner_and_tail[..close];
    let mut args = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, c) in unquoted(inner) {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                args.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    args.push(inner[start..].trim());
    Ok(Some((name, args)))
}

/// Splits `pattern±offset` and applies the offset. The offset starts at the first unquoted
/// `+` or `-` that is followed by a digit or `(`, so dashes inside a pattern such as
/// `yyyy-MM-dd` are not mistaken for one. The offset is in days and may be a fraction:
/// `+1/24` is an hour, `-1/24/60` a minute.
fn apply_offset(expr: &str, base: NaiveDateTime) -> Result<(&str, NaiveDateTime), String> {
    let start = unquoted(expr).find(|&(i, c)| {
        (c == '+' || c == '-')
            && expr[i + 1..]
                .trim_start()
                .starts_with(|n: char| n.is_ascii_digit() || n == '(')
    });
    let Some((at, _)) = start else {
        return Ok((expr, base));
    };
    let format = expr[..at].trim_end();
    let offset = expr[at..].trim();
    if format.is_empty() {
        return Err(format!("empty format before the offset `{offset}`"));
    }
    let days = arith::eval(offset).map_err(|reason| {
        format!(
            "bad offset `{offset}`: {reason} (offsets are days, e.g. `-1`, `+7*2`, `-1/24`; \
             quote literal text in the format, e.g. 'Z+08')"
        )
    })?;
    let seconds = days
        .scaled_integer(SECONDS_PER_DAY)
        .ok_or_else(|| format!("offset `{offset}` is not a whole number of seconds"))?;
    let when = i64::try_from(seconds)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .and_then(|delta| base.checked_add_signed(delta))
        .ok_or(OUT_OF_RANGE)?;
    Ok((format, when))
}

fn call(
    name: &str,
    args: &[&str],
    base: NaiveDateTime,
) -> Result<(Pattern, NaiveDateTime), String> {
    let format_only = |args: &[&str]| -> Result<Pattern, String> {
        match args {
            [format] => Pattern::parse(format),
            _ => Err(format!(
                "`{name}` takes one argument (a format), got {}",
                args.len()
            )),
        }
    };
    let format_and_n = |args: &[&str]| -> Result<(Pattern, i64), String> {
        match args {
            [format, n] => Ok((Pattern::parse(format)?, integer_arg(name, n)?)),
            _ => Err(format!(
                "`{name}` takes two arguments (a format and a number), got {}",
                args.len()
            )),
        }
    };
    let time = base.time();
    let date = base.date();
    let (pattern, when) = match name {
        "add_months" => {
            let (pattern, n) = format_and_n(args)?;
            (pattern, add_months(base, n)?)
        }
        "this_day" => (format_only(args)?, base),
        "last_day" => {
            let when = base.checked_sub_signed(TimeDelta::days(1));
            (format_only(args)?, when.ok_or(OUT_OF_RANGE)?)
        }
        "month_first_day" => {
            let (pattern, n) = format_and_n(args)?;
            (pattern, month_first_day(date, n)?.and_time(time))
        }
        "month_last_day" => {
            let (pattern, n) = format_and_n(args)?;
            let next_first = month_first_day(date, n.checked_add(1).ok_or(OUT_OF_RANGE)?)?;
            let last = next_first.pred_opt().ok_or(OUT_OF_RANGE)?;
            (pattern, last.and_time(time))
        }
        "week_first_day" | "week_last_day" => {
            let (pattern, n) = format_and_n(args)?;
            // Weeks run Monday to Sunday, so a Sunday belongs to the week that began six
            // days before it.
            let to_monday = i64::from(date.weekday().num_days_from_monday());
            let extra = if name == "week_last_day" { 6 } else { 0 };
            let when = n
                .checked_mul(7)
                .and_then(|d| d.checked_add(extra - to_monday))
                .and_then(TimeDelta::try_days)
                .and_then(|delta| base.checked_add_signed(delta))
                .ok_or(OUT_OF_RANGE)?;
            (pattern, when)
        }
        "month_begin" => {
            let (pattern, n) = format_and_n(args)?;
            let first = date.with_day(1).ok_or(OUT_OF_RANGE)?;
            (pattern, add_days(first.and_time(time), n)?)
        }
        "month_end" => {
            let (pattern, n) = format_and_n(args)?;
            let last = month_first_day(date, 1)?.pred_opt().ok_or(OUT_OF_RANGE)?;
            (pattern, add_days(last.and_time(time), n)?)
        }
        "week_begin" | "week_end" => {
            let (pattern, n) = format_and_n(args)?;
            let to_monday = i64::from(date.weekday().num_days_from_monday());
            let extra = if name == "week_end" { 6 } else { 0 };
            let when = n
                .checked_add(extra - to_monday)
                .ok_or(OUT_OF_RANGE.to_string())
                .and_then(|days| add_days(base, days))?;
            (pattern, when)
        }
        _ => {
            return Err(format!(
                "unknown function `{name}` (known: {FUNCTIONS}; quote literal parentheses in \
                 a format, e.g. '('HH')')"
            ));
        }
    };
    Ok((pattern, when))
}

fn add_days(when: NaiveDateTime, days: i64) -> Result<NaiveDateTime, String> {
    TimeDelta::try_days(days)
        .and_then(|delta| when.checked_add_signed(delta))
        .ok_or_else(|| OUT_OF_RANGE.to_string())
}

fn integer_arg(function: &str, arg: &str) -> Result<i64, String> {
    let value =
        arith::eval(arg).map_err(|reason| format!("`{function}`: bad number `{arg}`: {reason}"))?;
    let n = value
        .as_integer()
        .ok_or_else(|| format!("`{function}`: `{arg}` is not a whole number"))?;
    i64::try_from(n).map_err(|_| OUT_OF_RANGE.to_string())
}

/// Calendar months; the day is clamped to the target month's length (Mar 31 - 1 month is
/// the last day of February), as Java's `DateUtils.addMonths` does.
fn add_months(base: NaiveDateTime, n: i64) -> Result<NaiveDateTime, String> {
    let months = month_count(n)?;
    let shifted = if n >= 0 {
        base.checked_add_months(months)
    } else {
        base.checked_sub_months(months)
    };
    Ok(shifted.ok_or(OUT_OF_RANGE)?)
}

/// The first day of the month `n` months from `date`'s month.
fn month_first_day(date: NaiveDate, n: i64) -> Result<NaiveDate, String> {
    let first = date.with_day(1).ok_or(OUT_OF_RANGE)?;
    let months = month_count(n)?;
    let shifted = if n >= 0 {
        first.checked_add_months(months)
    } else {
        first.checked_sub_months(months)
    };
    Ok(shifted.ok_or(OUT_OF_RANGE)?)
}

fn month_count(n: i64) -> Result<Months, String> {
    u32::try_from(n.unsigned_abs())
        .map(Months::new)
        .map_err(|_| OUT_OF_RANGE.to_string())
}

/// `year_week(format[, start])`: the week-based year and week number of the base date.
///
/// Weeks start on `start` (1 = Monday ... 7 = Sunday, default Monday) and week 1 is the first
/// week with at least four days in the new year, so the Monday default is exactly ISO 8601.
/// The result is the format's year field (as the week-based year), the literal text that
/// follows it in the format, and the two-digit week: `yyyy-MM-dd` gives `2024-09`,
/// `yyyyMMdd` gives `202409`, `yyyy/MM/dd` gives `2024/09`. The rest of the format is
/// ignored.
fn year_week(args: &[&str], date: NaiveDate) -> Result<String, String> {
    let (format, start) = match args {
        [format] => (*format, Weekday::Mon),
        [format, start] => {
            let n = integer_arg("year_week", start)?;
            let weekday = u8::try_from(n)
                .ok()
                .filter(|n| (1..=7).contains(n))
                .and_then(|n| Weekday::try_from(n - 1).ok())
                .ok_or_else(|| {
                    format!(
                        "`year_week`: the week start must be 1 (Monday) to 7 (Sunday), \
                         got `{start}`"
                    )
                })?;
            (*format, weekday)
        }
        _ => {
            return Err(format!(
                "`year_week` takes a format and an optional week start, got {} arguments",
                args.len()
            ));
        }
    };
    let pattern = Pattern::parse(format)?;
    let tokens = pattern.tokens();
    let (year_at, letters) = tokens
        .iter()
        .enumerate()
        .find_map(|(i, t)| match t {
            Token::Field(Field::Year, n) => Some((i, *n)),
            _ => None,
        })
        .ok_or_else(|| {
            format!("`year_week` needs a format with a year field, e.g. yyyy-MM-dd; got `{format}`")
        })?;
    let separator = match tokens.get(year_at + 1) {
        Some(Token::Literal(s)) => s.as_str(),
        _ => "",
    };
    let (year, week) = week_of_year(date, start).ok_or(OUT_OF_RANGE)?;
    Ok(format!(
        "{}{separator}{week:02}",
        render_year(year, letters)
    ))
}

/// The (week-based year, week) of `date` for weeks starting on `start`, where week 1 is the
/// first week with at least four days in its year (Java's `minimalDaysInFirstWeek = 4`).
fn week_of_year(date: NaiveDate, start: Weekday) -> Option<(i32, i64)> {
    let year = date.year();
    let this = week_one(year, start)?;
    if date < this {
        let prev = week_one(year.checked_sub(1)?, start)?;
        return Some((year - 1, (date - prev).num_days() / 7 + 1));
    }
    let next = week_one(year.checked_add(1)?, start)?;
    if date >= next {
        return Some((year + 1, 1));
    }
    Some((year, (date - this).num_days() / 7 + 1))
}

fn week_one(year: i32, start: Weekday) -> Option<NaiveDate> {
    let jan1 = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let into_week = (jan1.weekday().num_days_from_monday() + 7 - start.num_days_from_monday()) % 7;
    let week_start = jan1.checked_sub_signed(TimeDelta::days(i64::from(into_week)))?;
    if 7 - into_week >= 4 {
        Some(week_start)
    } else {
        week_start.checked_add_signed(TimeDelta::days(7))
    }
}

#[cfg(test)]
mod tests;
