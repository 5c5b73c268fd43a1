//! Time expressions and date functions on concrete dates, and their errors.

use super::*;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|date| date.and_hms_opt(h, mi, s))
        .expect("valid test date")
}

fn check(base: NaiveDateTime, cases: &[(&str, &str)]) {
    for &(expr, want) in cases {
        assert_eq!(
            eval_time_expr(expr, base).as_deref(),
            Ok(want),
            "$[{expr}] at {base}"
        );
    }
}

#[test]
fn plain_formats() {
    // 2024-03-10 is a Sunday.
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[
            ("yyyyMMdd", "20240310"),
            ("yyyy-MM-dd HH:mm:ss", "2024-03-10 14:30:45"),
            ("HHmmss", "143045"),
            ("yyyy-MM-dd", "2024-03-10"),
            ("yyyy/MM/dd", "2024/03/10"),
            ("yyyyMMddHHmmss", "20240310143045"),
            ("yyMM", "2403"),
            ("  yyyyMMdd  ", "20240310"),
            ("yyyy-MM-dd'T'HH:mm:ss", "2024-03-10T14:30:45"),
            // A quoted sign is text, not an offset.
            ("yyyyMMdd'-1'", "20240310-1"),
            // Literal parentheses that do not follow a name are pattern text.
            ("yyyy (MM)", "2024 (03)"),
            ("'('HH')'", "(14)"),
            ("yyyyMMdd'Z+08'", "20240310Z+08"),
        ],
    );
}

#[test]
fn day_offsets() {
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[
            ("yyyyMMdd+1", "20240311"),
            ("yyyyMMdd-1", "20240309"),
            ("yyyyMMdd+7*1", "20240317"),
            ("yyyyMMdd-7*2", "20240225"),
            ("yyyyMMdd-10", "20240229"),
            ("yyyyMMdd+0", "20240310"),
            ("yyyy-MM-dd-1", "2024-03-09"),
            ("yyyy-MM-dd+1", "2024-03-11"),
            ("yyyyMMdd - 1", "20240309"),
            ("yyyyMMdd+(1+1)", "20240312"),
            ("yyyyMMdd-1-1", "20240308"),
            ("yyyyMMdd+366", "20250311"),
        ],
    );
}

#[test]
fn hour_and_minute_offsets_are_day_fractions() {
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[
            ("HHmmss+1/24", "153045"),
            ("HHmmss-3/24", "113045"),
            ("HHmmss+1/24/60", "143145"),
            ("HHmmss-30/24/60", "140045"),
            ("HH:mm:ss+1/24/60/60", "14:30:46"),
            ("yyyy-MM-dd HH:mm:ss+10/24", "2024-03-11 00:30:45"),
            ("yyyy-MM-dd HH:mm:ss-15/24", "2024-03-09 23:30:45"),
            ("yyyy-MM-dd'T'HH:mm:ss-1/24", "2024-03-10T13:30:45"),
        ],
    );
}

#[test]
fn year_boundaries() {
    // 2024-01-01 is a Monday.
    check(
        at(2024, 1, 1, 0, 15, 0),
        &[
            ("yyyyMMdd-1", "20231231"),
            ("yyyy-MM-dd HH:mm-1/24", "2023-12-31 23:15"),
            ("last_day(yyyy-MM-dd)", "2023-12-31"),
            ("add_months(yyyyMM,-1)", "202312"),
            ("month_first_day(yyyy-MM-dd,-1)", "2023-12-01"),
            ("month_last_day(yyyy-MM-dd,-1)", "2023-12-31"),
            ("week_first_day(yyyy-MM-dd,0)", "2024-01-01"),
            ("week_last_day(yyyy-MM-dd,0)", "2024-01-07"),
            ("week_first_day(yyyy-MM-dd,-1)", "2023-12-25"),
            ("year_week(yyyy-MM-dd)", "2024-01"),
        ],
    );
    // 2024-12-31 is a Tuesday in ISO week 1 of 2025.
    check(
        at(2024, 12, 31, 23, 50, 0),
        &[
            ("yyyyMMdd+1", "20250101"),
            ("HH:mm+1/24", "00:50"),
            ("yyyy-MM-dd HH:mm+1/24", "2025-01-01 00:50"),
            ("year_week(yyyy-MM-dd)", "2025-01"),
            ("year_week(yyyyMMdd)", "202501"),
            ("month_first_day(yyyy-MM-dd,1)", "2025-01-01"),
            ("month_last_day(yyyy-MM-dd,1)", "2025-01-31"),
            ("month_last_day(yyyy-MM-dd,0)", "2024-12-31"),
            ("week_last_day(yyyy-MM-dd,0)", "2025-01-05"),
        ],
    );
}

