//! # shoal-dolphin: DolphinScheduler exports as Shoal definitions
//!
//! [`convert`] turns what DolphinScheduler exports into Shoal workflow definitions, one
//! YAML document per workflow, in the DolphinScheduler Python SDK's format that Shoal's
//! loader reads (`host/workflow`). It accepts, telling them apart by their fields:
//!
//! - the export of 3.0 to 3.2 ("Export" in the workflow list): a JSON list (or one
//!   object) of `{processDefinition, processTaskRelationList, taskDefinitionList,
//!   schedule}`;
//! - the same in 3.3's naming: `workflowDefinition`, `workflowTaskRelationList`, with
//!   `workflowDefinitionCode` in relations, schedules and `SUB_WORKFLOW` tasks;
//! - the body of the create-definition API (`POST .../process-definition`, later
//!   `.../workflow-definition`) as a JSON object of its form fields: `name`,
//!   `description`, `globalParams`, `timeout`, `executionType`, and `taskDefinitionJson`
//!   and `taskRelationJson`, strings holding JSON lists.
//!
//! Everything DolphinScheduler stores that changes how a workflow runs is mapped:
//!
//! | DolphinScheduler | Shoal |
//! | --- | --- |
//! | definition `name`, `description` | `workflow.name`, `workflow.description` |
//! | `globalParams` (`[{prop, direct, type, value}]` in a string) | `workflow.param` (name: value) |
//! | `releaseState` | [`ImportedWorkflow::online`] |
//! | `executionType` | [`ImportedWorkflow::run_mode`] (Shoal keeps it beside the YAML) |
//! | schedule `crontab`, `timezoneId`, `startTime`, `endTime` | `workflow.schedule`, `timezone`, `start_time`, `end_time`, and [`ImportedSchedule`] |
//! | schedule `failureStrategy` CONTINUE / END | `workflow.failure_strategy` continue / end |
//! | schedule `releaseState` | [`ImportedSchedule::online`] |
//! | task `code` | the task's `name` wherever a code refers to it |
//! | relations `preTaskCode` → `postTaskCode` (`0`: no upstream) | the post task's `deps` |
//! | task `name`, `taskType`, `description` | `name`, `task_type`, `description` |
//! | `flag` YES / NO | `flag` |
//! | `taskPriority` | `task_priority` |
//! | `workerGroup` | `worker_group` |
//! | `taskGroupId` | `task_group` (a name: [`Options::task_groups`], else `task-group-<id>`) |
//! | `delayTime`, `failRetryTimes`, `failRetryInterval` (minutes) | `delay_time`, `fail_retry_times`, `fail_retry_interval` (minutes) |
//! | `timeoutFlag` OPEN + `timeout` (minutes) + `timeoutNotifyStrategy` | `timeout`, `timeout_notify_strategy` (CLOSE: none) |
//! | `taskParams.localParams` | `local_params` (prop, direct IN/OUT, type, value) |
//! | `taskParams` of each type | the type's fields (see the `params` module) |
//!
//! What Shoal cannot act on is never dropped silently: each such field set to anything
//! but DolphinScheduler's default becomes one of [`Import::warnings`] ("accepted, not
//! supported: ..."), naming workflow, task and field, and so does any field this
//! importer does not know. Only bookkeeping (ids, versions, timestamps, owners, the
//! editor's layout: `fields::SILENT_FIELDS`) is left out without a word.
//!
//! A task type Shoal has no plugin for (anything but SHELL, PYTHON, SQL, CONDITIONS,
//! SWITCH, SUB_PROCESS / SUB_WORKFLOW and DEPENDENT), or a feature of a known type that
//! Shoal lacks, fails the conversion with every such task listed, unless
//! [`Options::partial`]: then each becomes a `Noop` task with `flag: NO` (forbidden:
//! DolphinScheduler's own way of skipping a task while its downstream tasks still run)
//! and a description saying what was not imported, and a warning says the same.
//!
//! ## Why a hand-written emitter
//!
//! The YAML is written by `yaml`, a small block-style emitter, rather than by a
//! serializer crate: `serde_yaml` is unmaintained, and what matters here is that the
//! document reads back exactly as meant under the loader's rules (a plain `3` among a
//! task's fields is a number, a quoted one text; `NO` must stay text) while scripts
//! and SQL stay readable as literal blocks. So every document is read back with the
//! loader's own parser (`marked-yaml`) and compared value by value before it is
//! returned; where anything differs, it is written again with all text quoted. JSON
//! would load too, but `shoal export` and people read these files.
//!
//! ## Limits
//!
//! An export is refused over [`MAX_INPUT_BYTES`], [`MAX_WORKFLOWS`] workflows,
//! [`MAX_TASKS`] tasks or [`MAX_RELATIONS`] relations, before any of it is converted.

