//! Each supported task type's `taskParams` as the fields of its Shoal plugin:
//!
//! | DolphinScheduler | Shoal |
//! | --- | --- |
//! | SHELL `rawScript` | Shell `command` |
//! | PYTHON `rawScript` | Python `definition` |
//! | SQL `datasource` (id), `sql`, `sqlType`, `preStatements`, `postStatements`, `displayRows`, `segmentSeparator` | Sql `datasource_name`, `sql`, `sql_type` ("0" query, "1" not), `pre_statements`, `post_statements`, `display_rows`, `segment_separator` |
//! | CONDITIONS `dependence` {relation, dependTaskList[{relation, dependItemList[{depTaskCode, status}]}]}, `conditionResult` {successNode, failedNode} | Condition `op`, `groups[{op, groups[{task, flag}]}]`, `success_task`, `failed_task` |
//! | SWITCH `switchResult` {dependTaskList[{condition, nextNode}], nextNode} | Switch `condition[{task, condition}]`, the default branch last without `condition` |
//! | SUB_PROCESS `processDefinitionCode` / SUB_WORKFLOW `workflowDefinitionCode` | SubWorkflow `workflow_name` |
//! | HTTP `url`, `httpMethod`, `httpParams` [{prop, httpParametersType, value}], `httpBody`, `httpCheckCondition`, `condition`, `connectTimeout`, `socketTimeout` | Http `url`, `http_method`, `http_params`, `http_body`, `http_check_condition`, `condition`, `connect_timeout`, `socket_timeout` |
//! | FLINK / FLINK_STREAM `mainClass`, `mainJar` {resourceName}, `mainArgs`, `parallelism`, `appName`, `programType` | Flink `main_class`, `main_package`, `main_args`, `parallelism`, `app_name`, `program_type`; FLINK_STREAM is `run_mode: STREAM`; the YARN fields (`deployMode`, memories, `slot`, `taskManager`, `flinkVersion`, `yarnQueue`, `others`) are warnings |
//! | DEPENDENT `dependence` {relation, dependTaskList[{relation, dependItemList[{definitionCode, depTaskCode, dateValue}]}]} | Dependent `dependence` {op, groups[{op, groups[{workflow_name, dependent_task_name, dependent_date}]}]} |
//!
//! Codes become the names of the tasks and workflows they stand for; one that is not in
//! the export is a problem naming the task, the field and the code.

use serde_json::Value;

use crate::fields::{Obj, Report, code_of, is_unset, show};
use crate::task::TypeOut;
use crate::yaml::{MapBuilder, Y};
use crate::{Index, Options, Problem};

/// The dependent date cycles (`dateValue`) Shoal's Dependent plugin knows, in
/// DolphinScheduler's spelling (`plugins/dependent/src/cycle.rs`). DolphinScheduler's
/// UI also offers `thisMonthBegin`, which has no counterpart there yet.
const DATE_VALUES: &[&str] = &[
    "currentHour",
    "last1Hour",
    "last2Hours",
    "last3Hours",
    "last24Hours",
    "today",
    "last1Days",
    "last2Days",
    "last3Days",
    "last7Days",
    "thisWeek",
    "lastWeek",
    "lastMonday",
    "lastTuesday",
    "lastWednesday",
    "lastThursday",
    "lastFriday",
    "lastSaturday",
    "lastSunday",
    "thisMonth",
    "lastMonth",
    "lastMonthBegin",
    "lastMonthEnd",
];

/// DolphinScheduler's date cycles that Shoal's Dependent cannot wait for.
const DATE_VALUES_UNSUPPORTED: &[&str] = &["thisMonthBegin", "thisMonthEnd"];

