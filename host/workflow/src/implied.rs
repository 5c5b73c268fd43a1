//! Edges that Switch and Condition tasks imply by naming other tasks, added as
//! pydolphinscheduler adds them.
//!
//! In pydolphinscheduler's YAML a Switch names its branch tasks in `condition[].task`
//! and those tasks declare no `deps`: the SDK makes each of them a downstream task of
//! the switch (`Switch._set_dep`). A Condition names the tasks it checks in
//! `groups[].groups[].task`, which become its upstream tasks, and its `success_task` /
//! `failed_task`, which become its downstream tasks (`Condition._set_dep`). Without
//! these edges every branch would be a root and run beside the switch, and a Condition
//! would have nothing to check.
//!
//! An edge already written in `deps` is not added twice. A name that is no task of the
//! workflow is reported at the field that names it.

use std::path::Path;

use crate::Diagnostic;
use crate::model::WorkflowDefinition;

/// One implied edge: `upstream` must finish before `downstream`, because of `field`
/// (the dotted path of the name) of task `by`.
struct Edge {
    upstream: String,
    downstream: String,
    by: usize,
    field: String,
}

/// Task type names compare like plugin ids: case and `-` / `_` do not matter.
fn is_type(task_type: &str, wanted: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    norm(task_type) == norm(wanted)
}

/// The names in a field holding one task name or a list of them, with their paths.
fn names<'v>(value: &'v serde_json::Value, path: &str) -> Vec<(String, &'v str)> {
    match value {
        serde_json::Value::String(s) => vec![(path.to_owned(), s.as_str())],
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_str().map(|s| (format!("{path}[{i}]"), s)))
            .collect(),
        _ => Vec::new(),
    }
}

fn implied(wf: &WorkflowDefinition) -> Vec<Edge> {
    let mut edges = Vec::new();
    for (i, task) in wf.tasks.iter().enumerate() {
        let at = format!("tasks[{i}] `{}`", task.name);
        let edge = |upstream: &str, downstream: &str, field: String| Edge {
            upstream: upstream.to_owned(),
            downstream: downstream.to_owned(),
            by: i,
            field,
        };
        if is_type(&task.task_type, "switch") {
            let branches = task.params.get("condition").and_then(|c| c.as_array());
            for (b, branch) in branches.into_iter().flatten().enumerate() {
                if let Some(name) = branch.get("task").and_then(|t| t.as_str()) {
                    edges.push(edge(&task.name, name, format!("{at}.condition[{b}].task")));
                }
            }
        } else if is_type(&task.task_type, "condition") {
            let groups = task.params.get("groups").and_then(|g| g.as_array());
            for (g, group) in groups.into_iter().flatten().enumerate() {
                let items = group.get("groups").and_then(|i| i.as_array());
                for (k, item) in items.into_iter().flatten().enumerate() {
                    if let Some(name) = item.get("task").and_then(|t| t.as_str()) {
                        edges.push(edge(
                            name,
                            &task.name,
                            format!("{at}.groups[{g}].groups[{k}].task"),
                        ));
                    }
                }
            }
            for key in ["success_task", "failed_task"] {
                if let Some(value) = task.params.get(key) {
                    for (field, name) in names(value, &format!("{at}.{key}")) {
                        edges.push(edge(&task.name, name, field));
                    }
                }
            }
        }
    }
    edges
}

/// Add the edges Switch and Condition tasks imply to the named tasks' `deps`; a name
/// that is no task here, or the task itself, is a problem at its field.
pub(crate) fn add_implied_edges(wf: &mut WorkflowDefinition, file: &Path) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for edge in implied(wf) {
        let line = wf.task_lines.get(edge.by).copied().unwrap_or(0);
        let mut problem = |message: String| {
            problems.push(Diagnostic {
                file: file.to_path_buf(),
                line,
                field: Some(edge.field.clone()),
                message,
            })
        };
        if edge.upstream == edge.downstream {
            problem(format!("`{}` is this task itself", edge.upstream));
            continue;
        }
        if !wf.tasks.iter().any(|t| t.name == edge.upstream) {
            problem(format!(
                "no task named `{}` in this workflow",
                edge.upstream
            ));
            continue;
        }
        let Some(down) = wf.tasks.iter_mut().find(|t| t.name == edge.downstream) else {
            problem(format!(
                "no task named `{}` in this workflow",
                edge.downstream
            ));
            continue;
        };
        if !down.deps.contains(&edge.upstream) {
            down.deps.push(edge.upstream.clone());
        }
    }
    problems
}
