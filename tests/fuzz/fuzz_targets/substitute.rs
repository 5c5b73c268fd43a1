//! Parameter substitution on arbitrary text and parameter values: the input is split on NUL
//! bytes into a text and `name=value` pairs, so values can refer to each other (cycles,
//! long and doubling chains). Substitution and the upload-time check must return, never
//! panic, overflow the stack or grow past the byte limit.
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use shoal_params::{Limits, ParamScope, RunContext, Substituter, check_scope, check_text};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = input.split('\0');
    let text = parts.next().unwrap_or_default();
    let mut scope = ParamScope::new();
    for (i, pair) in parts.enumerate() {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let layer = shoal_params::Layer::BY_PRIORITY[i % 4];
        scope.insert(layer, name, value);
    }
    let ctx = RunContext {
        schedule_time: NaiveDate::from_ymd_opt(2024, 2, 29)
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .expect("valid date"),
        workflow_instance_id: 1,
        task_instance_id: 2,
        workflow_definition_name: "wf".into(),
        task_definition_name: "t".into(),
        project_name: "p".into(),
    };
    // Small limits, so that a short input reaches them.
    let limits = Limits {
        max_depth: 16,
        max_bytes: 64 * 1024,
    };
    let mut substituter = Substituter::new(&scope, &ctx).with_limits(limits);
    if let Ok(out) = substituter.substitute(text) {
        assert!(out.len() <= limits.max_bytes, "{} bytes", out.len());
    }
    let _ = check_scope(&scope, limits);
    let _ = check_text(text, &scope, limits);
});