/// Convert the parameters of a task of DolphinScheduler type `ds_type`.
pub(crate) fn convert(
    ds_type: &str,
    p: &mut Obj<'_>,
    pos: usize,
    index: &Index,
    options: &Options,
    r: &mut Report,
) -> TypeOut {
    match ds_type {
        "SHELL" => script(p, r, "Shell", "command"),
        "PYTHON" => script(p, r, "Python", "definition"),
        "SQL" => sql(p, options, r),
        "CONDITIONS" => conditions(p, pos, index, r),
        "SWITCH" => switch(p, pos, index, r),
        "SUB_PROCESS" | "SUB_WORKFLOW" => sub_workflow(p, index, r),
        "DEPENDENT" => dependent(p, index, r),
        "HTTP" => http(p, r),
        "FLINK" => flink(p, r, "BATCH"),
        "FLINK_STREAM" => flink(p, r, "STREAM"),
        other => TypeOut {
            unsupported: vec![format!(
                "DolphinScheduler task type {other} is not supported"
            )],
            ..TypeOut::default()
        },
    }
}

/// SHELL and PYTHON: the script.
fn script(p: &mut Obj<'_>, r: &mut Report, task_type: &'static str, field: &str) -> TypeOut {
    let mut out = TypeOut {
        task_type,
        ..TypeOut::default()
    };
    match p.text(r, "rawScript").filter(|s| !s.trim().is_empty()) {
        Some(s) => out.fields.put(field, Y::Str(s)),
        None => r.problems.push(p.ctx.missing(&p.field("rawScript"))),
    }
    out
}

/// HTTP: the request and its check, field by field.
fn http(p: &mut Obj<'_>, r: &mut Report) -> TypeOut {
    let mut out = TypeOut {
        task_type: "Http",
        ..TypeOut::default()
    };
    match p.word(r, "url") {
        Some(url) => out.fields.put("url", Y::Str(url)),
        None => r.problems.push(p.ctx.missing(&p.field("url"))),
    }
    if let Some(m) = p.choice(r, "httpMethod", &["GET", "POST", "HEAD", "PUT", "DELETE"]) {
        out.fields.put("http_method", Y::str(m));
    }
    let mut params = Vec::new();
    for (i, item) in p.list(r, "httpParams").into_iter().enumerate() {
        let Value::Object(map) = item else {
            r.problems.push(p.ctx.invalid(
                &format!("{}.{i}", p.field("httpParams")),
                format!("must be an object, not {}", show(item)),
            ));
            continue;
        };
        let mut q = Obj::new(
            map,
            p.ctx.clone(),
            format!("{}.{i}.", p.field("httpParams")),
        );
        let prop = q.text(r, "prop").unwrap_or_default();
        let value = q.text(r, "value").unwrap_or_default();
        let kind = q.choice(r, "httpParametersType", &["PARAMETER", "BODY", "HEADERS"]);
        q.finish(r);
        params.push(Y::Map(vec![
            ("prop".into(), Y::Str(prop)),
            ("value".into(), Y::Str(value)),
            (
                "httpParametersType".into(),
                Y::str(kind.unwrap_or("PARAMETER")),
            ),
        ]));
    }
    if !params.is_empty() {
        out.fields.put("http_params", Y::Seq(params));
    }
    if let Some(body) = p.text(r, "httpBody").filter(|b| !b.is_empty()) {
        out.fields.put("http_body", Y::Str(body));
    }
    if let Some(c) = p.choice(
        r,
        "httpCheckCondition",
        &[
            "STATUS_CODE_DEFAULT",
            "STATUS_CODE_CUSTOM",
            "BODY_CONTAINS",
            "BODY_NOT_CONTAINS",
        ],
    ) {
        out.fields.put("http_check_condition", Y::str(c));
    }
    if let Some(c) = p.text(r, "condition").filter(|c| !c.is_empty()) {
        out.fields.put("condition", Y::Str(c));
    }
    for (ds, shoal) in [
        ("connectTimeout", "connect_timeout"),
        ("socketTimeout", "socket_timeout"),
    ] {
        if let Some(ms) = p.count(r, ds) {
            out.fields.put(shoal, Y::Int(ms.into()));
        }
    }
    out
}

