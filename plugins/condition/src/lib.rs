//! `condition`: follows its success or its failed branch depending on how its upstream
//! tasks ended, as DolphinScheduler's Condition task does.
//!
//! ```yaml
//! - name: condition
//!   task_type: Condition
//!   deps: [pre_task_1, pre_task_2, pre_task_3]
//!   success_task: success_branch
//!   failed_task: fail_branch
//!   op: AND
//!   groups:
//!     - op: AND
//!       groups:
//!         - task: pre_task_1
//!           flag: true
//!         - task: pre_task_2
//!           flag: true
//!     - op: OR
//!       groups:
//!         - task: pre_task_3
//!           flag: false
//! ```
//!
//! `flag: true` asks for a task that succeeded (`succeeded`, `forced-success`, or
//! `skipped`, which DolphinScheduler also counts as success); `flag: false` asks for one
//! that failed (`failed`, `killed`). Each group combines its items with its `op`, and the
//! outer `op` combines the groups; an empty list is true, as in DolphinScheduler. The
//! states come from the host (`shoal:task/workflow`); the manifest's
//! `[flow] trigger = "all-done"` has the master run this task once every upstream task
//! finished, whatever its result.
//!
//! The task succeeds whenever it could evaluate, and emits the OUT parameter
//! `shoal.branch`: the `success_task` names when the conditions hold, else the
//! `failed_task` names. The master skips the other direct downstream tasks.

use std::fmt;

use shoal_sdk::prelude::*;
use shoal_sdk::serde::de::{self, Deserializer};
use shoal_sdk::workflow::GroupOp as Op;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Downstream task(s) to follow when the conditions hold: a name or a list of names.
    #[serde(default, deserialize_with = "one_or_many")]
    #[schemars(with = "OneOrMany")]
    pub success_task: Vec<String>,
    /// Downstream task(s) to follow otherwise: a name or a list of names.
    #[serde(default, deserialize_with = "one_or_many")]
    #[schemars(with = "OneOrMany")]
    pub failed_task: Vec<String>,
    /// How the groups combine: AND (default) or OR.
    #[serde(default)]
    pub op: Op,
    /// The condition groups.
    #[serde(default)]
    pub groups: Vec<Group>,
}

/// Items combined by one operator.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// How the items combine: AND (default) or OR.
    #[serde(default)]
    pub op: Op,
    #[serde(default)]
    pub groups: Vec<Item>,
}

/// One upstream task and the result asked of it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Name of a direct upstream task.
    pub task: String,
    /// true: the task must have succeeded; false: it must have failed.
    pub flag: bool,
}

/// The schema of `success_task` / `failed_task`: a name or a list of names.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A task name or a list of them (DolphinScheduler writes either).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Names;
    impl<'de> de::Visitor<'de> for Names {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a task name or a list of task names")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                names.push(name);
            }
            Ok(names)
        }
    }
    deserializer.deserialize_any(Names)
}

/// How an upstream task ended, for a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Success,
    Failure,
}

/// Read a host state string. Skipped counts as success, as in DolphinScheduler (a
/// forbidden task lets its dependents run).
fn ending_of(state: &str) -> Option<Ended> {
    match state {
        "succeeded" | "forced-success" | "skipped" => Some(Ended::Success),
        "failed" | "killed" => Some(Ended::Failure),
        _ => None,
    }
}

/// Where the conditions led, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the conditions hold (the success branch is taken).
    pub holds: bool,
    /// The downstream tasks to follow.
    pub branch: Vec<String>,
    /// One line for the task's result message.
    pub message: String,
}

/// Static checks: every item names a task.
pub fn check(params: &Params) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, names) in [
        ("success_task", &params.success_task),
        ("failed_task", &params.failed_task),
    ] {
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                errors.push(FieldError::new(format!("{field}[{i}]"), "empty task name"));
            }
        }
    }
    for (g, group) in params.groups.iter().enumerate() {
        for (i, item) in group.groups.iter().enumerate() {
            if item.task.trim().is_empty() {
                errors.push(FieldError::new(
                    format!("groups[{g}].groups[{i}].task"),
                    "no upstream task named",
                ));
            }
        }
    }
    errors
}

/// Combine already computed values; every item is computed first, so an unknown task is
/// reported even where the operator could have stopped early.
fn combine(op: Op, values: &[bool]) -> bool {
    match op {
        Op::And => values.iter().all(|v| *v),
        // An empty group is true whatever its operator, as in DolphinScheduler.
        Op::Or => values.is_empty() || values.iter().any(|v| *v),
    }
}

