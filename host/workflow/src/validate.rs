//! Checks behind `shoal validate`: everything wrong with a definition, each problem
//! with its file, line and field, found in one pass rather than one per run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::Path;

use petgraph::graph::DiGraph;
use shoal_params::check::Checker;
use shoal_params::{Limits, ParamError, ParamScope};

use crate::Diagnostic;
use crate::load::LoadedWorkflow;
use crate::model::{ParamDirection, WorkflowDefinition};

/// What validation needs to know about task types. The host implements it over its
/// plugin registry, so a definition is checked against the plugins that will run it.
pub trait TaskTypeCatalog {
    /// The plugin id that runs tasks written as `task_type`, or none.
    fn plugin_for(&self, task_type: &str) -> Option<String>;
    /// Every known plugin id, for "did you mean" lists.
    fn known(&self) -> Vec<String>;
    /// Field errors (field, message) the plugin reports for `params`.
    fn check_params(
        &self,
        plugin: &str,
        params: &serde_json::Value,
    ) -> impl Future<Output = Result<Vec<(String, String)>, String>> + Send;
}

/// Validate a loaded workflow and every workflow it references.
pub async fn validate(loaded: &LoadedWorkflow, catalog: &impl TaskTypeCatalog) -> Vec<Diagnostic> {
    let mut problems = check(&loaded.file, &loaded.workflow, catalog).await;
    for (file, wf) in loaded.referenced.values() {
        problems.extend(check(file, wf, catalog).await);
    }
    problems
}

async fn check(
    file: &Path,
    wf: &WorkflowDefinition,
    catalog: &impl TaskTypeCatalog,
) -> Vec<Diagnostic> {
    let mut problems = structure(file, wf);
    let line = |i: usize| wf.task_lines.get(i).copied().unwrap_or(0);
    for (i, task) in wf.tasks.iter().enumerate() {
        let field = |f: &str| Some(format!("tasks[{i}] `{}`.{f}", task.name));
        match catalog.plugin_for(&task.task_type) {
            None => problems.push(Diagnostic {
                file: file.to_path_buf(),
                line: line(i),
                field: field("task_type"),
                message: format!(
                    "unknown task type `{}` (available: {})",
                    task.task_type,
                    catalog.known().join(", ")
                ),
            }),
            Some(plugin) => {
                let params = serde_json::Value::Object(task.params.clone());
                match catalog.check_params(&plugin, &params).await {
                    Ok(errors) => {
                        problems.extend(errors.into_iter().map(|(f, message)| Diagnostic {
                            file: file.to_path_buf(),
                            line: line(i),
                            field: field(&f),
                            message,
                        }))
                    }
                    Err(message) => problems.push(Diagnostic {
                        file: file.to_path_buf(),
                        line: line(i),
                        field: field("task_type"),
                        message: format!(
                            "the `{plugin}` plugin could not check the parameters: {message}"
                        ),
                    }),
                }
            }
        }
    }
    problems
}

/// Names, dependencies, cycles and parameter references: everything that needs no plugin.
pub fn structure(file: &Path, wf: &WorkflowDefinition) -> Vec<Diagnostic> {
    let mut problems = parameters(file, wf);
    let line = |i: usize| wf.task_lines.get(i).copied().unwrap_or(0);
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, task) in wf.tasks.iter().enumerate() {
        if task.name.is_empty() {
            continue;
        }
        if let Some(prev) = first.insert(&task.name, i) {
            first.insert(&task.name, prev);
            problems.push(Diagnostic {
                file: file.to_path_buf(),
                line: line(i),
                field: Some(format!("tasks[{i}].name")),
                message: format!(
                    "duplicate task name `{}` (first defined at line {})",
                    task.name,
                    line(prev)
                ),
            });
        }
    }
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..wf.tasks.len()).map(|i| graph.add_node(i)).collect();
    let mut self_loops = Vec::new();
    for (i, task) in wf.tasks.iter().enumerate() {
        for (d, dep) in task.deps.iter().enumerate() {
            match first.get(dep.as_str()) {
                Some(&j) if j == i => self_loops.push(i),
                Some(&j) => {
                    graph.add_edge(nodes[j], nodes[i], ());
                }
                None => problems.push(Diagnostic {
                    file: file.to_path_buf(),
                    line: line(i),
                    field: Some(format!("tasks[{i}] `{}`.deps[{d}]", task.name)),
                    message: format!("unknown dependency `{dep}`: no task has that name"),
                }),
            }
        }
    }
    for i in self_loops {
        problems.push(Diagnostic {
            file: file.to_path_buf(),
            line: line(i),
            field: Some(format!("tasks[{i}] `{}`.deps", wf.tasks[i].name)),
            message: "a task cannot depend on itself".into(),
        });
    }
    let mut cycles: Vec<Vec<usize>> = petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let mut members: Vec<usize> = scc.into_iter().map(|n| graph[n]).collect();
            members.sort();
            members
        })
        .collect();
    cycles.sort();
    for members in cycles {
        let names: Vec<String> = members
            .iter()
            .map(|i| format!("`{}`", wf.tasks[*i].name))
            .collect();
        problems.push(Diagnostic {
            file: file.to_path_buf(),
            line: line(members[0]),
            field: Some("deps".into()),
            message: format!("dependency cycle between tasks {}", names.join(", ")),
        });
    }
    problems
}

