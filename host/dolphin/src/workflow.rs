//! One workflow: its definition's fields (name, description, global parameters, release
//! state, execution type), its relations as each task's `deps`, its schedule, and the
//! document that holds them with the converted tasks.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::fields::{Ctx, Obj, Report, code_of, is_unset, show};
use crate::input::{RawWorkflow, Shape};
use crate::yaml::{MapBuilder, Y};
use crate::{ImportedSchedule, Index, Options, RunMode, schedule, task};

/// A converted workflow, before its YAML is written.
pub(crate) struct Converted {
    pub name: String,
    pub code: Option<i64>,
    pub doc: Y,
    pub schedule: Option<ImportedSchedule>,
    pub online: bool,
    pub run_mode: RunMode,
    pub children: Vec<String>,
    pub depends_on: Vec<String>,
}

/// DolphinScheduler's `Property.type` (`DataType`): the types a parameter may have.
pub(crate) const DATA_TYPES: &[&str] = &[
    "VARCHAR",
    "INTEGER",
    "LONG",
    "FLOAT",
    "DOUBLE",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "BOOLEAN",
    "LIST",
    "FILE",
];

pub(crate) fn convert(
    raw: &RawWorkflow,
    pos: usize,
    index: &Index,
    options: &Options,
    r: &mut Report,
) -> Option<Converted> {
    let label = index.names[pos].clone();
    let ctx = Ctx::workflow(&label);
    let mut def = Obj::new(&raw.definition, ctx.clone(), raw.definition_prefix);

    let name = def.word(r, "name");
    if name.is_none() {
        r.problems.push(ctx.missing(&def.field("name")));
    }
    let code = def.int(r, "code").filter(|c| *c != 0);
    if code.is_none() && raw.shape != Shape::ApiBody {
        r.problems.push(ctx.missing(&def.field("code")));
    }
    let description = def.text(r, "description").unwrap_or_default();
    let online = def.choice(r, "releaseState", &["OFFLINE", "ONLINE"]) == Some("ONLINE");
    let run_mode = match def.choice(
        r,
        "executionType",
        &[
            "PARALLEL",
            "SERIAL_WAIT",
            "SERIAL_DISCARD",
            "SERIAL_PRIORITY",
        ],
    ) {
        Some("SERIAL_WAIT") => RunMode::SerialWait,
        Some("SERIAL_DISCARD") => RunMode::SerialDiscard,
        Some("SERIAL_PRIORITY") => RunMode::SerialPriority,
        _ => RunMode::Parallel,
    };
    // Not a warning: the run mode is carried over beside the YAML
    // (`ImportedWorkflow::run_mode`), which is where Shoal keeps it.
    let global_params = global_params(&mut def, r);
    def.unsupported(
        r,
        "timeout",
        is_zero,
        "a whole-workflow timeout in minutes; set `timeout` on tasks instead",
    );
    def.unsupported(
        r,
        "flag",
        |v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("YES")) || v == 1,
        "an unavailable definition; it is imported as any other",
    );
    def.unsupported(
        r,
        "warningGroupId",
        is_zero,
        "alert groups; configure alerts with Shoal's alert channels",
    );
    def.unsupported(
        r,
        "tenantCode",
        |v| v.as_str() == Some("default"),
        "tenants (OS users per workflow); Shoal runs every task's processes as its sandbox's unprivileged user",
    );
    def.unsupported(
        r,
        "tenantId",
        |v| v.as_i64().is_some_and(|n| n <= 0),
        "tenants (OS users per workflow); Shoal runs every task's processes as its sandbox's unprivileged user",
    );
    def.finish(r);
    Obj::new(&raw.extra, ctx.clone(), "").finish(r);

    let deps = relations(raw, code, index, pos, &ctx, r);
    let schedule = raw
        .schedule
        .as_ref()
        .and_then(|s| schedule::convert(s, code, &ctx, options, r));

    let mut tasks = Vec::with_capacity(raw.tasks.len());
    let mut children = Vec::new();
    let mut depends_on = Vec::new();
    let no_deps = Vec::new();
    for (i, t) in raw.tasks.iter().enumerate() {
        let Value::Object(map) = t else {
            r.problems.push(ctx.invalid(
                &format!("{}[{i}]", raw.tasks_field),
                format!("a task must be an object, not {}", show(t)),
            ));
            continue;
        };
        let task_deps = map
            .get("code")
            .and_then(code_of)
            .and_then(|c| deps.get(&c))
            .unwrap_or(&no_deps);
        let field = format!("{}[{i}]", raw.tasks_field);
        if let Some(out) = task::convert(map, &field, task_deps, pos, index, options, &ctx, r) {
            tasks.push(out.doc);
            for c in out.children {
                if !children.contains(&c) {
                    children.push(c);
                }
            }
            for d in out.depends_on {
                if d != label && !depends_on.contains(&d) {
                    depends_on.push(d);
                }
            }
        }
    }

    let name = name?;
    let mut wf = MapBuilder::default();
    wf.put("name", Y::str(&name));
    if !description.is_empty() {
        wf.put("description", Y::str(description));
    }
    if let Some(project) = &options.project {
        wf.put("project", Y::str(project));
    }
    if !global_params.is_empty() {
        wf.put("param", Y::Map(global_params));
    }
    let mut imported = None;
    if let Some(s) = schedule {
        for (k, v) in s.entries {
            wf.put(k, v);
        }
        if let Some(strategy) = s.failure_strategy {
            wf.put("failure_strategy", Y::str(strategy));
        }
        imported = Some(s.imported);
    }
    let mut doc = MapBuilder::default();
    doc.put("workflow", wf.build());
    doc.put("tasks", Y::Seq(tasks));
    let doc = doc.build();
    references_warning(&doc, &ctx, r);
    Some(Converted {
        name,
        code,
        doc,
        schedule: imported,
        online,
        run_mode,
        children,
        depends_on,
    })
}