/// Evaluate the conditions against the upstream states (task name, state).
pub fn evaluate(params: &Params, upstream: &[(String, String)]) -> Result<Verdict, String> {
    let mut group_results = Vec::new();
    let mut details = Vec::new();
    for (g, group) in params.groups.iter().enumerate() {
        let mut items = Vec::new();
        let mut notes = Vec::new();
        for (i, item) in group.groups.iter().enumerate() {
            let field = format!("groups[{g}].groups[{i}]");
            let Some((_, state)) = upstream.iter().find(|(name, _)| *name == item.task) else {
                let known = if upstream.is_empty() {
                    "this task has no upstream tasks (run on its own, a condition has nothing to check)".to_owned()
                } else {
                    let names: Vec<String> =
                        upstream.iter().map(|(n, _)| format!("`{n}`")).collect();
                    format!("its upstream tasks are {}", names.join(", "))
                };
                return Err(format!(
                    "{field} names task `{}`, which is not a direct upstream task of this condition; {known}",
                    item.task
                ));
            };
            let Some(ended) = ending_of(state) else {
                return Err(format!(
                    "{field}: upstream task `{}` is `{state}`, not finished (a condition needs succeeded, forced-success, skipped, failed or killed)",
                    item.task
                ));
            };
            let wanted = if item.flag {
                Ended::Success
            } else {
                Ended::Failure
            };
            let ok = ended == wanted;
            notes.push(format!(
                "{} {state}{}",
                item.task,
                match (ok, item.flag) {
                    (true, _) => "",
                    (false, true) => " (wanted success)",
                    (false, false) => " (wanted failure)",
                }
            ));
            items.push(ok);
        }
        let holds = combine(group.op, &items);
        details.push(format!(
            "groups[{g}] {} is {holds} ({})",
            group.op,
            if notes.is_empty() {
                "empty".to_owned()
            } else {
                notes.join(", ")
            }
        ));
        group_results.push(holds);
    }
    let holds = combine(params.op, &group_results);
    let (which, branch) = if holds {
        ("success_task", &params.success_task)
    } else {
        ("failed_task", &params.failed_task)
    };
    let names: Vec<String> = branch.iter().map(|n| format!("`{n}`")).collect();
    let target = if names.is_empty() {
        format!("{which} is empty, so no downstream task runs")
    } else {
        format!("following {which} {}", names.join(", "))
    };
    let why = if details.is_empty() {
        "there are no condition groups".to_owned()
    } else {
        format!("{} of {}", params.op, details.join("; "))
    };
    Ok(Verdict {
        holds,
        branch: branch.clone(),
        message: format!(
            "conditions {}: {target}; {why}",
            if holds { "hold" } else { "do not hold" }
        ),
    })
}

pub struct Condition;

impl TaskType for Condition {
    type Params = Params;
    const NAME: &'static str = "condition";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Follows its success or failed branch by how its upstream tasks ended (DolphinScheduler's Condition)";

    fn validate(params: &Params) -> Vec<FieldError> {
        check(params)
    }

    fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        let upstream = workflow::upstream_states();
        let verdict = evaluate(&params, &upstream)?;
        log::info(&verdict.message);
        ctx.set_branch(&verdict.branch);
        Ok(Start::success(verdict.message))
    }
}

export_task!(Condition);

#[cfg(test)]
mod tests {
    use super::*;