#[test]
fn add_months_clamps_the_day() {
    check(
        at(2024, 3, 31, 8, 0, 0),
        &[
            ("add_months(yyyy-MM-dd,-1)", "2024-02-29"),
            ("add_months(yyyy-MM-dd,-13)", "2023-02-28"),
            ("add_months(yyyy-MM-dd,1)", "2024-04-30"),
            ("add_months(yyyy-MM-dd,12*1)", "2025-03-31"),
            ("add_months(yyyy-MM-dd,-12*2)", "2022-03-31"),
            ("add_months(yyyy-MM-dd HH:mm,0)", "2024-03-31 08:00"),
            ("add_months( yyyyMMdd , -1 )", "20240229"),
        ],
    );
}

#[test]
fn leap_day_base() {
    // 2024-02-29 is a Thursday.
    check(
        at(2024, 2, 29, 12, 0, 0),
        &[
            ("add_months(yyyy-MM-dd,12)", "2025-02-28"),
            ("add_months(yyyy-MM-dd,-12*4)", "2020-02-29"),
            ("yyyyMMdd+1", "20240301"),
            ("yyyyMMdd-365", "20230301"),
            ("this_day(yyyy-MM-dd)", "2024-02-29"),
            ("last_day(yyyyMMdd)", "20240228"),
            ("month_first_day(yyyy-MM-dd,0)", "2024-02-01"),
            ("month_first_day(yyyyMMdd,-2)", "20231201"),
            ("month_last_day(yyyy-MM-dd,0)", "2024-02-29"),
            ("month_last_day(yyyy-MM-dd,12)", "2025-02-28"),
            ("month_last_day(yyyy-MM-dd,-1)", "2024-01-31"),
            ("week_first_day(yyyy-MM-dd,0)", "2024-02-26"),
            ("week_last_day(yyyy-MM-dd,0)", "2024-03-03"),
            ("this_day(yyyy-MM-dd HH:mm)", "2024-02-29 12:00"),
        ],
    );
}

#[test]
fn week_functions_on_a_sunday_and_a_monday() {
    // Sunday: the last day of the Monday-based week that started on 03-04.
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[
            ("week_first_day(yyyy-MM-dd,0)", "2024-03-04"),
            ("week_last_day(yyyy-MM-dd,0)", "2024-03-10"),
            ("week_first_day(yyyy-MM-dd,-1)", "2024-02-26"),
            ("week_last_day(yyyy-MM-dd,-1)", "2024-03-03"),
            ("week_first_day(yyyy-MM-dd,1)", "2024-03-11"),
            ("week_last_day(yyyy-MM-dd,1)", "2024-03-17"),
            ("year_week(yyyy-MM-dd)", "2024-10"),
            ("year_week(yyyy-MM-dd,7)", "2024-11"),
        ],
    );
    // Monday: the first day of its own week.
    check(
        at(2024, 3, 11, 9, 0, 0),
        &[
            ("week_first_day(yyyy-MM-dd,0)", "2024-03-11"),
            ("week_last_day(yyyy-MM-dd,0)", "2024-03-17"),
            ("week_first_day(yyyy-MM-dd,-2)", "2024-02-26"),
            ("week_last_day(yyyy-MM-dd,-1)", "2024-03-10"),
            ("year_week(yyyy-MM-dd)", "2024-11"),
            ("year_week(yyyy-MM-dd,7)", "2024-11"),
            ("year_week(yyyy-MM-dd,2)", "2024-10"),
        ],
    );
}

