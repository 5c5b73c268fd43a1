//! `dependent`: waits until runs of other workflows (or of single tasks in them) for a
//! range of business dates succeeded, as DolphinScheduler's Dependent task does.
//!
//! ```yaml
//! - name: dependent
//!   task_type: Dependent
//!   denpendence:                  # DolphinScheduler's Python SDK spelling; `dependence` too
//!     op: and
//!     groups:
//!       - op: or
//!         groups:
//!           - project_name: pydolphin                     # optional: this run's project
//!             process_definition_name: task_dependent_external   # or workflow_name
//!             dependent_task_name: task_1                 # optional: 0/ALL = the workflow
//!             dependent_date: LAST_WEDNESDAY              # default: today
//!           - process_definition_name: task_dependent_external
//!             dependent_task_name: task_2
//!             dependent_date: last24Hours
//! ```
//!
//! DolphinScheduler's own YAML example leaves `denpendence:` empty and writes `op` and
//! `groups` beside it, at the task's level, which its loader reads; both forms work.
//!
//! Each item names a workflow (and optionally one of its tasks) and a date cycle
//! ([`cycle::Cycle`]): one or more business-time intervals relative to this run's
//! business time (`shoal:task/workflow` `schedule-time`). For each interval the host
//! reports the state of the newest run whose business time lies in it (`last-run`). An
//! item is met when that state is `succeeded` (or `forced-success`) in every interval;
//! it failed when any is `failed`, `killed`, `stopped` or `skipped`; otherwise (no run
//! yet, or one still going) it is awaited. Items combine within a group, and groups
//! within the dependence, by AND or OR ([`Outcome::combine`]).
//!
//! The task is an external job so it waits in the shared container: `start` checks
//! once and ends at once when the answer is already known; otherwise it returns the
//! handle `waiting` and every `poll` checks again. It has no timeout of its own: the
//! task's `timeout` bounds the wait.

pub mod cycle;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use schemars::{Schema, SchemaGenerator, json_schema};
use shoal_sdk::prelude::*;
use shoal_sdk::serde::de::{self, Deserializer};
use shoal_sdk::workflow::GroupOp as Op;

use crate::cycle::{Cycle, Interval};

/// The handle of a task still waiting; the state to poll is all in the params.
pub const WAITING_HANDLE: &str = "waiting";

/// How many awaited or failed items a message lists before summarizing the rest.
const LISTED: usize = 5;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The dependencies: `op` and `groups`. `denpendence` is the spelling of
    /// DolphinScheduler's Python SDK.
    #[serde(
        default,
        alias = "denpendence",
        deserialize_with = "optional_dependence"
    )]
    pub dependence: Option<Dependence>,
    /// How the groups combine, when they are written beside `dependence` (as
    /// DolphinScheduler's YAML example does): AND (default) or OR.
    #[serde(default)]
    pub op: Option<Op>,
    /// The groups, when written beside `dependence`.
    #[serde(default)]
    pub groups: Option<Vec<Group>>,
}

/// Groups combined by one operator.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependence {
    /// How the groups combine: AND (default) or OR.
    #[serde(default)]
    pub op: Op,
    #[serde(default)]
    pub groups: Vec<Group>,
}

/// Items combined by one operator.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// How the items combine: AND (default) or OR.
    #[serde(default)]
    pub op: Op,
    #[serde(default)]
    pub groups: Vec<Item>,
}

/// One workflow (or one of its tasks) that must have succeeded over a date cycle.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The workflow's project; none or empty means this run's project.
    #[serde(default, deserialize_with = "shoal_sdk::text::optional_scalar")]
    #[schemars(with = "Option<shoal_sdk::text::Scalar>")]
    pub project_name: Option<String>,
    /// The workflow definition's name (`workflow_name` works too).
    #[serde(alias = "workflow_name", deserialize_with = "shoal_sdk::text::scalar")]
    #[schemars(with = "shoal_sdk::text::Scalar")]
    pub process_definition_name: String,
    /// One task of that workflow; none, empty, `0` or `ALL` means the whole workflow.
    #[serde(default, deserialize_with = "shoal_sdk::text::optional_scalar")]
    #[schemars(with = "Option<shoal_sdk::text::Scalar>")]
    pub dependent_task_name: Option<String>,
    /// The date cycle, e.g. `today`, `last1Days`, `LAST_WEDNESDAY`, `lastMonth`.
    #[serde(default = "today")]
    pub dependent_date: Cycle,
}

