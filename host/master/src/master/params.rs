//! What a task's parameters turn into when it is dispatched: DolphinScheduler's layers
//! (startup > local > upstream OUT > global) and `${...}` / `$[...]` substitution in every
//! string of the task's own fields.

use std::collections::BTreeMap;

use chrono::{Local, NaiveDateTime, TimeZone};
use shoal_params::{ParamError, ParamScope, RunContext, Substituter, substitute};
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
    // One substituter for every field, so its size limit bounds the whole task.
    let mut substituter = Substituter::new(&scope, ctx);
    let mut path = String::new();
    substitute_strings(&mut fields, &mut substituter, &mut path).map_err(|source| {
        ParamError::InField {
            field: path,
            source: Box::new(source),
        }
    })?;
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

/// Substitutes every string in `value`; on error `path` names the field it was in
/// (`command`, `args[1]`, `env.HOME`).
fn substitute_strings(
    value: &mut serde_json::Value,
    substituter: &mut Substituter<'_>,
    path: &mut String,
) -> Result<(), ParamError> {
    let len = path.len();
    match value {
        serde_json::Value::String(s) => *s = substituter.substitute(s)?,
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                substitute_strings(item, substituter, path)?;
                path.truncate(len);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                substitute_strings(item, substituter, path)?;
                path.truncate(len);
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
    fn hostile_parameters_fail_naming_the_field() {
        let none = BTreeMap::new();
        let doubling = |links: usize| {
            let mut values = vec![LocalParam {
                prop: "a0".into(),
                direct: ParamDirection::In,
                kind: "VARCHAR".into(),
                value: "x".into(),
            }];
            for i in 1..=links {
                values.push(LocalParam {
                    prop: format!("a{i}"),
                    direct: ParamDirection::In,
                    kind: "VARCHAR".into(),
                    value: format!("${{a{0}}}${{a{0}}}", i - 1),
                });
            }
            values
        };
        let t = task("echo ${a40}", doubling(40));
        let wf = workflow(t.clone());
        let err = task_params(&wf, &t, &none, &none, &none, &ctx()).unwrap_err();
        assert!(
            matches!(&err, ParamError::InField { field, source }
                if field == "command" && matches!(**source, ParamError::OutputTooLarge { .. })),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("field `command`: the value of parameter `a20`")
        );

        // The limit covers the task as a whole: twelve fields of 128 KiB each pass one by
        // one but not together.
        let mut t = task("true", doubling(17));
        let list: Vec<serde_json::Value> = (0..12).map(|_| "${a17}".into()).collect();
        t.params.insert("list".into(), list.into());
        let wf = workflow(t.clone());
        let err = task_params(&wf, &t, &none, &none, &none, &ctx()).unwrap_err();
        assert!(err.to_string().starts_with("field `list["), "{err}");

        let deep = format!("echo $[yyyyMMdd+{}1]", "(".repeat(100_000));
        let t = task(&deep, vec![]);
        let wf = workflow(t.clone());
        let err = task_params(&wf, &t, &none, &none, &none, &ctx()).unwrap_err();
        assert!(
            matches!(err.root(), ParamError::ExpressionTooDeep { .. }),
            "{err}"
        );
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
