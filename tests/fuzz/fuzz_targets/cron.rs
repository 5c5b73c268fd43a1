//! Cron expressions on arbitrary text in zones with unusual daylight-saving rules: parsing
//! and the next-fire search must return, never panic.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use shoal_schedule::CronSchedule;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    for zone in ["UTC", "America/Santiago", "Australia/Lord_Howe", "Pacific/Apia"] {
        let Ok(schedule) = CronSchedule::new(expr, zone) else {
            return;
        };
        for secs in [0, 1_711_846_799, 1_711_846_800, 253_402_300_799] {
            if let Some(after) = DateTime::<Utc>::from_timestamp(secs, 0) {
                let _ = schedule.fires_between(after, after + chrono::TimeDelta::days(3), 4);
            }
        }
    }
});
