//! Next-fire times against Quartz's documented examples, time zones, windows and bad input.

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
    for expr in [
        "0 0 0 31 2 ?",
        "0 0 0 30 2 ?",
        "0 0 0 L-30 2 ?",
        "0 0 0 31 4,6,9,11 ?",
        "0 0 0 ? 2 2#5 2017-2020",
        // 2100 is not a leap year.
        "0 0 0 29 2 ? 2100",
    ] {
        let started = std::time::Instant::now();
        let err = CronSchedule::new(expr, "America/Santiago").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cron expression `{expr}`: no date matches it, so it would never fire")
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
    // Rare but real dates pass: a fifth Tuesday in February (2000, 2028), one fire in a
    // far year, a year that is already over (it simply has no next fire).
    for expr in ["0 0 0 ? 2 3#5", "0 0 0 1 1 ? 4999", "0 0 0 1 1 ? 1971"] {
        assert!(CronSchedule::new(expr, "UTC").is_ok(), "{expr}");
    }
    assert_eq!(
        next("0 0 0 ? 2 3#5", "UTC", "2001-01-01T00:00:00Z"),
        "2028-02-29T00:00:00+00:00"
    );
    let past = CronSchedule::new("0 0 0 1 1 ? 1971", "UTC").unwrap();
    assert_eq!(past.next_after(utc("2024-01-01T00:00:00Z")), None);
    // Quartz reads a lone `L` (any case) as the weekday 7: Saturdays, not never.
    assert_eq!(
        next("0 0 0 ? * L", "America/Santiago", "2024-03-01T12:00:00Z"),
        "2024-03-02T00:00:00-03:00"
    );
    assert_eq!(
        next("8 20/9 2 ? * l", "UTC", "2024-03-02T02:47:09Z"),
        "2024-03-02T02:56:08+00:00"
    );
    assert_eq!(
        next("8 20/9 2 ? * l", "UTC", "2024-03-02T02:56:08Z"),
        "2024-03-09T02:20:08+00:00"
    );
}

/// Fires after `after`, one after another, in `zone`'s local time.
fn fires(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    let s = CronSchedule::new(expr, zone).unwrap_or_else(|e| panic!("{e}"));
    let tz: Tz = zone.parse().unwrap();
    let mut at = utc(after);
    (0..n)
        .map(|_| {
            at = s.next_after(at).expect("a next fire");
            at.with_timezone(&tz)
                .format("%Y-%m-%d %a %H:%M:%S")
                .to_string()
        })
        .collect()
}