/// FLINK and FLINK_STREAM: a jar on a session cluster (the operator's default cluster).
fn flink(p: &mut Obj<'_>, r: &mut Report, run_mode: &'static str) -> TypeOut {
    let mut out = TypeOut {
        task_type: "Flink",
        ..TypeOut::default()
    };
    match p.word(r, "mainClass") {
        Some(c) => out.fields.put("main_class", Y::Str(c)),
        None => r.problems.push(p.ctx.missing(&p.field("mainClass"))),
    }
    let jar = p.object(r, "mainJar").and_then(|mut jar| {
        let name = jar.word(r, "resourceName");
        jar.raw("id");
        jar.finish(r);
        name
    });
    match jar {
        Some(j) => out.fields.put("main_package", Y::Str(j)),
        None => r.problems.push(p.ctx.missing(&format!(
            "{} (a jar under the operator's Flink resource-dir)",
            p.field("mainJar.resourceName")
        ))),
    }
    if let Some(a) = p.text(r, "mainArgs").filter(|a| !a.trim().is_empty()) {
        out.fields.put("main_args", Y::Str(a));
    }
    if let Some(n) = p.count(r, "parallelism").filter(|n| *n > 0) {
        out.fields.put("parallelism", Y::Int(n.into()));
    }
    if let Some(a) = p.word(r, "appName") {
        out.fields.put("app_name", Y::Str(a));
    }
    match p.choice(r, "programType", &["JAVA", "SCALA", "PYTHON", "SQL"]) {
        Some(t @ ("JAVA" | "SCALA")) => out.fields.put("program_type", Y::str(t)),
        Some(t) => out.unsupported.push(format!(
            "FLINK programType {t} (a session cluster runs JAVA and SCALA jars through its REST API)"
        )),
        None => {}
    }
    if run_mode == "STREAM" {
        out.fields.put("run_mode", Y::str(run_mode));
    }
    for key in [
        "deployMode",
        "flinkVersion",
        "jobManagerMemory",
        "taskManagerMemory",
        "slot",
        "taskManager",
        "yarnQueue",
        "queue",
        "others",
        "initScript",
        "rawScript",
    ] {
        p.unsupported(
            r,
            key,
            |_| false,
            "sizes a YARN or application deployment; Shoal submits to a session cluster",
        );
    }
    out
}

fn sql(p: &mut Obj<'_>, options: &Options, r: &mut Report) -> TypeOut {
    let mut out = TypeOut {
        task_type: "Sql",
        ..TypeOut::default()
    };
    let kind = p.word(r, "type").unwrap_or_else(|| "?".into());
    match p.int(r, "datasource") {
        Some(id) => {
            let name = options.datasources.get(&id).cloned().unwrap_or_else(|| {
                let name = format!("datasource-{id}");
                r.warn(
                    &p.ctx,
                    format!(
                        "DolphinScheduler datasource id {id} ({kind}) is written as datasource_name `{name}`: the export names datasources by id only; create a Shoal datasource of that name, or map the id on import (`shoal import --datasource {id}=NAME`, `datasources={id}=NAME` on the API)"
                    ),
                );
                name
            });
            out.fields.put("datasource_name", Y::Str(name));
        }
        None => r.problems.push(p.ctx.missing(&p.field("datasource"))),
    }
    match p.text(r, "sql").filter(|s| !s.trim().is_empty()) {
        Some(s) => out.fields.put("sql", Y::Str(s)),
        None => r.problems.push(p.ctx.missing(&p.field("sql"))),
    }
    // `sqlType` is SqlType's ordinal (0 QUERY, 1 NON_QUERY), a number or text.
    if let Some(v) = p.raw("sqlType") {
        let t = match v {
            Value::Number(n) => n.as_i64().map(|n| n.to_string()),
            Value::String(s) => Some(s.trim().to_ascii_uppercase()),
            _ => None,
        };
        match t.as_deref() {
            Some("0" | "QUERY" | "SELECT") => out.fields.put("sql_type", Y::str("0")),
            Some("1" | "NON_QUERY" | "NOT_SELECT" | "NON_SELECT") => {
                out.fields.put("sql_type", Y::str("1"))
            }
            Some("") => {}
            _ => r.problems.push(p.ctx.invalid(
                &p.field("sqlType"),
                format!("`{}` is not 0 (QUERY) or 1 (NON_QUERY)", show(v)),
            )),
        }
    }
    for (ds, shoal) in [
        ("preStatements", "pre_statements"),
        ("postStatements", "post_statements"),
    ] {
        let statements: Vec<String> = p
            .list(r, ds)
            .into_iter()
            .filter(|v| !is_unset(v))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        if !statements.is_empty() {
            out.fields.put(shoal, Y::strs(statements));
        }
    }
    if let Some(n) = p.int(r, "displayRows") {
        out.fields.put("display_rows", Y::Int(n));
    }
    if let Some(s) = p.text(r, "segmentSeparator").filter(|s| !s.is_empty()) {
        out.fields.put("segment_separator", Y::Str(s));
    }
    if p.bool(r, "sendEmail") == Some(true) {
        let title = p.text(r, "title").unwrap_or_default();
        let group = p.int(r, "groupId").unwrap_or(0);
        r.not_supported(
            &p.ctx,
            format!(
                "`taskParams.sendEmail` = true (mailing the query result, title `{title}`, alert group {group}); configure alerts with Shoal's alert channels"
            ),
        );
    }
    // Only meaningful with sendEmail, which is reported above.
    p.raw("title");
    p.raw("groupId");
    p.raw("showType");
    p.unsupported(
        r,
        "udfs",
        |_| false,
        "Hive UDFs from DolphinScheduler's resource center",
    );
    p.unsupported(
        r,
        "connParams",
        |_| false,
        "extra connection parameters; set them on the Shoal datasource",
    );
    p.unsupported(
        r,
        "limit",
        |v| code_of(v).is_some_and(|n| n <= 0),
        "a cap on the rows fetched; `display_rows` only limits what is logged",
    );
    out
}