#[test]
fn month_begin_and_month_end_shift_by_days() {
    // 2024-03-10 is a Sunday in a leap year.
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[
            ("month_begin(yyyy-MM-dd,0)", "2024-03-01"),
            ("month_begin(yyyy-MM-dd,5)", "2024-03-06"),
            ("month_begin(yyyy-MM-dd,-1)", "2024-02-29"),
            ("month_begin(yyyy-MM-dd,-29)", "2024-02-01"),
            ("month_begin(yyyy-MM-dd,31)", "2024-04-01"),
            ("month_begin(yyyy-MM-dd HH:mm:ss,0)", "2024-03-01 14:30:45"),
            ("month_begin(yyyyMMdd,-7*2)", "20240216"),
            ("month_end(yyyy-MM-dd,0)", "2024-03-31"),
            ("month_end(yyyy-MM-dd,1)", "2024-04-01"),
            ("month_end(yyyy-MM-dd,-1)", "2024-03-30"),
            ("month_end(yyyy-MM-dd,-31)", "2024-02-29"),
            ("month_end(yyyy-MM-dd HH:mm,0)", "2024-03-31 14:30"),
        ],
    );
    // February's end in a leap year and in a common one; a base on the last day.
    check(
        at(2024, 2, 10, 0, 0, 0),
        &[("month_end(yyyyMMdd,0)", "20240229")],
    );
    check(
        at(2023, 2, 15, 0, 0, 0),
        &[
            ("month_end(yyyyMMdd,0)", "20230228"),
            ("month_end(yyyyMMdd,1)", "20230301"),
        ],
    );
    check(
        at(2024, 1, 31, 8, 0, 0),
        &[
            ("month_end(yyyy-MM-dd,0)", "2024-01-31"),
            ("month_begin(yyyy-MM-dd,0)", "2024-01-01"),
        ],
    );
    // Across the year in both directions.
    check(
        at(2024, 1, 1, 0, 15, 0),
        &[
            ("month_begin(yyyyMMdd,-1)", "20231231"),
            ("month_end(yyyyMMdd,-31)", "20231231"),
        ],
    );
    check(
        at(2024, 12, 31, 23, 50, 0),
        &[
            ("month_begin(yyyyMMdd,0)", "20241201"),
            ("month_end(yyyyMMdd,1)", "20250101"),
            ("month_end(yyyy-MM-dd HH:mm,1)", "2025-01-01 23:50"),
        ],
    );
}

#[test]
fn week_begin_and_week_end_shift_by_days() {
    // A Sunday ends the Monday-based week that began on 03-04.
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[
            ("week_begin(yyyy-MM-dd,0)", "2024-03-04"),
            ("week_begin(yyyy-MM-dd,1)", "2024-03-05"),
            ("week_begin(yyyy-MM-dd,-1)", "2024-03-03"),
            ("week_begin(yyyy-MM-dd,7)", "2024-03-11"),
            ("week_begin(yyyy-MM-dd HH:mm:ss,0)", "2024-03-04 14:30:45"),
            ("week_end(yyyy-MM-dd,0)", "2024-03-10"),
            ("week_end(yyyy-MM-dd,1)", "2024-03-11"),
            ("week_end(yyyy-MM-dd,-7)", "2024-03-03"),
            ("week_end(yyyy-MM-dd,-6)", "2024-03-04"),
        ],
    );
    // A Monday starts its own week.
    check(
        at(2024, 3, 11, 9, 0, 0),
        &[
            ("week_begin(yyyy-MM-dd,0)", "2024-03-11"),
            ("week_end(yyyy-MM-dd,0)", "2024-03-17"),
        ],
    );
    // A Wednesday; the week crosses into March (2024-02-29 is a Thursday).
    check(
        at(2024, 2, 28, 12, 0, 0),
        &[
            ("week_begin(yyyyMMdd,0)", "20240226"),
            ("week_end(yyyyMMdd,0)", "20240303"),
            ("week_end(yyyyMMdd,-2)", "20240301"),
        ],
    );
    // Weeks across the year: 2024-01-01 is a Monday, 2024-12-31 a Tuesday, and
    // 2023-01-01 a Sunday.
    check(
        at(2024, 1, 1, 0, 15, 0),
        &[
            ("week_begin(yyyyMMdd,0)", "20240101"),
            ("week_begin(yyyyMMdd,-1)", "20231231"),
            ("week_end(yyyyMMdd,0)", "20240107"),
            ("week_end(yyyyMMdd,-7)", "20231231"),
        ],
    );
    check(
        at(2024, 12, 31, 23, 50, 0),
        &[
            ("week_begin(yyyy-MM-dd,0)", "2024-12-30"),
            ("week_end(yyyy-MM-dd,0)", "2025-01-05"),
        ],
    );
    check(
        at(2023, 1, 1, 6, 0, 0),
        &[
            ("week_begin(yyyy-MM-dd,0)", "2022-12-26"),
            ("week_end(yyyy-MM-dd,0)", "2023-01-01"),
            ("week_end(yyyy-MM-dd,1)", "2023-01-02"),
        ],
    );
}