#[test]
fn the_quartz_cron_trigger_tutorial_examples() {
    let cases: &[(&str, &str, &[&str])] = &[
        // Noon every day.
        (
            "0 0 12 * * ?",
            "2024-03-01T12:00:00Z",
            &["2024-03-02 Sat 12:00:00", "2024-03-03 Sun 12:00:00"],
        ),
        // 10:15 every day, in its four spellings.
        (
            "0 15 10 ? * *",
            "2024-03-01T10:15:00Z",
            &["2024-03-02 Sat 10:15:00"],
        ),
        (
            "0 15 10 * * ?",
            "2024-03-01T10:14:59Z",
            &["2024-03-01 Fri 10:15:00"],
        ),
        (
            "0 15 10 * * ? *",
            "2024-03-01T10:15:00Z",
            &["2024-03-02 Sat 10:15:00"],
        ),
        (
            "0 15 10 * * ? 2005",
            "2005-12-30T11:00:00Z",
            &["2005-12-31 Sat 10:15:00"],
        ),
        // Every minute from 14:00 to 14:59.
        (
            "0 * 14 * * ?",
            "2024-03-01T14:58:30Z",
            &["2024-03-01 Fri 14:59:00", "2024-03-02 Sat 14:00:00"],
        ),
        // Every 5 minutes from 14:00 to 14:55.
        (
            "0 0/5 14 * * ?",
            "2024-03-01T14:50:00Z",
            &["2024-03-01 Fri 14:55:00", "2024-03-02 Sat 14:00:00"],
        ),
        // Every 5 minutes from 14:00 to 14:55 and from 18:00 to 18:55.
        (
            "0 0/5 14,18 * * ?",
            "2024-03-01T14:55:00Z",
            &["2024-03-01 Fri 18:00:00", "2024-03-01 Fri 18:05:00"],
        ),
        (
            "0 0/5 14,18 * * ?",
            "2024-03-01T18:55:00Z",
            &["2024-03-02 Sat 14:00:00"],
        ),
        // Every minute from 14:00 to 14:05.
        (
            "0 0-5 14 * * ?",
            "2024-03-01T14:04:00Z",
            &["2024-03-01 Fri 14:05:00", "2024-03-02 Sat 14:00:00"],
        ),
        // 14:10 and 14:44 every Wednesday in March.
        (
            "0 10,44 14 ? 3 WED",
            "2024-02-01T00:00:00Z",
            &[
                "2024-03-06 Wed 14:10:00",
                "2024-03-06 Wed 14:44:00",
                "2024-03-13 Wed 14:10:00",
            ],
        ),
        (
            "0 10,44 14 ? 3 WED",
            "2024-03-27T14:44:00Z",
            &["2025-03-05 Wed 14:10:00"],
        ),
        // 10:15 Monday to Friday.
        (
            "0 15 10 ? * MON-FRI",
            "2024-03-08T10:15:00Z",
            &["2024-03-11 Mon 10:15:00", "2024-03-12 Tue 10:15:00"],
        ),
        // 10:15 on the 15th.
        (
            "0 15 10 15 * ?",
            "2024-02-15T10:15:00Z",
            &["2024-03-15 Fri 10:15:00"],
        ),
        // 10:15 on the last day of the month.
        (
            "0 15 10 L * ?",
            "2024-02-10T00:00:00Z",
            &[
                "2024-02-29 Thu 10:15:00",
                "2024-03-31 Sun 10:15:00",
                "2024-04-30 Tue 10:15:00",
            ],
        ),
        // 10:15 two days before the last day (Quartz: "the 2nd-to-last last day").
        (
            "0 15 10 L-2 * ?",
            "2023-02-01T00:00:00Z",
            &[
                "2023-02-26 Sun 10:15:00",
                "2023-03-29 Wed 10:15:00",
                "2023-04-28 Fri 10:15:00",
            ],
        ),
        // 10:15 on the last Friday of the month.
        (
            "0 15 10 ? * 6L",
            "2024-03-01T00:00:00Z",
            &["2024-03-29 Fri 10:15:00", "2024-04-26 Fri 10:15:00"],
        ),
        // ... during 2002 to 2005.
        (
            "0 15 10 ? * 6L 2002-2005",
            "2005-11-26T00:00:00Z",
            &["2005-12-30 Fri 10:15:00"],
        ),
        // 10:15 on the third Friday of the month.
        (
            "0 15 10 ? * 6#3",
            "2024-03-01T00:00:00Z",
            &["2024-03-15 Fri 10:15:00", "2024-04-19 Fri 10:15:00"],
        ),
        // Noon every 5 days from the first of the month.
        (
            "0 0 12 1/5 * ?",
            "2024-03-26T12:00:00Z",
            &[
                "2024-03-31 Sun 12:00:00",
                "2024-04-01 Mon 12:00:00",
                "2024-04-06 Sat 12:00:00",
            ],
        ),
        // 11:11 every 11 November.
        (
            "0 11 11 11 11 ?",
            "2024-03-01T00:00:00Z",
            &["2024-11-11 Mon 11:11:00", "2025-11-11 Tue 11:11:00"],
        ),
    ];
    for (expr, after, want) in cases {
        assert_eq!(
            fires(expr, "UTC", after, want.len()),
            *want,
            "{expr} after {after}"
        );
    }
    let done = CronSchedule::new("0 15 10 ? * 6L 2002-2005", "UTC").unwrap();
    assert_eq!(done.next_after(utc("2005-12-30T10:15:00Z")), None);
}