/// A code that must be a task of workflow `pos`, as that task's name.
fn task_name(
    p: &Obj<'_>,
    field: &str,
    v: &Value,
    pos: usize,
    index: &Index,
    r: &mut Report,
) -> Option<String> {
    let Some(code) = code_of(v) else {
        r.problems.push(
            p.ctx
                .invalid(field, format!("`{}` is not a task code", show(v))),
        );
        return None;
    };
    match index.tasks[pos].get(&code) {
        Some(name) => Some(name.clone()),
        None => {
            r.problems.push(unknown(p, field, "task", code));
            None
        }
    }
}

fn unknown(p: &Obj<'_>, field: &str, kind: &'static str, code: i64) -> Problem {
    Problem::UnknownReference {
        workflow: p.ctx.workflow.clone(),
        task: p.ctx.task.clone(),
        field: field.to_owned(),
        kind,
        code,
    }
}

/// DependentRelation: AND (the default) or OR.
fn relation(o: &mut Obj<'_>, r: &mut Report) -> &'static str {
    o.choice(r, "relation", &["AND", "OR"]).unwrap_or("AND")
}

/// The objects of a list field, each with its path; other items are problems.
fn objects<'a>(o: &mut Obj<'a>, r: &mut Report, key: &str) -> Vec<Obj<'a>> {
    let field = o.field(key);
    let ctx = o.ctx.clone();
    let mut out = Vec::new();
    for (i, item) in o.list(r, key).into_iter().enumerate() {
        match item {
            Value::Object(map) => out.push(Obj::new(map, ctx.clone(), format!("{field}[{i}]."))),
            other if is_unset(other) => {}
            other => r.problems.push(ctx.invalid(
                &format!("{field}[{i}]"),
                format!("must be an object, not {}", show(other)),
            )),
        }
    }
    out
}