fn today() -> Cycle {
    Cycle::Today
}

impl Item {
    /// The project asked about; none for this run's.
    pub fn project(&self) -> Option<&str> {
        self.project_name
            .as_deref()
            .filter(|p| !p.trim().is_empty())
    }

    /// The task asked about; none for the whole workflow (`0` and `ALL` are
    /// DolphinScheduler's "all tasks").
    pub fn task(&self) -> Option<&str> {
        self.dependent_task_name
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "0" && !t.eq_ignore_ascii_case("all"))
    }

    /// `workflow `w` (project `p`), task `t`, last1Days` for messages.
    fn describe(&self) -> String {
        let mut out = format!("workflow `{}`", self.process_definition_name);
        if let Some(p) = self.project() {
            out.push_str(&format!(" (project `{p}`)"));
        }
        if let Some(t) = self.task() {
            out.push_str(&format!(", task `{t}`"));
        }
        out.push_str(&format!(", {}", self.dependent_date));
        out
    }
}

impl<'de> Deserialize<'de> for Cycle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cycle::parse(&text).ok_or_else(|| {
            let known: Vec<String> = cycle::ALL.iter().map(|c| c.to_string()).collect();
            de::Error::custom(format!(
                "unknown dependent_date `{text}`, expected one of {} (or DolphinScheduler's constant names such as LAST_ONE_DAYS)",
                known.join(", ")
            ))
        })
    }
}

impl JsonSchema for Cycle {
    fn schema_name() -> Cow<'static, str> {
        "DependentDate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let known: Vec<String> = cycle::ALL.iter().map(|c| c.to_string()).collect();
        json_schema!({
            "type": "string",
            "description": format!(
                "A DolphinScheduler date cycle, any case: {} (or constant names such as LAST_ONE_DAYS)",
                known.join(", ")
            )
        })
    }
}

/// `dependence` may be left empty, as DolphinScheduler's YAML example does (`denpendence:`
/// with the groups beside it); the loader hands that over as null or as an empty string.
fn optional_dependence<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Dependence>, D::Error> {
    struct OptionalDependence;
    impl<'de> de::Visitor<'de> for OptionalDependence {
        type Value = Option<Dependence>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping with `op` and `groups`, or nothing")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.trim().is_empty() {
                Ok(None)
            } else {
                Err(de::Error::invalid_value(de::Unexpected::Str(v), &self))
            }
        }

        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            // Through the same map access, so errors inside keep their field paths.
            Dependence::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    deserializer.deserialize_option(OptionalDependence)
}

/// The dependence in whichever form it was written, with the field path its groups
/// have in the params (for messages).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub dependence: Dependence,
    /// `dependence.` when nested, empty when written beside it.
    pub prefix: &'static str,
}

/// Pick the form the dependence was written in.
pub fn resolve(params: &Params) -> Result<Resolved, FieldError> {
    match (&params.dependence, &params.groups) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "groups",
            "write `op` and `groups` either under `dependence` or beside it, not both",
        )),
        (Some(_), None) if params.op.is_some() => Err(FieldError::new(
            "op",
            "write `op` and `groups` either under `dependence` or beside it, not both",
        )),
        (Some(d), None) => Ok(Resolved {
            dependence: d.clone(),
            prefix: "dependence.",
        }),
        (None, Some(groups)) => Ok(Resolved {
            dependence: Dependence {
                op: params.op.unwrap_or_default(),
                groups: groups.clone(),
            },
            prefix: "",
        }),
        (None, None) => Err(FieldError::new(
            "dependence",
            "no dependencies given: write `dependence` with `op` and `groups`",
        )),
    }
}