mod error;
mod fields;
mod input;
mod params;
mod schedule;
mod task;
mod workflow;
mod yaml;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

pub use error::{ImportError, Problem};

use crate::fields::{Report, code_of};

/// The largest export accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;
/// The most workflows one export may hold.
pub const MAX_WORKFLOWS: usize = 1_000;
/// The most tasks one export may hold, over all its workflows.
pub const MAX_TASKS: usize = 10_000;
/// The most task relations one export may hold, over all its workflows.
pub const MAX_RELATIONS: usize = 50_000;
/// Warnings past this many are summed up in one last line.
const MAX_WARNINGS: usize = 2_000;

/// How to convert.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The Shoal project the workflows go to, written as each definition's `project`.
    pub project: Option<String>,
    /// Import what can be imported: tasks Shoal cannot run become skipped `Noop`
    /// placeholders (with a warning each) instead of failing the conversion.
    pub partial: bool,
    /// Shoal datasource names for DolphinScheduler's datasource ids (an export names
    /// datasources by id only). An id not here becomes `datasource-<id>`, with a warning.
    pub datasources: BTreeMap<i64, String>,
    /// Shoal task group names for DolphinScheduler's task group ids; an id not here
    /// becomes `task-group-<id>`, with a warning.
    pub task_groups: BTreeMap<i64, String>,
    /// The time zone of the DolphinScheduler server that wrote the export. Its schedule
    /// window (`startTime`, `endTime`) is written without an offset, in that server's
    /// zone; unset, the window is read in the schedule's own `timezoneId`, which is what
    /// a server running in that zone writes.
    pub export_timezone: Option<String>,
}

/// The converted export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Import {
    /// Every workflow, each after the workflows it starts as sub-workflows, so that
    /// applying them in this order never names a workflow not yet there.
    pub workflows: Vec<ImportedWorkflow>,
    /// What was read but is not (or not exactly) carried over, one line each, naming
    /// workflow, task and field.
    pub warnings: Vec<String>,
}

/// One converted workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportedWorkflow {
    pub name: String,
    /// DolphinScheduler's code for it (none for an API body).
    pub code: Option<i64>,
    /// The definition, for `shoal apply` or the definitions API.
    pub yaml: String,
    /// The schedule to create, if it had one.
    pub schedule: Option<ImportedSchedule>,
    /// Whether DolphinScheduler had the workflow released (`releaseState: ONLINE`).
    pub online: bool,
    /// DolphinScheduler's `executionType`: the definition's run mode, which Shoal keeps
    /// beside the definition, not in its YAML.
    pub run_mode: RunMode,
    /// Workflows of this import it starts as sub-workflows (apply these first).
    pub children: Vec<String>,
    /// Other workflows of this import its Dependent tasks wait for.
    pub depends_on: Vec<String>,
}

/// A workflow's schedule, ready for the schedules API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedSchedule {
    /// Quartz cron with seconds, as DolphinScheduler has it (`crontab`).
    pub cron: String,
    /// IANA zone the cron reads in (`timezoneId`).
    pub timezone: String,
    /// Start of the window, RFC 3339 in `timezone`.
    pub start: Option<String>,
    /// End of the window, RFC 3339 in `timezone`.
    pub end: Option<String>,
    /// `releaseState: ONLINE`. DolphinScheduler's own export writes every schedule
    /// OFFLINE, so this is false for its files.
    pub online: bool,
}

/// DolphinScheduler's `executionType` as Shoal's run mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    #[default]
    Parallel,
    SerialWait,
    SerialDiscard,
    SerialPriority,
}

impl RunMode {
    /// The name the run-mode API and `shoal definition mode` take.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Parallel => "parallel",
            RunMode::SerialWait => "serial-wait",
            RunMode::SerialDiscard => "serial-discard",
            RunMode::SerialPriority => "serial-priority",
        }
    }
}

impl std::fmt::Display for RunMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the converters know about every workflow of the export before converting any:
/// the names behind the codes that tasks use to refer to each other.
pub(crate) struct Index {
    /// Workflow code → position in the export.
    pub workflows: HashMap<i64, usize>,
    /// Each workflow's name (or `#N`), by position.
    pub names: Vec<String>,
    /// Each workflow's task codes → task names, by position.
    pub tasks: Vec<HashMap<i64, String>>,
}