#[test]
fn timestamp_reads_the_printed_digits_back_as_utc() {
    // 2024-03-10T14:30:45Z is 1710081045.
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[
            ("timestamp(yyyyMMddHHmmss)", "1710081045"),
            (" timestamp( yyyyMMddHHmmss ) ", "1710081045"),
            ("timestamp(yyyyMMddHHmmss-1)", "1709994645"),
            ("timestamp(yyyyMMddHHmmss+1/24)", "1710084645"),
            ("timestamp(add_months(yyyyMMddHHmmss,-1))", "1707575445"),
            ("timestamp(this_day(yyyyMMddHHmmss))", "1710081045"),
            ("timestamp(last_day(yyyyMMddHHmmss))", "1709994645"),
            (
                "timestamp(month_first_day(yyyyMMdd'000000',0))",
                "1709251200",
            ),
            ("timestamp(month_begin(yyyyMMdd'000000',0))", "1709251200"),
            ("timestamp(week_begin(yyyyMMddHHmmss,6))", "1710081045"),
            // Fields the format does not print are read back as the digits it does.
            ("timestamp(yyyyMMdd'000000')", "1710028800"),
            ("timestamp(yyyyMMdd00mmss)", "1710030645"),
        ],
    );
    check(
        at(1970, 1, 1, 0, 0, 0),
        &[("timestamp(yyyyMMddHHmmss)", "0")],
    );
    check(
        at(2024, 12, 31, 23, 59, 59),
        &[
            ("timestamp(yyyyMMddHHmmss)", "1735689599"),
            ("timestamp(yyyyMMddHHmmss+1/24/60/60)", "1735689600"),
        ],
    );
    check(
        at(1969, 12, 31, 23, 59, 59),
        &[("timestamp(yyyyMMddHHmmss)", "-1")],
    );
}

#[test]
fn timestamp_refuses_what_dolphinscheduler_cannot_read_back() {
    let base = at(2024, 3, 10, 14, 30, 45);
    let long_timestamp = format!("timestamp({})", "d".repeat(5000));
    let cases = [
        ("timestamp(yyyyMMdd)", "prints `20240310`"),
        ("timestamp(yyyy-MM-dd HH:mm:ss)", "exactly those 14 digits"),
        ("timestamp(yyyyMMddHHmmss'0')", "prints `202403101430450`"),
        ("timestamp(ddMMyyyyHHmmss)", "prints `10032024143045`"),
        (
            "timestamp(year_week(yyyy-MM-dd))",
            "`year_week(...)` cannot be used inside",
        ),
        (
            "timestamp(timestamp(yyyyMMddHHmmss))",
            "`timestamp(...)` cannot be used inside",
        ),
        ("timestamp()", "needs a time expression"),
        ("timestamp(yyyyMMddHHmmss,1)", "takes one argument"),
        // A long print is quoted by its start only.
        (
            &long_timestamp,
            "prints `000000000000000000000000000000000000000000000000000000000000...`",
        ),
        ("timestamp(nope(yyyyMMddHHmmss))", "unknown function `nope`"),
        ("timestamp(yyyyMMddHHmmss+1x)", "bad offset `+1x`"),
    ];
    for (expr, want) in cases {
        match eval_time_expr(expr, base) {
            Err(ParamError::BadExpression { reason, .. }) => {
                assert!(reason.contains(want), "$[{expr}]: {reason}");
            }
            other => panic!("$[{expr}]: expected BadExpression, got {other:?}"),
        }
    }
}

