//! The workflow definition model, shared by the YAML/JSON loader, the store (as JSON)
//! and the engine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A workflow: global settings and a DAG of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub project: Option<String>,
    /// Global parameters (DolphinScheduler's `param`), name → value; values may contain
    /// `${...}` and `$[...]`.
    #[serde(default)]
    pub global_params: BTreeMap<String, String>,
    /// Cron expression (Quartz-style, with seconds).
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    /// What happens to the rest of the DAG when a task fails.
    #[serde(default)]
    pub failure_strategy: FailureStrategy,
    /// DolphinScheduler's `execution_type` as Shoal's run mode (`parallel`,
    /// `serial-wait`, `serial-discard`, `serial-priority`); applied to the definition
    /// when it is uploaded. None leaves the definition's run mode as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_mode: Option<String>,
    pub tasks: Vec<TaskDefinition>,
    /// Line of each task's entry in the source (parallel to `tasks`), for diagnostics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_lines: Vec<usize>,
}

impl WorkflowDefinition {
    pub fn task(&self, name: &str) -> Option<&TaskDefinition> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureStrategy {
    /// Other branches keep running; the workflow fails when they are done.
    Continue,
    /// Stop everything still running and fail the workflow.
    #[default]
    End,
}

/// DolphinScheduler's task `flag`: `NO` means forbidden (skipped, its dependents run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    #[default]
    Yes,
    No,
}

/// Task priority, highest first; waiting tasks are served in this order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    Highest,
    High,
    #[default]
    Medium,
    Low,
    Lowest,
}

/// What a task timeout does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeoutStrategy {
    /// Alert, keep running.
    Warn,
    /// Kill the task; it fails (and may retry).
    #[default]
    Fail,
    /// Alert and fail.
    Both,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamDirection {
    #[default]
    In,
    Out,
}

/// A task's local parameter (DolphinScheduler's `local_params` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalParam {
    pub prop: String,
    #[serde(default)]
    pub direct: ParamDirection,
    /// VARCHAR, INTEGER, LONG, FLOAT, DOUBLE, DATE, TIME, TIMESTAMP, BOOLEAN, LIST, FILE.
    #[serde(default = "varchar", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}

fn varchar() -> String {
    "VARCHAR".into()
}

/// One task of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDefinition {
    pub name: String,
    /// As written (`Shell`, `SubWorkflow`, ...); matched to a plugin id ignoring case,
    /// `-` and `_`.
    pub task_type: String,
    #[serde(default)]
    pub deps: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub flag: Flag,
    #[serde(default)]
    pub priority: Priority,
    /// Wait before the task starts, in ms. Written as minutes (DolphinScheduler's
    /// `delay_time: 5`) or with a unit (`delay_time: 30s`, Shoal's extension).
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub fail_retry_times: u32,
    /// Wait between retries, in ms (written like `delay_time`; default one minute).
    #[serde(default = "one_minute")]
    pub retry_interval_ms: u64,
    /// Time limit in ms (written like `delay_time`); none means no limit.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub timeout_strategy: TimeoutStrategy,
    #[serde(default = "default_group")]
    pub worker_group: String,
    #[serde(default)]
    pub task_group: Option<String>,
    #[serde(default)]
    pub local_params: Vec<LocalParam>,
    /// Run on exactly this plugin version instead of the active one.
    #[serde(default)]
    pub plugin_version: Option<semver::Version>,
    /// The task type's own fields (`command` for Shell, `condition` for Switch, ...).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

fn one_minute() -> u64 {
    60_000
}

fn default_group() -> String {
    "default".into()
}

pub use shoal_model::task::task_type_matches;