#[test]
fn last_and_nearest_weekdays_of_the_month() {
    let cases: &[(&str, &str, &[&str])] = &[
        // The last weekday: March 2024 ends on a Sunday, August on a Saturday, February
        // on a Thursday.
        (
            "0 0 12 LW * ?",
            "2024-02-01T00:00:00Z",
            &[
                "2024-02-29 Thu 12:00:00",
                "2024-03-29 Fri 12:00:00",
                "2024-04-30 Tue 12:00:00",
            ],
        ),
        (
            "0 0 12 LW * ?",
            "2024-08-01T00:00:00Z",
            &["2024-08-30 Fri 12:00:00", "2024-09-30 Mon 12:00:00"],
        ),
        // The weekday nearest three days before the last: 2024-09-27 is a Friday,
        // 2024-11-27 a Wednesday, 2024-08-28 a Wednesday; 2024-06-27 a Thursday.
        (
            "0 0 12 L-3W * ?",
            "2024-06-01T00:00:00Z",
            &[
                "2024-06-27 Thu 12:00:00",
                "2024-07-29 Mon 12:00:00",
                "2024-08-28 Wed 12:00:00",
            ],
        ),
        // `L-n` counts back from each month's own last day.
        (
            "0 0 12 L-3 * ?",
            "2024-01-31T00:00:00Z",
            &["2024-02-26 Mon 12:00:00", "2024-03-28 Thu 12:00:00"],
        ),
        // The weekday nearest the 1st never leaves the month: June 2024 starts on a
        // Saturday, September 2024 on a Sunday.
        (
            "0 0 9 1W * ?",
            "2024-05-02T00:00:00Z",
            &["2024-06-03 Mon 09:00:00", "2024-07-01 Mon 09:00:00"],
        ),
        (
            "0 0 9 1W * ?",
            "2024-08-02T00:00:00Z",
            &["2024-09-02 Mon 09:00:00"],
        ),
        // The 15th: Saturday 2024-06-15 -> Friday; Sunday 2024-09-15 -> Monday.
        (
            "0 0 9 15W * ?",
            "2024-06-01T00:00:00Z",
            &["2024-06-14 Fri 09:00:00", "2024-07-15 Mon 09:00:00"],
        ),
        (
            "0 0 9 15W * ?",
            "2024-09-14T00:00:00Z",
            &["2024-09-16 Mon 09:00:00"],
        ),
        // After the moved day has passed, the next month's.
        (
            "0 0 9 15W * ?",
            "2024-06-14T09:00:00Z",
            &["2024-07-15 Mon 09:00:00"],
        ),
        // A last day on a Sunday moves back to Friday (2024-03-31).
        (
            "0 0 9 31W * ?",
            "2024-03-01T00:00:00Z",
            &["2024-03-29 Fri 09:00:00", "2024-05-31 Fri 09:00:00"],
        ),
        // Letters in either case, as Quartz upper-cases the expression.
        (
            "0 0 12 lw * ?",
            "2024-08-01T00:00:00Z",
            &["2024-08-30 Fri 12:00:00"],
        ),
        (
            "0 0 9 ? nov-feb fril",
            "2024-03-01T00:00:00Z",
            &["2024-11-29 Fri 09:00:00", "2024-12-27 Fri 09:00:00"],
        ),
        // Last and nth weekdays by name.
        (
            "0 0 9 ? * FRIL",
            "2024-03-01T00:00:00Z",
            &["2024-03-29 Fri 09:00:00"],
        ),
        (
            "0 0 9 ? * MON#1",
            "2024-03-01T00:00:00Z",
            &["2024-03-04 Mon 09:00:00", "2024-04-01 Mon 09:00:00"],
        ),
        // A fifth Friday only in months that have one.
        (
            "0 0 9 ? * 6#5",
            "2024-03-01T00:00:00Z",
            &["2024-03-29 Fri 09:00:00", "2024-05-31 Fri 09:00:00"],
        ),
    ];
    for (expr, after, want) in cases {
        assert_eq!(
            fires(expr, "UTC", after, want.len()),
            *want,
            "{expr} after {after}"
        );
    }
}