#[test]
fn what_dolphinscheduler_takes_for_a_time_expression() {
    for body in ["1", "0", "9", "", "$i+1", "$[1", "yyyy$"] {
        assert!(!is_time_expression(body), "{body:?}");
    }
    // `Pattern.matches("^[0-9]", ..)` must match the whole body: longer bodies starting
    // with a digit are evaluated, and so is a non-ASCII digit.
    for body in ["10", "0-9", "1+2", " 1", "yyyyMMdd", "\u{0661}"] {
        assert!(is_time_expression(body), "{body:?}");
    }
    // They print as patterns made of digits do (`0-9` is `0`, nine days back).
    check(
        at(2024, 3, 10, 14, 30, 45),
        &[("10", "10"), ("0-9", "0"), ("1+2", "1")],
    );
}

#[test]
fn dolphinscheduler_documented_examples() {
    // 2022-08-26 is a Friday.
    check(
        at(2022, 8, 26, 0, 0, 0),
        &[
            ("this_day(yyyy-MM-dd)", "2022-08-26"),
            ("last_day(yyyy-MM-dd)", "2022-08-25"),
            ("year_week(yyyy-MM-dd)", "2022-34"),
            ("year_week(yyyy-MM-dd,5)", "2022-35"),
            ("month_first_day(yyyy-MM-dd,-1)", "2022-07-01"),
            ("week_first_day(yyyy-MM-dd,-1)", "2022-08-15"),
            ("week_last_day(yyyy-MM-dd,-1)", "2022-08-21"),
        ],
    );
    check(
        at(2022, 8, 28, 0, 0, 0),
        &[("month_last_day(yyyy-MM-dd,-1)", "2022-07-31")],
    );
}

#[test]
fn year_week_at_iso_year_edges() {
    // 2021-01-03 (Sunday) is in week 53 of ISO year 2020.
    check(
        at(2021, 1, 3, 0, 0, 0),
        &[
            ("year_week(yyyy-MM-dd)", "2020-53"),
            ("year_week(yy-MM-dd)", "20-53"),
            ("year_week(yyyy/MM/dd)", "2020/53"),
            // Weeks starting Sunday: 2021-01-03 opens week 1 of 2021.
            ("year_week(yyyyMMdd,7)", "202101"),
        ],
    );
    // 2027-01-01 (Friday) is in week 53 of ISO year 2026.
    check(
        at(2027, 1, 1, 0, 0, 0),
        &[("year_week(yyyyMMdd)", "202653")],
    );
}

#[test]
fn nesting_is_limited_before_evaluation() {
    let base = at(2024, 3, 10, 14, 30, 45);
    let deep = |n: usize| format!("add_months(yyyyMM,{}1{})", "(".repeat(n), ")".repeat(n));
    // The outer call is one level, so the argument may nest one less than the limit.
    assert_eq!(
        eval_time_expr(&deep(MAX_EXPRESSION_DEPTH - 1), base).as_deref(),
        Ok("202404")
    );
    let err = eval_time_expr(&deep(MAX_EXPRESSION_DEPTH), base).unwrap_err();
    assert!(matches!(
        &err,
        ParamError::ExpressionTooDeep { limit, .. } if *limit == MAX_EXPRESSION_DEPTH
    ));
    let hostile = format!("yyyyMMdd+{}1", "(".repeat(100_000));
    let err = eval_time_expr(&hostile, base).unwrap_err();
    assert!(matches!(err, ParamError::ExpressionTooDeep { .. }), "{err}");
    // The message quotes the start of the expression, not all 100000 bytes of it.
    let message = err.to_string();
    assert!(
        message.starts_with("time expression `$[yyyyMMdd+((("),
        "{message}"
    );
    assert!(
        message.ends_with("nests parentheses deeper than 64 levels"),
        "{message}"
    );
    assert!(message.len() < 200, "{message}");
    // Quoted parentheses are text, not nesting.
    let quoted = format!("yyyy'{}'", "(".repeat(200));
    assert_eq!(
        eval_time_expr(&quoted, base),
        Ok(format!("2024{}", "(".repeat(200)))
    );
}

