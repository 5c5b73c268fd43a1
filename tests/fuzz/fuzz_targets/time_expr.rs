//! `$[...]` time expressions on arbitrary text at a few base times (leap day, year ends,
//! the edges of chrono's range): an expression evaluates or is an error, never a panic.
#![no_main]

use chrono::{NaiveDate, NaiveDateTime};
use libfuzzer_sys::fuzz_target;

fn at(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|date| date.and_hms_opt(h, mi, s))
        .expect("valid date")
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    for base in [
        at(2024, 2, 29, 12, 0, 0),
        at(2024, 12, 31, 23, 59, 59),
        at(1, 1, 1, 0, 0, 0),
        NaiveDateTime::MAX,
        NaiveDateTime::MIN,
    ] {
        let _ = shoal_params::eval_time_expr(expr, base);
    }
});