#[test]
fn a_nearest_weekday_past_the_end_of_a_short_month_depends_on_the_search() {
    // 2025-02-28 is a Friday: `29W` rolls over to Saturday 1 March and moves back to
    // it. Quartz 2.3.2 gives that fire only when its search looks at February; from
    // January's fire on Wednesday the 29th it jumps to "the 29th of February", which is
    // 1 March, and the next fire is in March. From the 31st it reaches February.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "0 0 10 29W * ?",
            "2025-02-01T00:00:00Z",
            &["2025-02-28 Fri 10:00:00", "2025-03-28 Fri 10:00:00"],
        ),
        (
            "0 0 10 29W * ?",
            "2025-01-29T10:00:00Z",
            &["2025-03-28 Fri 10:00:00", "2025-04-29 Tue 10:00:00"],
        ),
        (
            "0 0 10 29W * ?",
            "2025-01-31T10:00:00Z",
            &["2025-02-28 Fri 10:00:00"],
        ),
        // `31W` after a fire on the 31st rolls into the next month and sees it.
        (
            "0 0 10 31W * ?",
            "2022-08-31T10:00:00Z",
            &["2022-09-30 Fri 10:00:00", "2022-10-31 Mon 10:00:00"],
        ),
    ];
    for (expr, after, want) in cases {
        assert_eq!(
            fires(expr, "UTC", after, want.len()),
            *want,
            "{expr} after {after}"
        );
    }
    // Backwards (the latest missed fire) follows fire-to-fire order: no February fire
    // after a January one on the 29th.
    let s = CronSchedule::new("0 0 10 29W * ?", "UTC").unwrap();
    assert_eq!(
        s.missed(
            utc("2025-01-01T00:00:00Z"),
            utc("2025-03-10T00:00:00Z"),
            MissedFires::RunOnce
        ),
        Some(utc("2025-01-29T10:00:00Z"))
    );
}

#[test]
fn ranges_that_wrap_around() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "0 0 22-2 * * ?",
            "2024-03-01T21:00:00Z",
            &[
                "2024-03-01 Fri 22:00:00",
                "2024-03-01 Fri 23:00:00",
                "2024-03-02 Sat 00:00:00",
                "2024-03-02 Sat 01:00:00",
                "2024-03-02 Sat 02:00:00",
                "2024-03-02 Sat 22:00:00",
            ],
        ),
        // The step counts on across midnight: 22, 24 = 0, 26 = 2.
        (
            "0 0 22-2/2 * * ?",
            "2024-03-01T21:00:00Z",
            &[
                "2024-03-01 Fri 22:00:00",
                "2024-03-02 Sat 00:00:00",
                "2024-03-02 Sat 02:00:00",
                "2024-03-02 Sat 22:00:00",
            ],
        ),
        (
            "0 0 9 ? * FRI-MON",
            "2024-03-06T00:00:00Z",
            &[
                "2024-03-08 Fri 09:00:00",
                "2024-03-09 Sat 09:00:00",
                "2024-03-10 Sun 09:00:00",
                "2024-03-11 Mon 09:00:00",
                "2024-03-15 Fri 09:00:00",
            ],
        ),
        // Weekdays 7-3/2: 7 (SAT), 9 = 2 (MON).
        (
            "0 0 9 ? * 7-3/2",
            "2024-03-06T00:00:00Z",
            &[
                "2024-03-09 Sat 09:00:00",
                "2024-03-11 Mon 09:00:00",
                "2024-03-16 Sat 09:00:00",
            ],
        ),
        (
            "0 0 0 1 NOV-FEB ?",
            "2024-03-01T00:00:00Z",
            &[
                "2024-11-01 Fri 00:00:00",
                "2024-12-01 Sun 00:00:00",
                "2025-01-01 Wed 00:00:00",
                "2025-02-01 Sat 00:00:00",
                "2025-11-01 Sat 00:00:00",
            ],
        ),
        (
            "0 0 0 30-2 * ?",
            "2024-02-27T00:00:00Z",
            &[
                "2024-03-01 Fri 00:00:00",
                "2024-03-02 Sat 00:00:00",
                "2024-03-30 Sat 00:00:00",
                "2024-03-31 Sun 00:00:00",
                "2024-04-01 Mon 00:00:00",
            ],
        ),
        (
            "50-10/10 * * * * ?",
            "2024-03-01T00:00:45Z",
            &[
                "2024-03-01 Fri 00:00:50",
                "2024-03-01 Fri 00:01:00",
                "2024-03-01 Fri 00:01:10",
                "2024-03-01 Fri 00:01:50",
            ],
        ),
    ];
    for (expr, after, want) in cases {
        assert_eq!(
            fires(expr, "UTC", after, want.len()),
            *want,
            "{expr} after {after}"
        );
    }
}