#[test]
fn long_pattern_letter_runs_pad_without_panicking() {
    // Rust's formatter refuses widths above 65535 at run time; a long run of letters
    // must not reach it.
    let base = at(2024, 3, 10, 14, 30, 45);
    let days = "d".repeat(70_000);
    let out = eval_time_expr(&days, base).expect("pads");
    assert_eq!(out.len(), 70_000);
    assert!(out.ends_with("10") && out.starts_with("000"));
    let years = "y".repeat(70_001);
    let out = eval_time_expr(&years, base).expect("pads");
    assert_eq!(out.len(), 70_001);
    assert!(out.ends_with("2024"));
}

#[test]
fn malformed_expressions_name_the_reason() {
    let base = at(2024, 3, 10, 14, 30, 45);
    let cases = [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("foo(yyyy)", "unknown function `foo`"),
        ("add_month(yyyyMMdd,1)", "unknown function `add_month`"),
        ("add_months(yyyyMMdd)", "takes two arguments"),
        ("month_begin(yyyyMMdd)", "takes two arguments"),
        ("month_end(yyyyMMdd,1,2)", "takes two arguments"),
        ("week_begin(yyyyMMdd,x)", "bad number `x`"),
        ("week_end(yyyyMMdd,1/2)", "not a whole number"),
        ("week_end(,1)", "empty format"),
        (
            "month_begin(yyyyMMdd,99999999999)",
            "outside the supported date range",
        ),
        (
            "week_begin(yyyyMMdd,-99999999999)",
            "outside the supported date range",
        ),
        ("month_beginn(yyyyMMdd,1)", "known: add_months"),
        ("add_months(yyyyMMdd,1,2)", "takes two arguments"),
        ("add_months(yyyyMMdd,x)", "bad number `x`"),
        ("add_months(yyyyMMdd,)", "bad number ``"),
        ("add_months(yyyyMMdd,1/2)", "not a whole number"),
        ("add_months(,1)", "empty format"),
        ("add_months(yyyyMMdd,1", "missing `)`"),
        ("yyyyMMdd)", "`)` without `(`"),
        (
            "add_months(yyyyMMdd,1)x",
            "unexpected `x` after `add_months(...)`",
        ),
        ("yyyyMMdd+1.5", "bad offset `+1.5`"),
        ("yyyyMMdd+1x", "bad offset `+1x`"),
        ("yyyyMMdd+1/7", "not a whole number of seconds"),
        ("yyyyMMdd+1/0", "division by zero"),
        ("-1", "empty format before the offset"),
        ("YYYYMMDD", "week-year"),
        ("this_day(yyyy,MM)", "takes one argument"),
        ("this_day()", "empty format"),
        ("year_week(yyyy-MM-dd,8)", "1 (Monday) to 7 (Sunday)"),
        ("year_week(yyyy-MM-dd,0)", "1 (Monday) to 7 (Sunday)"),
        ("year_week(MM-dd)", "needs a format with a year field"),
        ("year_week(yyyy,1,2)", "optional week start"),
        ("yyyyMMdd+99999999999", "outside the supported date range"),
        (
            "add_months(yyyyMMdd,99999999999)",
            "outside the supported date range",
        ),
    ];
    for (expr, want) in cases {
        match eval_time_expr(expr, base) {
            Err(ParamError::BadExpression { expr: got, reason }) => {
                assert_eq!(got, expr);
                assert!(reason.contains(want), "$[{expr}]: {reason}");
            }
            other => panic!("$[{expr}]: expected BadExpression, got {other:?}"),
        }
    }
}