pub(crate) fn is_zero(v: &Value) -> bool {
    code_of(v) == Some(0)
}

/// `globalParams`: DolphinScheduler's `[{prop, direct, type, value}]` (parsed from its
/// string by `input`) as Shoal's `param` mapping of names to values.
fn global_params(def: &mut Obj<'_>, r: &mut Report) -> Vec<(String, Y)> {
    let field = def.field("globalParams");
    let ctx = def.ctx.clone();
    let mut out: Vec<(String, Y)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut typed = Vec::new();
    for (i, p) in def.list(r, "globalParams").into_iter().enumerate() {
        let Value::Object(map) = p else {
            r.problems.push(ctx.invalid(
                &format!("{field}[{i}]"),
                "must be an object {prop, direct, type, value}",
            ));
            continue;
        };
        let mut prop = Obj::new(map, ctx.clone(), format!("{field}[{i}]."));
        let Some(name) = prop.word(r, "prop") else {
            r.problems.push(ctx.missing(&prop.field("prop")));
            continue;
        };
        let value = prop.text(r, "value").unwrap_or_default();
        let direct = prop.choice(r, "direct", &["IN", "OUT"]).unwrap_or("IN");
        let kind = prop.choice(r, "type", DATA_TYPES).unwrap_or("VARCHAR");
        prop.finish(r);
        if direct == "OUT" {
            r.not_supported(
                &ctx,
                format!("global parameter `{name}` is OUT (a workflow's OUT parameters are set by its tasks' OUT parameters in Shoal); it is imported as an ordinary global parameter"),
            );
        }
        if kind != "VARCHAR" {
            typed.push(format!("{name} ({kind})"));
        }
        if !seen.insert(name.clone()) {
            r.problems.push(ctx.invalid(
                &format!("{field}[{i}].prop"),
                format!("a second global parameter named `{name}`"),
            ));
            continue;
        }
        out.push((name, Y::Str(value)));
    }
    if !typed.is_empty() {
        r.not_supported(
            &ctx,
            format!(
                "types of global parameters {} (Shoal's global parameters are text; their values are kept as written)",
                typed.join(", ")
            ),
        );
    }
    out
}