/// Static checks: there is something to wait for, and every item names a workflow.
pub fn check(params: &Params) -> Vec<FieldError> {
    let resolved = match resolve(params) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let prefix = resolved.prefix;
    let mut errors = Vec::new();
    if resolved.dependence.groups.is_empty() {
        errors.push(FieldError::new(
            format!("{prefix}groups"),
            "no groups: nothing to wait for",
        ));
    }
    for (g, group) in resolved.dependence.groups.iter().enumerate() {
        if group.groups.is_empty() {
            errors.push(FieldError::new(
                format!("{prefix}groups[{g}].groups"),
                "an empty group: name at least one workflow",
            ));
        }
        for (i, item) in group.groups.iter().enumerate() {
            if item.process_definition_name.trim().is_empty() {
                errors.push(FieldError::new(
                    format!("{prefix}groups[{g}].groups[{i}].process_definition_name"),
                    "no workflow named",
                ));
            }
        }
    }
    errors
}

/// One `last-run` question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    pub project: Option<String>,
    pub workflow: String,
    pub task: Option<String>,
    pub interval: Interval,
}

/// Where a dependency, a group or the whole dependence stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Met,
    /// Decided as failed; each line names an item and the interval whose run failed.
    Failed(Vec<String>),
    /// Not decided yet; each line names what is awaited.
    Waiting(Vec<String>),
}

impl Outcome {
    /// DolphinScheduler's rule: AND fails as soon as one part failed and is met when
    /// all are; OR is met as soon as one part is met and fails when all failed; in
    /// between, it waits.
    pub fn combine(op: Op, parts: Vec<Outcome>) -> Outcome {
        let (mut met, mut failed_parts, mut waiting_parts) = (0, 0, 0);
        let (mut failed, mut waiting) = (Vec::new(), Vec::new());
        for part in parts {
            match part {
                Outcome::Met => met += 1,
                Outcome::Failed(why) => {
                    failed_parts += 1;
                    failed.extend(why);
                }
                Outcome::Waiting(what) => {
                    waiting_parts += 1;
                    waiting.extend(what);
                }
            }
        }
        match op {
            Op::And if failed_parts > 0 => Outcome::Failed(failed),
            Op::And if waiting_parts > 0 => Outcome::Waiting(waiting),
            Op::And => Outcome::Met,
            // An empty OR is met, like an empty AND (checks refuse empty groups anyway).
            Op::Or if met > 0 || (failed_parts == 0 && waiting_parts == 0) => Outcome::Met,
            Op::Or if waiting_parts > 0 => Outcome::Waiting(waiting),
            Op::Or => Outcome::Failed(failed),
        }
    }
}

/// How a run's state counts. The task and workflow state names do not overlap in
/// meaning, so one reading serves both.
fn reading(state: &str) -> Option<bool> {
    match state {
        "succeeded" | "forced-success" => Some(true),
        // Skipped is final and produced nothing, so waiting on it would never end.
        "failed" | "killed" | "stopped" | "skipped" => Some(false),
        _ => None,
    }
}

/// Where one item stands, asking `last_run` once per interval of its cycle.
fn item_outcome(
    item: &Item,
    label: &str,
    schedule_ms: i64,
    last_run: &mut dyn FnMut(&Query) -> Result<Option<String>, String>,
) -> Result<Outcome, String> {
    let intervals = item.dependent_date.intervals(schedule_ms).ok_or_else(|| {
        format!("{label}: business time {schedule_ms} ms is outside the calendar's range")
    })?;
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    for interval in intervals {
        let query = Query {
            project: item.project().map(str::to_owned),
            workflow: item.process_definition_name.clone(),
            task: item.task().map(str::to_owned),
            interval,
        };
        let what = format!("{label} ({})", item.describe());
        match last_run(&query)? {
            None => waiting.push(format!("{what}: no run for {interval} yet")),
            Some(state) => match reading(&state) {
                Some(true) => {}
                Some(false) => failed.push(format!("{what}: the run for {interval} is {state}")),
                None => waiting.push(format!("{what}: the run for {interval} is {state}")),
            },
        }
    }
    Ok(if !failed.is_empty() {
        Outcome::Failed(failed)
    } else if !waiting.is_empty() {
        Outcome::Waiting(waiting)
    } else {
        Outcome::Met
    })
}