fn conditions(p: &mut Obj<'_>, pos: usize, index: &Index, r: &mut Report) -> TypeOut {
    let mut out = TypeOut {
        task_type: "Condition",
        ..TypeOut::default()
    };
    let mut groups = Vec::new();
    let mut op = "AND";
    match p.object(r, "dependence") {
        Some(mut dep) => {
            op = relation(&mut dep, r);
            for mut group in objects(&mut dep, r, "dependTaskList") {
                let group_op = relation(&mut group, r);
                let mut items = Vec::new();
                for mut item in objects(&mut group, r, "dependItemList") {
                    let task_field = item.field("depTaskCode");
                    let task = match item.raw("depTaskCode") {
                        Some(v) => task_name(&item, &task_field, v, pos, index, r),
                        None => {
                            r.problems.push(item.ctx.missing(&task_field));
                            None
                        }
                    };
                    let flag = match item.word(r, "status").map(|s| s.to_ascii_uppercase()) {
                        Some(s) if s == "SUCCESS" => Some(true),
                        Some(s) if s == "FAILURE" => Some(false),
                        Some(other) => {
                            r.problems.push(item.ctx.invalid(
                                &item.field("status"),
                                format!("`{other}` is not SUCCESS or FAILURE"),
                            ));
                            None
                        }
                        None => {
                            r.problems.push(item.ctx.missing(&item.field("status")));
                            None
                        }
                    };
                    item.finish(r);
                    if let (Some(task), Some(flag)) = (task, flag) {
                        let mut m = MapBuilder::default();
                        m.put("task", Y::Str(task));
                        m.put("flag", Y::Bool(flag));
                        items.push(m.build());
                    }
                }
                group.finish(r);
                let mut g = MapBuilder::default();
                g.put("op", Y::str(group_op));
                g.put("groups", Y::Seq(items));
                groups.push(g.build());
            }
            dep.finish(r);
        }
        None => r.problems.push(p.ctx.missing(&p.field("dependence"))),
    }
    let branches = |o: &mut Obj<'_>, key: &str, r: &mut Report| -> Vec<String> {
        let field = o.field(key);
        o.list(r, key)
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !is_unset(v))
            .filter_map(|(i, v)| task_name(o, &format!("{field}[{i}]"), v, pos, index, r))
            .collect()
    };
    let (mut success, mut failed) = (Vec::new(), Vec::new());
    if let Some(mut result) = p.object(r, "conditionResult") {
        success = branches(&mut result, "successNode", r);
        failed = branches(&mut result, "failedNode", r);
        result.finish(r);
    }
    out.fields.put("op", Y::str(op));
    out.fields.put("groups", Y::Seq(groups));
    if !success.is_empty() {
        out.fields.put("success_task", Y::strs(success));
    }
    if !failed.is_empty() {
        out.fields.put("failed_task", Y::strs(failed));
    }
    out
}

fn switch(p: &mut Obj<'_>, pos: usize, index: &Index, r: &mut Report) -> TypeOut {
    let mut out = TypeOut {
        task_type: "Switch",
        ..TypeOut::default()
    };
    let Some(mut result) = p.object(r, "switchResult") else {
        r.problems.push(p.ctx.missing(&p.field("switchResult")));
        return out;
    };
    let mut branches = Vec::new();
    for mut item in objects(&mut result, r, "dependTaskList") {
        let condition = item.text(r, "condition").filter(|c| !c.trim().is_empty());
        let next = next_node(&mut item, pos, index, r, &mut out.unsupported);
        if condition.is_none() {
            r.problems.push(item.ctx.missing(&item.field("condition")));
        }
        if next.is_none() && item.raw("nextNode").is_none() {
            r.problems.push(item.ctx.missing(&item.field("nextNode")));
        }
        item.finish(r);
        if let (Some(condition), Some(task)) = (condition, next) {
            let mut m = MapBuilder::default();
            m.put("task", Y::Str(task));
            m.put("condition", Y::Str(condition));
            branches.push(m.build());
        }
    }
    // The default branch, taken when no condition holds, has no condition in Shoal.
    if let Some(task) = next_node(&mut result, pos, index, r, &mut out.unsupported) {
        let mut m = MapBuilder::default();
        m.put("task", Y::Str(task));
        branches.push(m.build());
    }
    result.finish(r);
    if branches.is_empty() && out.unsupported.is_empty() {
        r.problems
            .push(p.ctx.missing(&p.field("switchResult.dependTaskList")));
    }
    out.fields.put("condition", Y::Seq(branches));
    out
}

