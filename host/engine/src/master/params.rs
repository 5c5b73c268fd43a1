//! What a task's parameters turn into when it is dispatched: DolphinScheduler's layers
//! (startup > local > upstream OUT > global) and `${...}` / `$[...]` substitution in every
//! string of the task's own fields.

use std::collections::BTreeMap;

use chrono::{Local, NaiveDateTime, TimeZone};
use shoal_params::{ParamError, ParamScope, RunContext, substitute};
use shoal_workflow::{ParamDirection, TaskDefinition, WorkflowDefinition};

/// The run's business time as wall-clock time on this host (DolphinScheduler computes
/// `$[yyyyMMdd]` in the server's zone too).
pub(super) fn business_time(schedule_time_ms: i64) -> NaiveDateTime {
    Local
        .timestamp_millis_opt(schedule_time_ms)
        .single()
        .map(|t| t.naive_local())
        .unwrap_or_default()
}

/// The task's fields with every reference substituted.
/// `secrets` are the project's secrets as `secret.NAME` entries, the lowest layer: a task
/// reads one as `${secret.NAME}`.
pub(super) fn task_params(
    workflow: &WorkflowDefinition,
    task: &TaskDefinition,
    startup: &BTreeMap<String, String>,
    upstream: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
    ctx: &RunContext,
) -> Result<serde_json::Value, ParamError> {
    let scope = scope(workflow, task, startup, upstream).with_global(secrets.clone());
    let mut fields = serde_json::Value::Object(task.params.clone());
    substitute_strings(&mut fields, &scope, ctx)?;
    Ok(fields)
}

fn scope(
    workflow: &WorkflowDefinition,
    task: &TaskDefinition,
    startup: &BTreeMap<String, String>,
    upstream: &BTreeMap<String, String>,
) -> ParamScope {
    let local = task
        .local_params
        .iter()
        .filter(|p| p.direct == ParamDirection::In || !p.value.is_empty())
        .map(|p| (p.prop.clone(), p.value.clone()));
    ParamScope::new()
        .with_global(workflow.global_params.clone())
        .with_upstream(upstream.clone())
        .with_local(local)
        .with_startup(startup.clone())
}

/// OUT parameters a task passes on: what it emitted, plus declared OUT local params it
/// did not emit, with their (substituted) default values.
pub(super) fn out_params(
    workflow: &WorkflowDefinition,
    task: &TaskDefinition,
    startup: &BTreeMap<String, String>,
    upstream: &BTreeMap<String, String>,
    ctx: &RunContext,
    emitted: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = emitted.iter().cloned().collect();
    let scope = scope(workflow, task, startup, upstream);
    for p in &task.local_params {
        if p.direct == ParamDirection::Out && !out.contains_key(&p.prop) && !p.value.is_empty() {
            let value = substitute(&p.value, &scope, ctx).unwrap_or_else(|_| p.value.clone());
            out.insert(p.prop.clone(), value);
        }
    }
    out
}

fn substitute_strings(
    value: &mut serde_json::Value,
    scope: &ParamScope,
    ctx: &RunContext,
) -> Result<(), ParamError> {
    match value {
        serde_json::Value::String(s) => *s = substitute(s, scope, ctx)?,
        serde_json::Value::Array(items) => {
            for item in items {
                substitute_strings(item, scope, ctx)?;
            }
        }
        serde_json::Value::Object(map) => {
            for (_, item) in map.iter_mut() {
                substitute_strings(item, scope, ctx)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use shoal_workflow::LocalParam;

    fn ctx() -> RunContext {
        RunContext {
            schedule_time: NaiveDate::from_ymd_opt(2024, 3, 1)
                .unwrap()
                .and_hms_opt(2, 0, 0)
                .unwrap(),
            workflow_instance_id: 7,
            task_instance_id: 70,
            workflow_definition_name: "wf".into(),
            task_definition_name: "t".into(),
            project_name: "p".into(),
        }
    }

    fn workflow(task: TaskDefinition) -> WorkflowDefinition {
        let mut wf: WorkflowDefinition = serde_json::from_value(serde_json::json!({
            "name": "wf", "tasks": [], "global_params": {"g": "global", "x": "from-global"}
        }))
        .unwrap();
        wf.tasks.push(task);
        wf
    }

    fn task(command: &str, local: Vec<LocalParam>) -> TaskDefinition {
        let mut t: TaskDefinition = serde_json::from_value(serde_json::json!({
            "name": "t", "task_type": "shell", "params": {"command": command, "nested": ["${g}"]}
        }))
        .unwrap();
        t.local_params = local;
        t
    }

    #[test]
    fn layers_rank_startup_local_upstream_global() {
        let local = |v: &str| LocalParam {
            prop: "x".into(),
            direct: ParamDirection::In,
            kind: "VARCHAR".into(),
            value: v.into(),
        };
        let upstream: BTreeMap<_, _> = [("x".to_string(), "from-upstream".to_string())].into();
        let startup: BTreeMap<_, _> = [("x".to_string(), "from-startup".to_string())].into();
        let none = BTreeMap::new();
        let cases = [
            (vec![], &none, &none, "from-global"),
            (vec![], &upstream, &none, "from-upstream"),
            (vec![local("from-local")], &upstream, &none, "from-local"),
            (
                vec![local("from-local")],
                &upstream,
                &startup,
                "from-startup",
            ),
        ];
        for (locals, up, start, want) in cases {
            let t = task(
                "echo ${x} ${g} $[yyyyMMdd-1] ${system.task.instance.id}",
                locals,
            );
            let wf = workflow(t.clone());
            let p = task_params(&wf, &t, start, up, &BTreeMap::new(), &ctx()).unwrap();
            assert_eq!(p["command"], format!("echo {want} global 20240229 70"));
            assert_eq!(p["nested"][0], "global");
        }
    }

    #[test]
    fn secrets_are_the_lowest_layer() {
        let t = task("login ${secret.db} ${x}", vec![]);
        let wf = workflow(t.clone());
        let secrets = BTreeMap::from([("secret.db".to_owned(), "s3cret".to_owned())]);
        let startup = BTreeMap::from([("x".to_owned(), "from-startup".to_owned())]);
        let p = task_params(&wf, &t, &startup, &BTreeMap::new(), &secrets, &ctx()).unwrap();
        assert_eq!(p["command"], "login s3cret from-startup");
    }

    #[test]
    fn unknown_parameter_is_an_error() {
        let t = task("echo ${nope}", vec![]);
        let wf = workflow(t.clone());
        let none = BTreeMap::new();
        let err = task_params(&wf, &t, &none, &none, &none, &ctx()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn declared_out_params_default_when_not_emitted() {
        let t = task(
            "true",
            vec![LocalParam {
                prop: "day".into(),
                direct: ParamDirection::Out,
                kind: "VARCHAR".into(),
                value: "$[yyyyMMdd]".into(),
            }],
        );
        let wf = workflow(t.clone());
        let none = BTreeMap::new();
        let out = out_params(&wf, &t, &none, &none, &ctx(), &[]);
        assert_eq!(out["day"], "20240301");
        let out = out_params(&wf, &t, &none, &none, &ctx(), &[("day".into(), "x".into())]);
        assert_eq!(out["day"], "x");
    }
}
