//! Checks behind `shoal validate`: everything wrong with a definition, each problem
//! with its file, line and field, found in one pass rather than one per run.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;

use petgraph::graph::DiGraph;

use crate::Diagnostic;
use crate::load::LoadedWorkflow;
use crate::model::WorkflowDefinition;

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

/// Names, dependencies and cycles: everything that needs no plugin.
pub fn structure(file: &Path, wf: &WorkflowDefinition) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
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