/// A switch branch's `nextNode`: one task code (3.3), or a list of them (3.0 to 3.2,
/// holding one).
fn next_node(
    o: &mut Obj<'_>,
    pos: usize,
    index: &Index,
    r: &mut Report,
    unsupported: &mut Vec<String>,
) -> Option<String> {
    let field = o.field("nextNode");
    let codes: Vec<&Value> = match o.raw("nextNode")? {
        Value::Array(items) => items.iter().filter(|v| !is_unset(v)).collect(),
        v if is_unset(v) => Vec::new(),
        v => vec![v],
    };
    match codes.as_slice() {
        [] => None,
        [one] => task_name(o, &field, one, pos, index, r),
        many => {
            unsupported.push(format!(
                "`{field}` leads to {} tasks (Shoal's Switch follows one task per branch)",
                many.len()
            ));
            None
        }
    }
}

fn sub_workflow(p: &mut Obj<'_>, index: &Index, r: &mut Report) -> TypeOut {
    let mut out = TypeOut {
        task_type: "SubWorkflow",
        ..TypeOut::default()
    };
    let found = ["processDefinitionCode", "workflowDefinitionCode"]
        .into_iter()
        .find_map(|k| p.int(r, k).filter(|c| *c != 0).map(|c| (k, c)));
    let Some((key, code)) = found else {
        r.problems
            .push(p.ctx.missing(&p.field("processDefinitionCode")));
        return out;
    };
    // Read the other spelling too, so it is not reported as unknown.
    p.raw("processDefinitionCode");
    p.raw("workflowDefinitionCode");
    match index.workflows.get(&code) {
        Some(&target) => {
            let name = index.names[target].clone();
            out.fields.put("workflow_name", Y::str(&name));
            out.children.push(name);
        }
        None => r.problems.push(unknown(p, &p.field(key), "workflow", code)),
    }
    out
}

fn dependent(p: &mut Obj<'_>, index: &Index, r: &mut Report) -> TypeOut {
    let mut out = TypeOut {
        task_type: "Dependent",
        ..TypeOut::default()
    };
    let Some(mut dep) = p.object(r, "dependence") else {
        r.problems.push(p.ctx.missing(&p.field("dependence")));
        return out;
    };
    let op = relation(&mut dep, r);
    let mut groups = Vec::new();
    for mut group in objects(&mut dep, r, "dependTaskList") {
        let group_op = relation(&mut group, r);
        let mut items = Vec::new();
        for mut item in objects(&mut group, r, "dependItemList") {
            if let Some(y) = dependent_item(&mut item, index, r, &mut out) {
                items.push(y);
            }
            item.finish(r);
        }
        group.finish(r);
        let mut g = MapBuilder::default();
        g.put("op", Y::str(group_op));
        g.put("groups", Y::Seq(items));
        groups.push(g.build());
    }
    if groups.is_empty() {
        r.problems
            .push(dep.ctx.missing(&dep.field("dependTaskList")));
    }
    dep.unsupported(
        r,
        "checkInterval",
        |v| code_of(v) == Some(10),
        "how often, in seconds, to look again; Shoal's Dependent looks as its host polls it",
    );
    if dep.choice(
        r,
        "failurePolicy",
        &["DEPENDENT_FAILURE_FAILURE", "DEPENDENT_FAILURE_WAITING"],
    ) == Some("DEPENDENT_FAILURE_WAITING")
    {
        let minutes = dep.int(r, "failureWaitingTime").unwrap_or(0);
        r.not_supported(
            &dep.ctx,
            format!(
                "`{}` = DEPENDENT_FAILURE_WAITING (waiting {minutes} more minutes after a dependency failed); Shoal's Dependent fails at once, and the task's `timeout` bounds its wait",
                dep.field("failurePolicy")
            ),
        );
    }
    // Only meaningful with DEPENDENT_FAILURE_WAITING, reported above.
    dep.raw("failureWaitingTime");
    dep.finish(r);
    let mut d = MapBuilder::default();
    d.put("op", Y::str(op));
    d.put("groups", Y::Seq(groups));
    out.fields.put("dependence", d.build());
    out
}