/// Each task's upstream tasks by name, from the relations (`preTaskCode` 0 marks a
/// task without upstream).
fn relations(
    raw: &RawWorkflow,
    code: Option<i64>,
    index: &Index,
    pos: usize,
    ctx: &Ctx,
    r: &mut Report,
) -> HashMap<i64, Vec<String>> {
    let names = &index.tasks[pos];
    let mut deps: HashMap<i64, Vec<String>> = HashMap::new();
    // Relations already taken, so that a repeated one is not a second dependency.
    let mut taken: HashSet<(i64, i64)> = HashSet::new();
    for (i, rel) in raw.relations.iter().enumerate() {
        let field = format!("{}[{i}]", raw.relations_field);
        let Value::Object(map) = rel else {
            r.problems.push(ctx.invalid(
                &field,
                format!("a relation must be an object, not {}", show(rel)),
            ));
            continue;
        };
        let mut o = Obj::new(map, ctx.clone(), format!("{field}."));
        let pre = o.int(r, "preTaskCode").unwrap_or(0);
        let post = o.int(r, "postTaskCode");
        for key in ["processDefinitionCode", "workflowDefinitionCode"] {
            if let (Some(own), Some(theirs)) = (code, o.int(r, key).filter(|c| *c != 0))
                && own != theirs
            {
                r.problems.push(ctx.invalid(
                    &o.field(key),
                    format!("the relation belongs to workflow code {theirs}, not this one ({own})"),
                ));
            }
        }
        // The relation's name is a label nobody sees (DolphinScheduler writes "").
        o.raw("name");
        match o.choice(r, "conditionType", &["NONE", "JUDGE", "DELAY"]) {
            None | Some("NONE") => {}
            Some(other) => r.not_supported(
                ctx,
                format!(
                    "`{}` = {other} (deprecated in DolphinScheduler, which ignores it)",
                    o.field("conditionType")
                ),
            ),
        }
        if let Some(p) = o.raw("conditionParams")
            && !is_unset(p)
        {
            r.not_supported(
                ctx,
                format!(
                    "`{}` = {} (deprecated in DolphinScheduler, which ignores it)",
                    o.field("conditionParams"),
                    show(p)
                ),
            );
        }
        o.finish(r);
        let Some(post) = post.filter(|c| *c != 0) else {
            r.problems
                .push(ctx.missing(&format!("{field}.postTaskCode")));
            continue;
        };
        let unknown = |code: i64, key: &str| crate::Problem::UnknownReference {
            workflow: ctx.workflow.clone(),
            task: None,
            field: format!("{field}.{key}"),
            kind: "task",
            code,
        };
        if !names.contains_key(&post) {
            r.problems.push(unknown(post, "postTaskCode"));
            continue;
        }
        if pre == 0 {
            deps.entry(post).or_default();
            continue;
        }
        let Some(pre_name) = names.get(&pre) else {
            r.problems.push(unknown(pre, "preTaskCode"));
            continue;
        };
        if taken.insert((pre, post)) {
            deps.entry(post).or_default().push(pre_name.clone());
        }
    }
    deps
}

/// Shoal's loader reads `$FILE{`, `$ENV{` and `$WORKFLOW{` in any value as references;
/// DolphinScheduler gives them no meaning, so text holding one will not load as it
/// reads. Say so where it happens.
fn references_warning(doc: &Y, ctx: &Ctx, r: &mut Report) {
    const MARKERS: [&str; 4] = ["$FILE{", "$ENV{", "$WORKFLOW{", "$PROCESS{"];
    fn walk(y: &Y, path: &str, found: &mut Vec<(String, &'static str)>) {
        match y {
            Y::Str(s) => {
                if let Some(m) = MARKERS.iter().find(|m| s.contains(*m)) {
                    found.push((path.to_owned(), m));
                }
            }
            Y::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), found);
                }
            }
            Y::Map(entries) => {
                for (k, v) in entries {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(v, &sub, found);
                }
            }
            Y::Int(_) | Y::Bool(_) => {}
        }
    }
    let mut found = Vec::new();
    walk(doc, "", &mut found);
    for (path, marker) in found {
        r.warn(
            ctx,
            format!(
                "`{path}` holds `{marker}`, which Shoal's loader reads as a file, environment or workflow reference: the definition will not load until it is rewritten"
            ),
        );
    }
}