#[test]
fn bad_expressions_name_the_field() {
    let cases = [
        (
            "0 0 12 L-40 * ?",
            "day-of-month `L-40`: the offset from the last day must be at most 30",
        ),
        ("0 0 12 L- * ?", "day-of-month `L-`: a value is missing"),
        (
            "0 0 12 5W,10 * ?",
            "day-of-month `5W,10`: `W` takes a single day (e.g. `15W`), not a list",
        ),
        (
            "0 0 12 1-5W * ?",
            "day-of-month `1-5W`: `W` takes a single day",
        ),
        (
            "0 0 12 W * ?",
            "day-of-month `W`: `W` needs a day before it",
        ),
        ("0 0 12 32W * ?", "day-of-month `32W`: 32 is outside 1-31"),
        ("0 0 12 5L * ?", "day-of-month `5L`: `L` and `W` go as"),
        (
            "0 0 12 L,15 * ?",
            "day-of-month `L,15`: `L` cannot be listed with other days",
        ),
        (
            "0 0 12 ? * 6#3,2",
            "day-of-week `6#3,2`: `#` takes a single weekday, not a list",
        ),
        (
            "0 0 12 ? * 6#6",
            "day-of-week `6#6`: `#` must be followed by 1 to 5",
        ),
        (
            "0 0 12 ? * 6L,2",
            "day-of-week `6L,2`: `L` cannot be listed with other days",
        ),
        (
            "0 0 12 ? * 2-6L",
            "day-of-week `2-6L`: `L` and `#` take a single weekday",
        ),
        (
            "0 0 12 ? * 0",
            "day-of-week `0`: 0 is outside 1-7 (1 = SUN ... 7 = SAT)",
        ),
        ("0 0 12 ? * 8L", "day-of-week `8L`: 8 is outside 1-7"),
        (
            "0 0 12 ? * MON-FRI/2",
            "day-of-week `MON-FRI/2`: a step after a name is ignored",
        ),
        (
            "0 0 12 ? * MON-5",
            "day-of-week `MON-5`: a range takes two names or two numbers",
        ),
        (
            "0 0 12 ? * MONDAY",
            "day-of-week `MONDAY`: `MONDAY` is not one of SUN MON",
        ),
        (
            "0 0 12 * * MON",
            "day-of-month `*` and day-of-week `MON` both name days",
        ),
        ("0 0 12 ? * ?", "day-of-month and day-of-week are both `?`"),
        (
            "0 0 12 ?5 * ?",
            "day-of-month `?5`: `?` must be the whole field",
        ),
        (
            "? 0 12 * * ?",
            "seconds `?`: `?` is only for day-of-month or day-of-week",
        ),
        ("0 0 25 * * ?", "hours `25`: 25 is outside 0-23"),
        ("0 0 1,,2 * * ?", "hours `1,,2`: empty item in the list"),
        ("0 60 * * * ?", "minutes `60`: 60 is outside 0-59"),
        (
            "0/60 * * * * ?",
            "seconds `0/60`: a step of 60 is more than Quartz allows here (59)",
        ),
        ("*/0 * * * * ?", "seconds `*/0`: a step must be at least 1"),
        (
            "0/ * * * * ?",
            "seconds `0/`: `/` must be followed by a step",
        ),
        ("x * * * * ?", "seconds `x`: `x` is not a number"),
        (
            "0 0 0 1 13 ?",
            "month `13`: 13 is outside 1-12 (or JAN-DEC)",
        ),
        (
            "0 0 0 1 JANUARY ?",
            "month `JANUARY`: `JANUARY` is not one of JAN FEB",
        ),
        (
            "0 0 0 1 1 ? 2030-2020",
            "year `2030-2020`: the range runs backwards (2030 to 2020)",
        ),
        ("0 0 0 1 1 ? 1969", "year `1969`: 1969 is outside 1970-9999"),
        (
            "0 0 0 1 1,3-x ?",
            "month `1,3-x`: `3-x`: `x` is not one of JAN FEB",
        ),
        (
            "0 0 0 1 1,3-MAR ?",
            "month `1,3-MAR`: `3-MAR`: a range takes two names or two numbers",
        ),
        ("* * * * *", "expected 6 or 7 fields"),
        ("0 0 12 * * ? 2024 x", "expected 6 or 7 fields"),
        ("@daily", "expected 6 or 7 fields"),
        ("", "expected 6 or 7 fields"),
    ];
    for (expr, want) in cases {
        let err = CronSchedule::new(expr, "UTC").expect_err(expr);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cron expression `{expr}`: {want}")),
            "{expr}: {message}"
        );
    }
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
    let fires = hourly.fires_between(utc("2024-03-31T00:00:00Z"), utc("2024-03-31T03:00:00Z"), 10);
    assert_eq!(fires.len(), 3, "{fires:?}");
}

