//! A Quartz expression in plain English ("at 02:00, on the last day of the month"), for
//! people reading a schedule; [`crate::CronSchedule`] stays the authority on when it
//! fires (the UI shows both, with the next fire times beside the sentence).

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn ordinal(n: u32) -> String {
    match n {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        4 => "fourth".into(),
        5 => "fifth".into(),
        _ => format!("{n}th"),
    }
}

/// A day-of-week value (1-7, Quartz: 1 = Sunday, or SUN..SAT) as a name.
fn day(text: &str) -> String {
    let t = text.to_ascii_uppercase();
    if let Ok(n) = t.parse::<usize>()
        && (1..=7).contains(&n)
    {
        return DAYS[n - 1].into();
    }
    DAYS.iter()
        .find(|d| d[..3].eq_ignore_ascii_case(&t))
        .map(|d| (*d).to_owned())
        .unwrap_or_else(|| text.to_owned())
}

fn month(text: &str) -> String {
    let t = text.to_ascii_uppercase();
    if let Ok(n) = t.parse::<usize>()
        && (1..=12).contains(&n)
    {
        return MONTHS[n - 1].into();
    }
    MONTHS
        .iter()
        .find(|m| m[..3].eq_ignore_ascii_case(&t))
        .map(|m| (*m).to_owned())
        .unwrap_or_else(|| text.to_owned())
}

fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// One list element (`a`, `a-b`, `a/n`, `*/n`, `a-b/n`) with `name` for its values.
fn element(e: &str, unit: &str, name: &dyn Fn(&str) -> String) -> String {
    if let Some((base, step)) = e.split_once('/') {
        let from = match base {
            "*" | "0" | "" => String::new(),
            b => format!(" starting at {unit} {}", name(b)),
        };
        return format!("every {step} {unit}s{from}");
    }
    if let Some((a, b)) = e.split_once('-') {
        return format!("{} through {}", name(a), name(b));
    }
    name(e)
}

fn field(text: &str, unit: &str, name: &dyn Fn(&str) -> String) -> String {
    let parts: Vec<String> = text.split(',').map(|e| element(e, unit, name)).collect();
    join(&parts)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `expression` (already checked by [`crate::CronSchedule::new`]) in plain English.
pub fn describe(expression: &str) -> String {
    let f: Vec<&str> = expression.split_whitespace().collect();
    if f.len() < 6 {
        return expression.to_owned();
    }
    let (sec, min, hour, dom, mon, dow) = (f[0], f[1], f[2], f[3], f[4], f[5]);
    let year = f.get(6).copied();
    let plain = |s: &str| s.to_owned();
    let mut out = Vec::new();

    // The time of day.
    if is_number(sec) && is_number(min) && is_number(hour) {
        let (h, m, s): (u32, u32, u32) = (
            hour.parse().unwrap_or(0),
            min.parse().unwrap_or(0),
            sec.parse().unwrap_or(0),
        );
        out.push(if s == 0 {
            format!("at {h:02}:{m:02}")
        } else {
            format!("at {h:02}:{m:02}:{s:02}")
        });
    } else {
        let mut parts = Vec::new();
        match sec {
            "*" => parts.push("every second".to_owned()),
            s if is_number(s) && s != "0" => parts.push(format!("at second {s}")),
            s if is_number(s) => {}
            s if s.contains('/') => parts.push(field(s, "second", &plain)),
            s => parts.push(format!("at seconds {}", field(s, "second", &plain))),
        }
        match min {
            "*" if sec != "*" && !sec.contains('/') => parts.push("every minute".to_owned()),
            "*" => {}
            m if m.contains('/') => parts.push(field(m, "minute", &plain)),
            m if is_number(m) => parts.push(format!("at minute {m}")),
            m => parts.push(format!("at minutes {}", field(m, "minute", &plain))),
        }
        match hour {
            "*" => {}
            h if h.contains('/') => parts.push(field(h, "hour", &plain)),
            h if is_number(h) => parts.push(format!("during hour {h}")),
            h => parts.push(format!("during hours {}", field(h, "hour", &plain))),
        }
        out.push(parts.join(", "));
    }

    // The day.
    let any = |s: &str| s == "*" || s == "?";
    let day_part = if !any(dow) {
        let d = dow.to_ascii_uppercase();
        if let Some((wd, n)) = d.split_once('#') {
            format!(
                "on the {} {} of the month",
                ordinal(n.parse().unwrap_or(1)),
                day(wd)
            )
        } else if let Some(wd) = d.strip_suffix('L')
            && !wd.is_empty()
        {
            format!("on the last {} of the month", day(wd))
        } else {
            format!("on {}", field(&d, "day", &day))
        }
    } else if !any(dom) {
        let d = dom.to_ascii_uppercase();
        match d.as_str() {
            "L" => "on the last day of the month".to_owned(),
            "LW" => "on the last weekday of the month".to_owned(),
            l if l.starts_with("L-") => {
                format!("{} days before the last day of the month", &l[2..])
            }
            w if w.ends_with('W') => format!(
                "on the weekday nearest day {} of the month",
                &w[..w.len() - 1]
            ),
            n if is_number(n) => format!("on day {n} of the month"),
            other => format!("on days {} of the month", field(other, "day", &plain)),
        }
    } else {
        "every day".to_owned()
    };
    out.push(day_part);
    if !any(mon) {
        out.push(format!("in {}", field(mon, "month", &month)));
    }
    if let Some(y) = year
        && !any(y)
    {
        out.push(format!("in {}", field(y, "year", &plain)));
    }
    out.retain(|p| !p.is_empty());
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_schedules_read_plainly() {
        for (cron, text) in [
            ("0 0 2 * * ?", "at 02:00, every day"),
            ("0 30 9 ? * MON-FRI", "at 09:30, on Monday through Friday"),
            (
                "0 0 9 ? * 2#1",
                "at 09:00, on the first Monday of the month",
            ),
            ("0 0 1 L * ?", "at 01:00, on the last day of the month"),
            ("0 0 1 LW * ?", "at 01:00, on the last weekday of the month"),
            (
                "0 0 6 15W * ?",
                "at 06:00, on the weekday nearest day 15 of the month",
            ),
            ("0 0 23 ? * 6L", "at 23:00, on the last Friday of the month"),
            ("*/5 * * * * ?", "every 5 seconds, every day"),
            ("0 */15 * * * ?", "every 15 minutes, every day"),
            (
                "0 0 8 1 1,7 ?",
                "at 08:00, on day 1 of the month, in January and July",
            ),
            (
                "0 0 0 L-3 * ? 2027",
                "at 00:00, 3 days before the last day of the month, in 2027",
            ),
            ("15 0 12 * * ?", "at 12:00:15, every day"),
        ] {
            assert_eq!(describe(cron), text, "{cron}");
        }
    }
}