/// Parameters that no run could substitute, found before any task is dispatched: values
/// that refer to each other in a cycle, reference chains deeper than the limit, `$[...]`
/// expressions nested too deeply, and values that would grow past the size limit (a chain
/// that doubles at each link). The same limits fail the task at dispatch; here they name
/// the field. Unknown references are left alone: a startup or upstream value may supply
/// them.
///
/// Each task is checked against the workflow's values with its own on top, so a value a
/// hostile definition makes every task reach is scanned once per task; the checks stop
/// after [`CHECK_BUDGET`] bytes of scanning (dispatch enforces the same limits anyway).
pub fn parameters(file: &Path, wf: &WorkflowDefinition) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let diagnostic = |line: usize, field: String, e: &ParamError| Diagnostic {
        file: file.to_path_buf(),
        line,
        field: Some(field),
        message: e.to_string(),
    };
    let global = ParamScope::new().with_global(wf.global_params.clone());
    let mut checker = Checker::new(&global, Limits::DEFAULT);
    // A global problem is reported once, at the global, not again in every task using it.
    let mut global_roots = HashSet::new();
    for name in wf.global_params.keys() {
        if let Err(e) = checker.check_value(name) {
            global_roots.insert(e.root().to_string());
            problems.push(diagnostic(0, format!("workflow.param.{name}"), &e));
        }
    }
    let mut scanned = checker.scanned();
    for (i, task) in wf.tasks.iter().enumerate() {
        if scanned > CHECK_BUDGET {
            break;
        }
        let line = wf.task_lines.get(i).copied().unwrap_or(0);
        let at = format!("tasks[{i}] `{}`", task.name);
        // The same local layer dispatch builds (see the engine's parameter scope).
        let in_scope =
            |p: &&crate::model::LocalParam| p.direct == ParamDirection::In || !p.value.is_empty();
        let local = task
            .local_params
            .iter()
            .filter(in_scope)
            .map(|p| (p.prop.clone(), p.value.clone()));
        let local = ParamScope::new().with_local(local);
        let mut checker = Checker::new(&global, Limits::DEFAULT).with_overrides(&local);
        let mut seen = global_roots.clone();
        let mut report = |field: String, result: Result<(), ParamError>| {
            if let Err(e) = result
                && seen.insert(e.root().to_string())
            {
                problems.push(diagnostic(line, field, &e));
            }
        };
        for (j, p) in task.local_params.iter().enumerate() {
            if in_scope(&p) {
                report(
                    format!("{at}.local_params[{j}].value"),
                    checker.check_value(&p.prop),
                );
            }
        }
        let fields = serde_json::Value::Object(task.params.clone());
        let mut texts = Vec::new();
        strings(&fields, "", &mut texts);
        for (field, text) in texts {
            report(format!("{at}.{field}"), checker.check_text(text));
        }
        scanned += checker.scanned();
    }
    problems
}

/// Bytes of parameter text [`parameters`] scans at most: far more than any real
/// definition needs (each task's texts and the values they use, once per task).
pub const CHECK_BUDGET: usize = 16 << 20;

/// Every string in `value` with its field path (`command`, `args[1]`, `env.HOME`).
fn strings<'v>(value: &'v serde_json::Value, path: &str, out: &mut Vec<(String, &'v str)>) {
    match value {
        serde_json::Value::String(s) => out.push((path.to_string(), s)),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                strings(item, &field, out);
            }
        }
        _ => {}
    }
}