#[test]
fn daylight_saving_changes_for_repeating_schedules() {
    let at = |s: &CronSchedule, after: &str, n: usize| -> Vec<String> {
        let mut t = utc(after);
        (0..n)
            .map(|_| {
                t = s.next_after(t).expect("a next fire");
                t.to_rfc3339()
            })
            .collect()
    };
    // New York falls back on 2024-11-03: 01:00-01:59 happens twice and fires only in
    // its first pass (EDT), so half-hourly fires skip from 01:30 EDT to 02:00 EST.
    let half_hourly = CronSchedule::new("0 0/30 * * * ?", "America/New_York").unwrap();
    assert_eq!(
        at(&half_hourly, "2024-11-03T04:00:00Z", 4),
        [
            "2024-11-03T04:30:00+00:00",
            "2024-11-03T05:00:00+00:00",
            "2024-11-03T05:30:00+00:00",
            "2024-11-03T07:00:00+00:00",
        ]
    );
    // From inside the second pass (01:15 EST) the next fire is still 02:00 EST, and
    // the latest one before it is 01:30 EDT.
    assert_eq!(
        at(&half_hourly, "2024-11-03T06:15:00Z", 1),
        ["2024-11-03T07:00:00+00:00"]
    );
    assert_eq!(
        half_hourly.missed(
            utc("2024-11-03T04:00:00Z"),
            utc("2024-11-03T06:45:00Z"),
            MissedFires::RunOnce
        ),
        Some(utc("2024-11-03T05:30:00Z"))
    );
    // Springing forward on 2024-03-10, 02:00 and 02:30 do not exist: both fire when
    // the gap ends at 03:00 EDT, once.
    assert_eq!(
        at(&half_hourly, "2024-03-10T06:00:00Z", 3),
        [
            "2024-03-10T06:30:00+00:00",
            "2024-03-10T07:00:00+00:00",
            "2024-03-10T07:30:00+00:00",
        ]
    );
    assert_eq!(
        half_hourly.missed(
            utc("2024-03-10T06:30:00Z"),
            utc("2024-03-10T07:10:00Z"),
            MissedFires::RunOnce
        ),
        Some(utc("2024-03-10T07:00:00Z"))
    );
    // Samoa skipped 2011-12-30 entirely (UTC-10 to UTC+14): that day's noon run
    // happens when the skipped day ends, at midnight on the 31st.
    let noon = CronSchedule::new("0 0 12 * * ?", "Pacific/Apia").unwrap();
    assert_eq!(
        at(&noon, "2011-12-29T12:00:00Z", 3),
        [
            "2011-12-29T22:00:00+00:00",
            "2011-12-30T10:00:00+00:00",
            "2011-12-30T22:00:00+00:00",
        ]
    );
    // Lord Howe moves its clocks by half an hour: 02:00-02:29 is missing on
    // 2024-10-06, and 01:30-01:59 happens twice on 2024-04-07.
    assert_eq!(
        next(
            "0 15 2 * * ?",
            "Australia/Lord_Howe",
            "2024-10-05T12:00:00Z"
        ),
        "2024-10-06T02:30:00+11:00"
    );
    let twice = CronSchedule::new("0 45 1 * * ?", "Australia/Lord_Howe").unwrap();
    let fires = twice.fires_between(utc("2024-04-06T12:00:00Z"), utc("2024-04-07T12:00:00Z"), 5);
    assert_eq!(fires, [utc("2024-04-06T14:45:00Z")]);
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
