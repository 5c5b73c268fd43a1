//! One task definition: the fields every task type has (name, flag, priority, worker
//! and task group, delay, retries, timeout, local parameters) and the placeholder a task
//! becomes when Shoal cannot run it and the import is partial. The type's own
//! `taskParams` are converted by `params`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::fields::{Ctx, Obj, Report, show};
use crate::params;
use crate::workflow::{DATA_TYPES, is_zero};
use crate::yaml::{MapBuilder, Y};
use crate::{Index, Options};

/// A converted task.
pub(crate) struct TaskOut {
    pub doc: Y,
    /// Workflows it starts as sub-workflows.
    pub children: Vec<String>,
    /// Workflows it waits for (Dependent).
    pub depends_on: Vec<String>,
}

/// What a task type's conversion produced.
#[derive(Default)]
pub(crate) struct TypeOut {
    /// Shoal's task type.
    pub task_type: &'static str,
    /// The type's own fields, in order.
    pub fields: MapBuilder,
    /// Why Shoal cannot run the task as written (a feature of the type it lacks).
    pub unsupported: Vec<String>,
    pub children: Vec<String>,
    pub depends_on: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn convert(
    map: &Map<String, Value>,
    field: &str,
    deps: &[String],
    pos: usize,
    index: &Index,
    options: &Options,
    wf: &Ctx,
    r: &mut Report,
) -> Option<TaskOut> {
    let mut t = Obj::new(map, wf.clone(), format!("{field}."));
    let Some(name) = t.word(r, "name") else {
        r.problems.push(wf.missing(&t.field("name")));
        return None;
    };
    let ctx = wf.task(&name);
    let mut t = Obj::new(map, ctx.clone(), "");
    t.raw("name");
    if t.int(r, "code").is_none() {
        // Without its code no relation can name the task.
        r.problems.push(ctx.missing("code"));
    }
    let Some(ds_type) = t.word(r, "taskType").map(|s| s.to_ascii_uppercase()) else {
        r.problems.push(ctx.missing("taskType"));
        return None;
    };
    let mut out = MapBuilder::default();
    let description = t.text(r, "description").unwrap_or_default();
    let flag_no = t.choice(r, "flag", &["NO", "YES"]) == Some("NO");
    let priority = t.choice(
        r,
        "taskPriority",
        &["HIGHEST", "HIGH", "MEDIUM", "LOW", "LOWEST"],
    );
    let worker_group = t.word(r, "workerGroup");
    let delay = t.count(r, "delayTime").unwrap_or(0);
    let retries = t.count(r, "failRetryTimes").unwrap_or(0);
    let retry_interval = t.count(r, "failRetryInterval");
    let timeout_open = t.choice(r, "timeoutFlag", &["CLOSE", "OPEN"]) == Some("OPEN");
    let timeout = t.count(r, "timeout").unwrap_or(0);
    let strategy = t.choice(
        r,
        "timeoutNotifyStrategy",
        &["WARN", "FAILED", "WARNFAILED"],
    );
    let task_group = t.int(r, "taskGroupId").filter(|id| *id > 0);
    t.unsupported(
        r,
        "taskGroupPriority",
        is_zero,
        "priority inside a task group; tasks of a group are served by task priority",
    );
    t.unsupported(
        r,
        "isCache",
        |v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("NO")) || v == 0,
        "task result caching; the task runs every time",
    );
    t.unsupported(
        r,
        "environmentCode",
        |v| v.as_i64().is_some_and(|c| c <= 0),
        "DolphinScheduler environments; export variables in the task's command instead",
    );
    t.unsupported(
        r,
        "cpuQuota",
        |v| v.as_i64().is_some_and(|c| c <= 0),
        "CPU quotas; the operator policy's process limits apply to every task",
    );
    t.unsupported(
        r,
        "memoryMax",
        |v| v.as_i64().is_some_and(|c| c <= 0),
        "memory limits per task; the operator policy's process limits apply to every task",
    );
    // A FLINK task of type STREAM is a Flink task with `run_mode: STREAM`; other
    // types have no stream form.
    let stream = t
        .raw("taskExecuteType")
        .is_some_and(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("STREAM")) || v == 1);
    let ds_type = if stream && ds_type == "FLINK" {
        "FLINK_STREAM".to_owned()
    } else {
        if stream {
            r.not_supported(
                &ctx,
                format!(
                    "`taskExecuteType` = STREAM (stream tasks of type {ds_type}; Shoal runs it to its end)"
                ),
            );
        }
        ds_type
    };
    t.unsupported(
        r,
        "resourceIds",
        |_| false,
        "DolphinScheduler's resource center; use `$FILE{...}` to bring a file's text in",
    );

    // The type's own parameters, and the local parameters every type has.
    let empty = Map::new();
    let params_map = match t.raw("taskParams") {
        Some(Value::Object(p)) => p,
        None => &empty,
        Some(other) => {
            r.problems.push(ctx.invalid(
                "taskParams",
                format!("must be an object, not {}", show(other)),
            ));
            &empty
        }
    };
    t.finish(r);
    let mut p = Obj::new(params_map, ctx.clone(), "taskParams.");
    let local_params = local_params(&mut p, r);
    p.unsupported(
        r,
        "resourceList",
        |_| false,
        "DolphinScheduler's resource center; use `$FILE{...}` to bring a file's text in",
    );
    let problems_before = r.problems.len();
    let typed = params::convert(&ds_type, &mut p, pos, index, options, r);
    let placeholder = (!typed.unsupported.is_empty()).then(|| typed.unsupported.clone());
    match placeholder {
        None => p.finish(r),
        // Problems inside the parameters of a task that is not imported are beside the
        // point: it is reported as what Shoal cannot run, or becomes a placeholder.
        Some(_) => r.problems.truncate(problems_before),
    }

    out.put("name", Y::str(&name));
    out.put(
        "task_type",
        Y::str(if placeholder.is_some() {
            "Noop"
        } else {
            typed.task_type
        }),
    );
    match &placeholder {
        Some(reasons) => {
            let what = format!("not imported: {}", reasons.join("; "));
            out.put(
                "description",
                Y::Str(if description.trim().is_empty() {
                    what.clone()
                } else {
                    format!("{what} (was: {description})")
                }),
            );
            if options.partial {
                r.warn(
                    &ctx,
                    format!("{what}; it is a skipped (flag NO) Noop placeholder, so its downstream tasks still run"),
                );
            } else {
                for reason in reasons {
                    r.problems.push(ctx.unsupported(reason));
                }
            }
        }
        None if !description.is_empty() => out.put("description", Y::Str(description)),
        None => {}
    }
    if !deps.is_empty() {
        out.put("deps", Y::strs(deps.iter().cloned()));
    }
    if flag_no || placeholder.is_some() {
        out.put("flag", Y::str("NO"));
    }
    if let Some(p) = priority.filter(|p| *p != "MEDIUM") {
        out.put("task_priority", Y::str(p));
    }
    if let Some(g) = worker_group.filter(|g| g != "default") {
        out.put("worker_group", Y::Str(g));
    }
    if let Some(id) = task_group {
        let name = options.task_groups.get(&id).cloned().unwrap_or_else(|| {
            let name = format!("task-group-{id}");
            r.warn(
                &ctx,
                format!(
                    "DolphinScheduler task group id {id} is written as task_group `{name}`: the export names task groups by id only; configure a task group of that name, or map the id on import (`shoal import --task-group {id}=NAME`, `task_groups={id}=NAME` on the API)"
                ),
            );
            name
        });
        out.put("task_group", Y::Str(name));
    }
    if delay > 0 {
        out.put("delay_time", Y::Int(delay.into()));
    }
    if retries > 0 {
        out.put("fail_retry_times", Y::Int(retries.into()));
    }
    // Shoal waits a minute between retries unless told otherwise, DolphinScheduler as
    // long as `failRetryInterval` says (0 when unset). Without retries it means nothing.
    let interval = retry_interval.unwrap_or(0);
    if retries > 0 && interval != 1 {
        out.put("fail_retry_interval", Y::Int(interval.into()));
    }
    if timeout_open && timeout > 0 {
        match strategy {
            Some(s) => {
                out.put("timeout", Y::Int(timeout.into()));
                out.put("timeout_notify_strategy", Y::str(s));
            }
            None => r.not_supported(
                &ctx,
                format!(
                    "`timeout` = {timeout} with timeoutFlag OPEN but no timeoutNotifyStrategy (DolphinScheduler then neither warns nor fails); no timeout is imported"
                ),
            ),
        }
    }
    if !local_params.is_empty() {
        out.put("local_params", Y::Seq(local_params));
    }
    if placeholder.is_none() {
        for (k, v) in typed.fields.0 {
            out.put(&k, v);
        }
    }
    Some(TaskOut {
        doc: out.build(),
        children: if placeholder.is_none() {
            typed.children
        } else {
            Vec::new()
        },
        depends_on: if placeholder.is_none() {
            typed.depends_on
        } else {
            Vec::new()
        },
    })
}