/// One dependency: a workflow of this export (and one of its tasks, or all of it) over
/// a date cycle.
fn dependent_item(
    item: &mut Obj<'_>,
    index: &Index,
    r: &mut Report,
    out: &mut TypeOut,
) -> Option<Y> {
    let def_field = item.field("definitionCode");
    let target = match item.int(r, "definitionCode").filter(|c| *c != 0) {
        Some(code) => match index.workflows.get(&code) {
            Some(&t) => Some(t),
            None => {
                r.problems.push(unknown(item, &def_field, "workflow", code));
                None
            }
        },
        None => {
            r.problems.push(item.ctx.missing(&def_field));
            None
        }
    };
    // 0 is the workflow's own result (DEPENDENT_ON_WORKFLOW), -1 all of its tasks
    // (3.2's "ALL"): Shoal's Dependent has one notion of the whole workflow, the run's.
    let task_code = item.int(r, "depTaskCode").unwrap_or(0);
    let task = match (target, task_code) {
        (_, 0) => None,
        (_, -1) => Some("ALL".to_owned()),
        (Some(t), code) => match index.tasks[t].get(&code) {
            Some(name) => Some(name.clone()),
            None => {
                let field = item.field("depTaskCode");
                r.problems.push(unknown(item, &field, "task", code));
                return None;
            }
        },
        (None, _) => None,
    };
    let date_field = item.field("dateValue");
    let date = match item.word(r, "dateValue") {
        Some(d) => match DATE_VALUES.iter().find(|v| v.eq_ignore_ascii_case(&d)) {
            Some(v) => Some(*v),
            None if DATE_VALUES_UNSUPPORTED
                .iter()
                .any(|v| v.eq_ignore_ascii_case(&d)) =>
            {
                out.unsupported.push(format!(
                    "`{date_field}` = {d} (Shoal's Dependent has no such date cycle)"
                ));
                None
            }
            None => {
                r.problems.push(item.ctx.invalid(
                    &date_field,
                    format!(
                        "`{d}` is not a date cycle (expected one of {})",
                        DATE_VALUES.join(", ")
                    ),
                ));
                None
            }
        },
        None => {
            r.problems.push(item.ctx.missing(&date_field));
            None
        }
    };
    // `cycle` (month, week, day, hour) only groups `dateValue` in the UI; the project is
    // this export's; `dependentType` repeats what `depTaskCode` says; `status` is a
    // running instance's.
    item.raw("cycle");
    item.raw("projectCode");
    item.raw("dependentType");
    item.raw("status");
    if item.bool(r, "parameterPassing") == Some(true) {
        r.not_supported(
            &item.ctx,
            format!(
                "`{}` = true (passing the dependency's parameters on); Shoal's Dependent passes none",
                item.field("parameterPassing")
            ),
        );
    }
    let target = target?;
    let date = date?;
    let name = index.names[target].clone();
    let mut m = MapBuilder::default();
    m.put("workflow_name", Y::str(&name));
    if let Some(t) = task {
        m.put("dependent_task_name", Y::Str(t));
    }
    m.put("dependent_date", Y::str(date));
    out.depends_on.push(name);
    Some(m.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cycles taken as supported are the ones the Dependent plugin parses, and the
    /// ones refused are not (its parser matches DolphinScheduler's names lower-cased).
    #[test]
    fn date_cycles_match_the_dependent_plugin() {
        let plugin = include_str!("../../../plugins/dependent/src/cycle.rs");
        for v in DATE_VALUES {
            let key = format!("\"{}\"", v.to_ascii_lowercase());
            assert!(plugin.contains(&key), "{v} is not in the plugin's parser");
        }
        for v in DATE_VALUES_UNSUPPORTED {
            let key = format!("\"{}\"", v.to_ascii_lowercase());
            assert!(
                !plugin.contains(&key),
                "{v} is in the plugin's parser now: move it to DATE_VALUES"
            );
        }
    }
}