/// Convert a DolphinScheduler export (see the crate documentation for the forms it
/// takes). Every problem in the file is reported at once.
pub fn convert(json: &str, options: &Options) -> Result<Import, ImportError> {
    let mut report = Report::default();
    let raws = input::read(json, &mut report.problems)?;
    let index = index(&raws, &mut report);
    let mut converted = Vec::with_capacity(raws.len());
    for (pos, raw) in raws.iter().enumerate() {
        if let Some(c) = workflow::convert(raw, pos, &index, options, &mut report) {
            converted.push(c);
        }
    }
    let order = match children_first(&converted) {
        Ok(order) => order,
        Err(cycle) => {
            report
                .problems
                .push(Problem::SubWorkflowCycle { workflows: cycle });
            Vec::new()
        }
    };
    if !report.problems.is_empty() {
        return Err(ImportError::Invalid(report.problems));
    }
    let mut workflows = Vec::with_capacity(converted.len());
    let mut slots: Vec<Option<workflow::Converted>> = converted.into_iter().map(Some).collect();
    for i in order {
        let Some(c) = slots[i].take() else { continue };
        let yaml = yaml::to_yaml(&c.doc).map_err(|message| {
            ImportError::Invalid(vec![Problem::Invalid {
                workflow: c.name.clone(),
                task: None,
                field: "(the generated YAML)".into(),
                message,
            }])
        })?;
        workflows.push(ImportedWorkflow {
            name: c.name,
            code: c.code,
            yaml,
            schedule: c.schedule,
            online: c.online,
            run_mode: c.run_mode,
            children: c.children,
            depends_on: c.depends_on,
        });
    }
    Ok(Import {
        workflows,
        warnings: tidy(report.warnings),
    })
}

/// Names and codes of every workflow and task; duplicates are problems.
fn index(raws: &[input::RawWorkflow], r: &mut Report) -> Index {
    let mut idx = Index {
        workflows: HashMap::new(),
        names: Vec::with_capacity(raws.len()),
        tasks: Vec::with_capacity(raws.len()),
    };
    let mut by_name: HashSet<String> = HashSet::new();
    for (pos, raw) in raws.iter().enumerate() {
        let label = raw.label();
        if raw.definition.get("name").and_then(Value::as_str).is_some()
            && !by_name.insert(label.clone())
        {
            r.problems.push(Problem::DuplicateWorkflow {
                name: label.clone(),
            });
        }
        if let Some(code) = raw
            .definition
            .get("code")
            .and_then(code_of)
            .filter(|c| *c != 0)
            && let Some(first) = idx.workflows.insert(code, pos)
        {
            r.problems.push(Problem::DuplicateWorkflowCode {
                code,
                first: idx.names[first].clone(),
                second: label.clone(),
            });
        }
        let mut tasks = HashMap::new();
        let mut task_names: HashSet<&str> = HashSet::new();
        for t in &raw.tasks {
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                continue;
            };
            if !task_names.insert(name) {
                r.problems.push(Problem::DuplicateTask {
                    workflow: label.clone(),
                    name: name.to_owned(),
                });
            }
            if let Some(code) = t.get("code").and_then(code_of)
                && let Some(first) = tasks.insert(code, name.to_owned())
            {
                r.problems.push(Problem::DuplicateTaskCode {
                    workflow: label.clone(),
                    code,
                    first,
                    second: name.to_owned(),
                });
            }
        }
        idx.names.push(label);
        idx.tasks.push(tasks);
    }
    idx
}

/// Positions in an order where every workflow comes after the workflows it starts as
/// sub-workflows (otherwise in file order), or the workflows of a cycle.
fn children_first(workflows: &[workflow::Converted]) -> Result<Vec<usize>, Vec<String>> {
    let pos: HashMap<&str, usize> = workflows
        .iter()
        .enumerate()
        .map(|(i, w)| (w.name.as_str(), i))
        .collect();
    // 0: not visited, 1: on the current path, 2: placed.
    let mut state = vec![0u8; workflows.len()];
    let mut order = Vec::with_capacity(workflows.len());
    for start in 0..workflows.len() {
        if state[start] != 0 {
            continue;
        }
        // Depth-first without recursion: (workflow, next child to look at).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some((at, next)) = stack.pop() {
            let children = &workflows[at].children;
            if let Some(child) = children.get(next) {
                stack.push((at, next + 1));
                let Some(&c) = pos.get(child.as_str()) else {
                    continue;
                };
                match state[c] {
                    0 => {
                        state[c] = 1;
                        stack.push((c, 0));
                    }
                    1 => {
                        let mut cycle: Vec<String> = stack
                            .iter()
                            .map(|(w, _)| workflows[*w].name.clone())
                            .skip_while(|n| *n != workflows[c].name)
                            .collect();
                        cycle.push(workflows[c].name.clone());
                        return Err(cycle);
                    }
                    _ => {}
                }
            } else {
                state[at] = 2;
                order.push(at);
            }
        }
    }
    Ok(order)
}

/// Identical warnings once, in the order first given, and at most [`MAX_WARNINGS`].
fn tidy(warnings: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out: Vec<String> = warnings
        .into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect();
    if out.len() > MAX_WARNINGS {
        let more = out.len() - MAX_WARNINGS;
        out.truncate(MAX_WARNINGS);
        out.push(format!("... and {more} more warnings like these"));
    }
    out
}