/// `localParams`: `[{prop, direct, type, value}]`, as Shoal's `local_params` list.
fn local_params(p: &mut Obj<'_>, r: &mut Report) -> Vec<Y> {
    let field = p.field("localParams");
    let ctx = p.ctx.clone();
    let mut out = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (i, item) in p.list(r, "localParams").into_iter().enumerate() {
        let Value::Object(map) = item else {
            r.problems.push(ctx.invalid(
                &format!("{field}[{i}]"),
                "must be an object {prop, direct, type, value}",
            ));
            continue;
        };
        let mut o = Obj::new(map, ctx.clone(), format!("{field}[{i}]."));
        let Some(prop) = o.word(r, "prop") else {
            r.problems.push(ctx.missing(&o.field("prop")));
            continue;
        };
        let direct = o.choice(r, "direct", &["IN", "OUT"]).unwrap_or("IN");
        let kind = o.choice(r, "type", DATA_TYPES).unwrap_or("VARCHAR");
        let value = o.text(r, "value").unwrap_or_default();
        o.finish(r);
        if !seen.insert(prop.clone()) {
            r.problems.push(ctx.invalid(
                &format!("{field}[{i}].prop"),
                format!("a second local parameter named `{prop}`"),
            ));
            continue;
        }
        let mut m = MapBuilder::default();
        m.put("prop", Y::Str(prop));
        m.put("direct", Y::str(direct));
        m.put("type", Y::str(kind));
        m.put("value", Y::Str(value));
        out.push(m.build());
    }
    out
}
