//! A workflow's DolphinScheduler schedule: the Quartz `crontab`, its `timezoneId` and
//! window (`startTime`, `endTime`), and `failureStrategy`, as the definition's
//! `schedule`, `timezone`, `start_time`, `end_time` and `failure_strategy`, and as the
//! [`ImportedSchedule`] the caller creates through the schedules API.
//!
//! DolphinScheduler writes the window as `yyyy-MM-dd HH:mm:ss` without an offset, in
//! the exporting server's zone ([`Options::export_timezone`], by default the schedule's
//! own); it is returned in RFC 3339 in the schedule's zone, and written in the YAML as
//! DolphinScheduler's text in that zone, beside `timezone`.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::fields::{Ctx, Obj, Report, show};
use crate::workflow::is_zero;
use crate::yaml::Y;
use crate::{ImportedSchedule, Options};

/// DolphinScheduler's text for times.
const DS_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

pub(crate) struct ScheduleOut {
    /// `schedule`, `start_time`, `end_time`, `timezone` for the definition.
    pub entries: Vec<(&'static str, Y)>,
    /// `continue` or `end`.
    pub failure_strategy: Option<&'static str>,
    pub imported: ImportedSchedule,
}

pub(crate) fn convert(
    map: &Map<String, Value>,
    workflow_code: Option<i64>,
    wf: &Ctx,
    options: &Options,
    r: &mut Report,
) -> Option<ScheduleOut> {
    let mut s = Obj::new(map, wf.clone(), "schedule.");
    let before = r.problems.len();
    let cron = s.word(r, "crontab");
    if cron.is_none() {
        r.problems.push(wf.missing("schedule.crontab"));
    }
    let zone_name = match s.word(r, "timezoneId") {
        Some(z) => z,
        None => {
            r.warn(
                wf,
                "the schedule has no timezoneId; it is imported in UTC (DolphinScheduler would use its server's zone)",
            );
            "UTC".to_owned()
        }
    };
    let zone: Option<Tz> = match zone_name.parse() {
        Ok(z) => Some(z),
        Err(_) => {
            r.problems.push(wf.invalid(
                "schedule.timezoneId",
                format!("unknown time zone `{zone_name}` (expected an IANA name such as `Asia/Shanghai` or `UTC`)"),
            ));
            None
        }
    };
    let written_in: Option<Tz> = match &options.export_timezone {
        Some(z) => match z.parse() {
            Ok(z) => Some(z),
            Err(_) => {
                r.problems.push(wf.invalid(
                    "(Options::export_timezone)",
                    format!("unknown time zone `{z}`"),
                ));
                None
            }
        },
        None => zone,
    };
    let start = s
        .raw("startTime")
        .and_then(|v| instant(v, "schedule.startTime", written_in, zone, wf, r));
    let end = s
        .raw("endTime")
        .and_then(|v| instant(v, "schedule.endTime", written_in, zone, wf, r));
    let failure_strategy = match s.choice(r, "failureStrategy", &["END", "CONTINUE"]) {
        Some("CONTINUE") => Some("continue"),
        Some(_) => Some("end"),
        None => None,
    };
    let online = s.choice(r, "releaseState", &["OFFLINE", "ONLINE"]) == Some("ONLINE");
    for key in ["processDefinitionCode", "workflowDefinitionCode"] {
        if let (Some(own), Some(theirs)) = (workflow_code, s.int(r, key).filter(|c| *c != 0))
            && own != theirs
        {
            r.problems.push(wf.invalid(
                &format!("schedule.{key}"),
                format!("the schedule belongs to workflow code {theirs}, not this one ({own})"),
            ));
        }
    }
    s.unsupported(
        r,
        "warningType",
        |v| v.as_str().is_some_and(|w| w.eq_ignore_ascii_case("NONE")) || v == 0,
        "alerts on the runs it starts; configure alerts with Shoal's alert channels",
    );
    s.unsupported(
        r,
        "warningGroupId",
        is_zero,
        "alert groups; configure alerts with Shoal's alert channels",
    );
    for key in ["processInstancePriority", "workflowInstancePriority"] {
        s.unsupported(
            r,
            key,
            |v| v.as_str().is_some_and(|p| p.eq_ignore_ascii_case("MEDIUM")) || v == 2,
            "the priority of the runs it starts; each task keeps its own `task_priority`",
        );
    }
    s.unsupported(
        r,
        "workerGroup",
        |v| v.as_str() == Some("default"),
        "a worker group for the runs it starts; each task runs on its own `worker_group`",
    );
    s.unsupported(
        r,
        "tenantCode",
        |v| v.as_str() == Some("default"),
        "tenants (OS users per workflow); Shoal runs every task's processes as its sandbox's unprivileged user",
    );
    s.unsupported(
        r,
        "environmentCode",
        |v| v.as_i64().is_some_and(|c| c <= 0),
        "DolphinScheduler environments; export variables in the task's command instead",
    );
    s.finish(r);
    if r.problems.len() > before {
        return None;
    }
    let (cron, zone) = (cron?, zone?);
    if let Err(e) = shoal_schedule::CronSchedule::new(&cron, zone.name()) {
        r.problems
            .push(wf.invalid("schedule.crontab", e.to_string()));
        return None;
    }
    if let (Some(a), Some(b)) = (&start, &end)
        && a > b
    {
        r.problems.push(wf.invalid(
            "schedule.startTime",
            format!(
                "the window starts ({}) after it ends ({})",
                a.format(DS_FORMAT),
                b.format(DS_FORMAT)
            ),
        ));
        return None;
    }
    let mut entries = vec![("schedule", Y::str(&cron))];
    if let Some(a) = &start {
        entries.push(("start_time", Y::Str(a.format(DS_FORMAT).to_string())));
    }
    if let Some(b) = &end {
        entries.push(("end_time", Y::Str(b.format(DS_FORMAT).to_string())));
    }
    entries.push(("timezone", Y::str(zone.name())));
    Some(ScheduleOut {
        entries,
        failure_strategy,
        imported: ImportedSchedule {
            cron,
            timezone: zone.name().to_owned(),
            start: start.map(|t| t.to_rfc3339()),
            end: end.map(|t| t.to_rfc3339()),
            online,
        },
    })
}

/// A time of the window in `zone`: DolphinScheduler's `yyyy-MM-dd HH:mm:ss` (read in
/// `written_in`), RFC 3339 with its own offset, or milliseconds since the epoch.
fn instant(
    v: &Value,
    field: &str,
    written_in: Option<Tz>,
    zone: Option<Tz>,
    wf: &Ctx,
    r: &mut Report,
) -> Option<DateTime<Tz>> {
    let (written_in, zone) = (written_in?, zone?);
    let bad = |r: &mut Report, why: String| {
        r.problems.push(wf.invalid(field, why));
        None
    };
    match v {
        Value::Number(n) => match n.as_i64().and_then(DateTime::from_timestamp_millis) {
            Some(t) => Some(t.with_timezone(&zone)),
            None => bad(r, format!("`{n}` is not a time")),
        },
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => {
            let text = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                return Some(t.with_timezone(&zone));
            }
            let naive = NaiveDateTime::parse_from_str(text, DS_FORMAT)
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"));
            let Ok(naive) = naive else {
                return bad(
                    r,
                    format!(
                        "`{text}` is not a time (DolphinScheduler writes `yyyy-MM-dd HH:mm:ss`)"
                    ),
                );
            };
            // A time that happens twice (the hour clocks go back) is its first; one
            // that never happens (the hour they skip) is an error.
            match written_in.from_local_datetime(&naive).earliest() {
                Some(t) => Some(t.with_timezone(&zone)),
                None => bad(
                    r,
                    format!(
                        "`{text}` does not exist in {} (clocks skip it)",
                        written_in.name()
                    ),
                ),
            }
        }
        other => bad(r, format!("`{}` is not a time", show(other))),
    }
}