    const DS: &str = r#"{
        "success_task": "success_branch",
        "failed_task": ["fail_branch", "alert"],
        "op": "AND",
        "groups": [
            {"op": "AND", "groups": [
                {"task": "pre_task_1", "flag": true},
                {"task": "pre_task_2", "flag": true}
            ]},
            {"op": "or", "groups": [
                {"task": "pre_task_3", "flag": false}
            ]}
        ]
    }"#;

    fn params(json: &str) -> Params {
        shoal_sdk::parse_params(json).unwrap()
    }

    fn states(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect()
    }

    #[test]
    fn parses_the_dolphinscheduler_shape() {
        let p = params(DS);
        assert_eq!(p.success_task, ["success_branch"]);
        assert_eq!(p.failed_task, ["fail_branch", "alert"]);
        assert_eq!(p.op, Op::And);
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[1].op, Op::Or);
        assert_eq!(p.groups[1].groups[0].task, "pre_task_3");
        assert!(!p.groups[1].groups[0].flag);
        assert!(check(&p).is_empty());
    }

    #[test]
    fn bad_params_name_the_field() {
        let err = shoal_sdk::parse_params::<Params>(r#"{"op":"xor","groups":[]}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "op");
        assert!(
            err.message.contains("expected AND or OR"),
            "{}",
            err.message
        );

        let err = shoal_sdk::parse_params::<Params>(r#"{"success_task":5}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "success_task");
        assert!(
            err.message.contains("a task name or a list"),
            "{}",
            err.message
        );

        let err = shoal_sdk::parse_params::<Params>(
            r#"{"groups":[{"groups":[{"task":"a","flag":true,"status":"x"}]}]}"#,
        )
        .err()
        .unwrap();
        assert_eq!(err.field, "groups[0].groups[0].status");

        let err = shoal_sdk::parse_params::<Params>(r#"{"groups":[{"groups":[{"task":"a"}]}]}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "groups[0].groups[0].flag");

        let p = params(r#"{"success_task":[""],"groups":[{"groups":[{"task":" ","flag":true}]}]}"#);
        let fields: Vec<String> = check(&p).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["success_task[0]", "groups[0].groups[0].task"]);
    }

    #[test]
    fn holds_picks_the_success_branch() {
        let v = evaluate(
            &params(DS),
            &states(&[
                ("pre_task_1", "succeeded"),
                ("pre_task_2", "forced-success"),
                ("pre_task_3", "failed"),
            ]),
        )
        .unwrap();
        assert!(v.holds);
        assert_eq!(v.branch, ["success_branch"]);
        assert!(
            v.message
                .starts_with("conditions hold: following success_task `success_branch`"),
            "{}",
            v.message
        );
        assert!(
            v.message
                .contains("groups[1] OR is true (pre_task_3 failed)"),
            "{}",
            v.message
        );
    }

    #[test]
    fn not_holding_picks_the_failed_branch() {
        let v = evaluate(
            &params(DS),
            &states(&[
                ("pre_task_1", "succeeded"),
                ("pre_task_2", "killed"),
                ("pre_task_3", "failed"),
            ]),
        )
        .unwrap();
        assert!(!v.holds);
        assert_eq!(v.branch, ["fail_branch", "alert"]);
        assert!(
            v.message.contains("pre_task_2 killed (wanted success)"),
            "{}",
            v.message
        );

        // A skipped task counts as success, so `flag: false` on it does not hold.
        let v = evaluate(
            &params(DS),
            &states(&[
                ("pre_task_1", "skipped"),
                ("pre_task_2", "succeeded"),
                ("pre_task_3", "skipped"),
            ]),
        )
        .unwrap();
        assert!(!v.holds);
        assert!(
            v.message.contains("pre_task_3 skipped (wanted failure)"),
            "{}",
            v.message
        );
    }

    #[test]
    fn or_of_groups_and_empty_lists() {
        let p = params(
            r#"{"success_task":"s","failed_task":"f","op":"Or","groups":[
                {"groups":[{"task":"a","flag":true}]},
                {"groups":[{"task":"b","flag":true}]}]}"#,
        );
        let v = evaluate(&p, &states(&[("a", "failed"), ("b", "succeeded")])).unwrap();
        assert_eq!(v.branch, ["s"]);
        let v = evaluate(&p, &states(&[("a", "failed"), ("b", "killed")])).unwrap();
        assert_eq!(v.branch, ["f"]);

        let empty = params(r#"{"success_task":"s","failed_task":"f"}"#);
        let v = evaluate(&empty, &[]).unwrap();
        assert!(v.holds);
        assert!(v.message.contains("no condition groups"), "{}", v.message);

        let no_failed =
            params(r#"{"success_task":"s","groups":[{"groups":[{"task":"a","flag":true}]}]}"#);
        let v = evaluate(&no_failed, &states(&[("a", "failed")])).unwrap();
        assert!(v.branch.is_empty());
        assert!(v.message.contains("failed_task is empty"), "{}", v.message);
    }

    #[test]
    fn unknown_or_unfinished_upstream_is_an_error() {
        let err = evaluate(&params(DS), &states(&[("pre_task_1", "succeeded")])).unwrap_err();
        assert!(
            err.contains("groups[0].groups[1] names task `pre_task_2`"),
            "{err}"
        );
        assert!(err.contains("its upstream tasks are `pre_task_1`"), "{err}");

        let err = evaluate(&params(DS), &[]).unwrap_err();
        assert!(err.contains("no upstream tasks"), "{err}");

        let err = evaluate(
            &params(DS),
            &states(&[
                ("pre_task_1", "running"),
                ("pre_task_2", "succeeded"),
                ("pre_task_3", "failed"),
            ]),
        )
        .unwrap_err();
        assert!(
            err.contains("`pre_task_1` is `running`, not finished"),
            "{err}"
        );
    }
}