/// Tasks in an order where every task comes after its dependencies (definition order
/// among independent tasks). `None` if the graph has a cycle or unknown dependencies.
pub fn topological_order(wf: &WorkflowDefinition) -> Option<Vec<usize>> {
    let index: BTreeMap<&str, usize> = wf
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..wf.tasks.len()).map(|i| graph.add_node(i)).collect();
    for (i, task) in wf.tasks.iter().enumerate() {
        for dep in &task.deps {
            graph.add_edge(nodes[*index.get(dep.as_str())?], nodes[i], ());
        }
    }
    petgraph::algo::toposort(&graph, None)
        .ok()
        .map(|order| order.into_iter().map(|n| graph[n]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_str;

    fn problems(yaml: &str) -> Vec<String> {
        let loaded = load_str(yaml, Path::new("wf.yaml")).expect("loads");
        parameters(&loaded.file, &loaded.workflow)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_global_cycle_is_reported_once_naming_the_parameter() {
        let found = problems(
            "workflow:\n  name: w\n  param: {a: '${b}', b: 'x${a}'}\ntasks:\n  - name: t\n    \
             task_type: noop\n    command: echo ${a}\n",
        );
        assert_eq!(
            found,
            [
                "wf.yaml:0: field `workflow.param.a`: parameters refer to each other in a cycle: \
              `a` -> `b` -> `a`"
            ]
        );
    }

    #[test]
    fn local_cycles_deep_expressions_and_doubling_chains_name_their_task_field() {
        let mut locals = String::from("      - {prop: a0, value: x}\n");
        for i in 1..=30 {
            locals.push_str(&format!(
                "      - {{prop: a{i}, value: '${{a{0}}}${{a{0}}}'}}\n",
                i - 1
            ));
        }
        let deep = format!("$[yyyyMMdd+{}1{}]", "(".repeat(100), ")".repeat(100));
        let yaml = format!(
            "workflow:\n  name: w\ntasks:\n  - name: loop\n    task_type: noop\n    \
             local_params:\n      - {{prop: x, value: '${{y}}'}}\n      - {{prop: y, value: \
             '${{x}}'}}\n  - name: deep\n    task_type: noop\n    args: [ok, 'echo {deep}']\n  \
             - name: big\n    task_type: noop\n    local_params:\n{locals}"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert_eq!(
            found[0],
            "wf.yaml:4: field `tasks[0] `loop`.local_params[0].value`: parameters refer to each \
             other in a cycle: `x` -> `y` -> `x`"
        );
        assert!(
            found[1].starts_with(
                "wf.yaml:9: field `tasks[1] `deep`.args[1]`: time expression `$[yyyyMMdd+((("
            ),
            "{}",
            found[1]
        );
        assert!(found[1].ends_with("nests parentheses deeper than 64 levels"));
        assert!(
            found[2].starts_with(
                "wf.yaml:12: field `tasks[2] `big`.local_params[21].value`: the \
                 value of parameter `a21` would be larger than 1048576 bytes"
            ),
            "{}",
            found[2]
        );
    }

    #[test]
    fn checks_stop_at_the_budget() {
        // 300 KB of `$` that every task refers to; the last task also has a cycle.
        let workflow = |tasks: usize| {
            let mut wf: WorkflowDefinition = serde_json::from_value(serde_json::json!({
                "name": "w",
                "global_params": {"big": format!("${{x}}{}", "$".repeat(300_000))},
                "tasks": [],
            }))
            .unwrap();
            let task = |locals: serde_json::Value| -> crate::model::TaskDefinition {
                serde_json::from_value(serde_json::json!({
                    "name": "t", "task_type": "noop", "params": {"v": "${big}"},
                    "local_params": locals,
                }))
                .unwrap()
            };
            wf.tasks = vec![task(serde_json::json!([{"prop": "x", "value": "1"}])); tasks - 1];
            wf.tasks.push(task(serde_json::json!([
                {"prop": "x", "value": "${y}"}, {"prop": "y", "value": "${x}"}
            ])));
            wf
        };
        let found = parameters(Path::new("wf.yaml"), &workflow(3));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("cycle"));
        // 100 tasks would scan 30 MB: the checks stop before the last task.
        assert!(parameters(Path::new("wf.yaml"), &workflow(100)).is_empty());
    }

    #[test]
    fn ordinary_references_pass_and_unknown_ones_are_left_to_the_run() {
        let found = problems(
            "workflow:\n  name: w\n  param: {dt: '$[yyyyMMdd-1]', root: /data, p: '${root}/${dt}'}\n\
             tasks:\n  - name: t\n    task_type: noop\n    command: 'cp ${p} ${startup_only} \
             ${system.biz.date} $[add_months(yyyyMM,-(1+1))]'\n    local_params:\n      - \
             {prop: out, direct: OUT, value: ''}\n      - {prop: q, value: '${p}/x'}\n",
        );
        assert!(found.is_empty(), "{found:#?}");
    }
}