/// Evaluate the dependence at business time `schedule_ms`. `last_run` answers one
/// question (the host's `last-run`); repeated questions are asked once.
pub fn evaluate(
    resolved: &Resolved,
    schedule_ms: i64,
    last_run: &mut dyn FnMut(&Query) -> Result<Option<String>, String>,
) -> Result<Outcome, String> {
    let mut asked: HashMap<Query, Option<String>> = HashMap::new();
    let mut cached = |q: &Query| -> Result<Option<String>, String> {
        if let Some(state) = asked.get(q) {
            return Ok(state.clone());
        }
        let state = last_run(q)?;
        asked.insert(q.clone(), state.clone());
        Ok(state)
    };
    let dependence = &resolved.dependence;
    let mut groups = Vec::new();
    for (g, group) in dependence.groups.iter().enumerate() {
        let mut items = Vec::new();
        for (i, item) in group.groups.iter().enumerate() {
            let label = format!("{}groups[{g}].groups[{i}]", resolved.prefix);
            items.push(item_outcome(item, &label, schedule_ms, &mut cached)?);
        }
        groups.push(Outcome::combine(group.op, items));
    }
    Ok(Outcome::combine(dependence.op, groups))
}

/// At most [`LISTED`] lines, then how many more there are.
fn listing(lines: &[String]) -> String {
    let mut out = lines
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if lines.len() > LISTED {
        out.push_str(&format!("; and {} more", lines.len() - LISTED));
    }
    out
}

/// What one check means for the task: done (succeeded or failed, with a message), or
/// still running with a note on what it waits for.
pub fn conclude(outcome: &Outcome) -> Poll {
    match outcome {
        Outcome::Met => Poll::Done(Done {
            succeeded: true,
            message: "every dependency is met".into(),
        }),
        Outcome::Failed(why) => Poll::Done(Done {
            succeeded: false,
            message: format!("a dependency failed: {}", listing(why)),
        }),
        Outcome::Waiting(what) => Poll::Running(format!("waiting for {}", listing(what))),
    }
}

/// Check once against the host.
fn check_now(params: &Params) -> Result<Poll, Error> {
    let resolved =
        resolve(params).map_err(|e| Error::new(format!("{}: {}", e.field, e.message)))?;
    let schedule_ms = workflow::schedule_time();
    let outcome = evaluate(&resolved, schedule_ms, &mut |q| {
        workflow::last_run(
            q.project.as_deref(),
            &q.workflow,
            q.task.as_deref(),
            q.interval.from_ms,
            q.interval.to_ms,
        )
    })
    .map_err(|e| Error::new(format!("cannot check the dependencies: {e}")))?;
    Ok(conclude(&outcome))
}

pub struct Dependent;

impl TaskType for Dependent {
    type Params = Params;
    const NAME: &'static str = "dependent";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Waits until runs of other workflows or tasks in a date range succeeded (DolphinScheduler's Dependent)";
    // Waiting holds no worker slot: the host polls from the shared container.
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::ExternalJob;

    fn validate(params: &Params) -> Vec<FieldError> {
        check(params)
    }

    fn start(_ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        Ok(match check_now(&params)? {
            Poll::Done(done) => {
                log::info(&done.message);
                Start::Done(done)
            }
            Poll::Running(note) => {
                log::info(&note);
                Start::running(WAITING_HANDLE)
            }
        })
    }

    fn poll(_ctx: &mut TaskContext, params: Params, _handle: &str) -> Result<Poll, Error> {
        let poll = check_now(&params)?;
        if let Poll::Done(done) = &poll {
            log::info(&done.message);
        }
        Ok(poll)
    }

    /// Nothing runs elsewhere: stopping the polls is all there is to it.
    fn cancel(_ctx: &mut TaskContext, _params: Params, _handle: &str) -> Result<(), Error> {
        Ok(())
    }
}

export_task!(Dependent);

#[cfg(test)]
mod tests;
