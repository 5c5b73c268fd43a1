//! The workflow run around the task (the host's `shoal:task/workflow` import), and the
//! branch convention logic tasks (Switch, Condition) use to steer the run.
//!
//! Besides the upstream states, the host runs child workflows ([`start_child`],
//! [`child_status`], [`stop_child`], for SubWorkflow) and reports the newest run of any
//! workflow in a time range ([`last_run`], for Dependent), relative to the run's business
//! time ([`schedule_time`]). Those calls need the workflow master: a task run on its own
//! (`shoal task run`) gets the error [`OUTSIDE_WORKFLOW`] from them and a business time
//! of 0.
//!
//! A logic task that picks branches emits the OUT parameter [`BRANCH_PARAM`]
//! (`shoal.branch`) whose value is a JSON array of the names of the direct downstream
//! tasks to follow, e.g. `["task_a"]`; the master skips the task's other direct
//! downstream tasks. [`crate::TaskContext::set_branch`] writes it.

use crate::bindings::shoal::task::workflow as wit;

/// The OUT parameter a logic task emits to choose which downstream tasks run.
pub const BRANCH_PARAM: &str = "shoal.branch";

/// (task name, state) of the current task's direct upstream tasks in this run. States
/// are kebab-case: `succeeded`, `failed`, `killed`, `skipped`, `forced-success`, ...
/// A task run on its own (`shoal task run`) has no upstream and gets an empty list.
pub fn upstream_states() -> Vec<(String, String)> {
    wit::upstream_states()
}

/// The host's error for the calls that need a workflow run when the task runs on its own.
pub const OUTSIDE_WORKFLOW: &str = "only available inside a workflow run";

/// Where a child workflow run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildStatus {
    /// The workflow state in kebab-case: `submitted`, `running`, `ready-pause`, `paused`,
    /// `ready-stop`, `stopped`, `succeeded`, `failed`.
    pub state: String,
    /// True once the run reached a final state (`stopped`, `succeeded`, `failed`).
    pub finished: bool,
    /// True when the run finished and succeeded.
    pub succeeded: bool,
    /// OUT parameters of the child's tasks once it finished; empty before.
    pub out_params: Vec<(String, String)>,
}

/// Start a run of the workflow definition named `workflow` (in the current run's
/// project) as a child of this task, with these startup parameters. Returns the child's
/// workflow instance id; keep it as the external-job handle.
pub fn start_child<K, V>(workflow: &str, params: &[(K, V)]) -> Result<u64, String>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    wit::start_child(workflow, &params)
}

/// Where the child run `instance` (from [`start_child`]) stands.
pub fn child_status(instance: u64) -> Result<ChildStatus, String> {
    wit::child_status(instance).map(|c| ChildStatus {
        state: c.state,
        finished: c.finished,
        succeeded: c.succeeded,
        out_params: c.out_params,
    })
}

/// Stop the child run `instance`; its running tasks are killed.
pub fn stop_child(instance: u64) -> Result<(), String> {
    wit::stop_child(instance)
}

/// The run's business time, ms since the Unix epoch (when a scheduled run was due, or
/// when a manual run started); 0 when the task runs on its own. Compute date-relative
/// things from it, not from the clock, so reruns and backfills see their own date.
pub fn schedule_time() -> i64 {
    wit::schedule_time()
}

/// The state of the newest run of `workflow` (in `project`, or the current project)
/// whose business time lies in `[from_ms, to_ms)`: its task `task`'s state when given
/// (`succeeded`, `forced-success`, `failed`, `killed`, `skipped`, `running`, ...), else
/// the workflow state (`succeeded`, `failed`, `stopped`, `running`, ...). `None` when
/// no run's business time lies in the range yet.
pub fn last_run(
    project: Option<&str>,
    workflow: &str,
    task: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Option<String>, String> {
    wit::last_run(project, workflow, task, from_ms, to_ms)
}

/// The [`BRANCH_PARAM`] value for these downstream task names: a JSON array of strings.
pub fn branch_value<I>(names: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let names: Vec<serde_json::Value> = names
        .into_iter()
        .map(|n| serde_json::Value::String(n.as_ref().to_owned()))
        .collect();
    serde_json::Value::Array(names).to_string()
}

/// How DolphinScheduler combines the items of a group (Condition, Dependent): AND or OR,
/// written in any case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupOp {
    #[default]
    And,
    Or,
}

impl std::fmt::Display for GroupOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GroupOp::And => "AND",
            GroupOp::Or => "OR",
        })
    }
}

impl<'de> serde::Deserialize<'de> for GroupOp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "and" => Ok(GroupOp::And),
            "or" => Ok(GroupOp::Or),
            _ => Err(serde::de::Error::custom(format!(
                "unknown op `{text}`, expected AND or OR"
            ))),
        }
    }
}

impl schemars::JsonSchema for GroupOp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GroupOp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "AND or OR (any case)",
            "pattern": "^([Aa][Nn][Dd]|[Oo][Rr])$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_value_is_a_json_array_of_names() {
        assert_eq!(branch_value(["task_a"]), r#"["task_a"]"#);
        assert_eq!(branch_value(Vec::<String>::new()), "[]");
        assert_eq!(
            branch_value(&["a \"b\"".to_owned(), "c".to_owned()]),
            r#"["a \"b\"","c"]"#
        );
    }

    #[test]
    fn set_branch_sets_the_branch_param_once() {
        let mut ctx = crate::TaskContext {
            workflow_instance_id: 0,
            task_instance_id: 1,
            task_name: "switch".into(),
            attempt: 1,
            work_dir: "/work".into(),
            out_params: Vec::new(),
        };
        ctx.set_branch(["a"]);
        // A borrowed list, as a plugin passes the names it keeps (`&verdict.branch`).
        let kept = vec!["b".to_owned(), "c".to_owned()];
        ctx.set_branch(&kept);
        assert_eq!(kept.len(), 2);
        assert_eq!(
            ctx.out_params(),
            &[("shoal.branch".to_owned(), r#"["b","c"]"#.to_owned())]
        );
    }
}
