//! `switch`: follows one downstream branch, as DolphinScheduler's Switch task does.
//!
//! ```yaml
//! - name: switch
//!   task_type: Switch
//!   deps: [parent]
//!   condition:
//!     - task: switch_child_1
//!       condition: "${var} > 1"
//!     - task: switch_child_2      # no condition = the default branch
//! ```
//!
//! Branches are tried in order and the first whose condition is true wins; when none is,
//! the default branch (the one without a condition) is followed, and without a default
//! the task fails. The host substitutes `${...}` before the plugin sees the conditions;
//! [`expr`] evaluates what is left. The choice is emitted as the OUT parameter
//! `shoal.branch` (a JSON array holding the chosen task's name), on which the master
//! skips the other direct downstream tasks.

pub mod expr;

use shoal_sdk::prelude::*;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The branches, tried in order.
    pub condition: Vec<Branch>,
}

/// One branch: the downstream task to follow when its condition is true.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// Name of the downstream task this branch leads to.
    pub task: String,
    /// A boolean expression such as `${var} > 1`; none marks the default branch, taken
    /// when no other condition is true.
    #[serde(default)]
    pub condition: Option<String>,
}

/// The branch a switch takes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index of the chosen branch in `condition`.
    pub index: usize,
    pub task: String,
    /// One line for the task's result message.
    pub reason: String,
}

/// Static checks: every branch names a task, at most one default, conditions parse.
pub fn check(params: &Params) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if params.condition.is_empty() {
        errors.push(FieldError::new("condition", "no branches given"));
    }
    let mut default = None;
    for (i, branch) in params.condition.iter().enumerate() {
        if branch.task.trim().is_empty() {
            errors.push(FieldError::new(
                format!("condition[{i}].task"),
                "no downstream task named",
            ));
        }
        match &branch.condition {
            None => match default {
                Some(first) => errors.push(FieldError::new(
                    format!("condition[{i}]"),
                    format!(
                        "a second default branch (one without `condition`); condition[{first}] is already the default"
                    ),
                )),
                None => default = Some(i),
            },
            Some(text) if text.trim().is_empty() => errors.push(FieldError::new(
                format!("condition[{i}].condition"),
                "the condition is empty; leave `condition` out to make this the default branch",
            )),
            Some(text) => {
                if let Err(e) = expr::check(text) {
                    errors.push(FieldError::new(
                        format!("condition[{i}].condition"),
                        format!("`{text}`: {e}"),
                    ));
                }
            }
        }
    }
    errors
}

/// Pick the branch: the first true condition, else the default branch.
pub fn decide(params: &Params) -> Result<Decision, String> {
    let mut default = None;
    let mut tried = Vec::new();
    for (i, branch) in params.condition.iter().enumerate() {
        let Some(text) = &branch.condition else {
            default.get_or_insert(i);
            continue;
        };
        let holds = expr::evaluate(text)
            .map_err(|e| format!("condition[{i}] `{text}` (branch `{}`): {e}", branch.task))?;
        if holds {
            return Ok(Decision {
                index: i,
                task: branch.task.clone(),
                reason: format!(
                    "took branch `{}`: condition[{i}] `{text}` is true",
                    branch.task
                ),
            });
        }
        tried.push(format!("condition[{i}] `{text}`"));
    }
    let none_true = if tried.is_empty() {
        "there are no conditions".to_owned()
    } else {
        format!("no condition is true ({} false)", tried.join(", "))
    };
    match default {
        Some(i) => Ok(Decision {
            index: i,
            task: params.condition[i].task.clone(),
            reason: format!(
                "took the default branch `{}` (condition[{i}]): {none_true}",
                params.condition[i].task
            ),
        }),
        None => Err(format!(
            "{none_true}, and there is no default branch (a branch without `condition`) to follow"
        )),
    }
}

pub struct Switch;

impl TaskType for Switch {
    type Params = Params;
    const NAME: &'static str = "switch";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Follows the first downstream branch whose condition is true (DolphinScheduler's Switch)";

    fn validate(params: &Params) -> Vec<FieldError> {
        check(params)
    }

    fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        let decision = decide(&params)?;
        log::info(&decision.reason);
        ctx.set_branch([&decision.task]);
        Ok(Start::success(decision.reason))
    }
}

export_task!(Switch);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        shoal_sdk::parse_params(json).unwrap()
    }

    #[test]
    fn parses_the_dolphinscheduler_shape() {
        let p = params(
            r#"{"condition":[{"task":"switch_child_1","condition":"5 > 1"},{"task":"switch_child_2"}]}"#,
        );
        assert_eq!(p.condition.len(), 2);
        assert_eq!(p.condition[0].task, "switch_child_1");
        assert_eq!(p.condition[0].condition.as_deref(), Some("5 > 1"));
        assert_eq!(p.condition[1].condition, None);
        assert!(check(&p).is_empty());
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let err = shoal_sdk::parse_params::<Params>(r#"{"condition":[{"task":"a","when":"1"}]}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "condition[0].when");
        assert!(err.message.contains("when"), "{}", err.message);

        let err = shoal_sdk::parse_params::<Params>(r#"{"condition":[{"condition":"1 > 0"}]}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "condition[0].task");

        let err = shoal_sdk::parse_params::<Params>("{}").err().unwrap();
        assert_eq!(err.field, "condition");
    }

    #[test]
    fn validation_finds_a_second_default_and_bad_conditions() {
        let p = params(
            r#"{"condition":[{"task":"a"},{"task":"b","condition":"1 >"},{"task":""},{"task":"c","condition":" "}]}"#,
        );
        let errors = check(&p);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "condition[1].condition",
                "condition[2].task",
                "condition[2]",
                "condition[3].condition"
            ]
        );
        assert!(errors[0].message.contains("column 4"), "{:?}", errors[0]);
        assert!(
            errors[2].message.contains("condition[0]"),
            "{:?}",
            errors[2]
        );
        assert!(check(&params(r#"{"condition":[]}"#))[0].field == "condition");
    }

    #[test]
    fn first_true_branch_wins() {
        let p = params(
            r#"{"condition":[{"task":"a","condition":"0 > 1"},{"task":"b","condition":"'x' == 'x'"},{"task":"c","condition":"2 > 1"},{"task":"d"}]}"#,
        );
        let d = decide(&p).unwrap();
        assert_eq!((d.index, d.task.as_str()), (1, "b"));
        assert!(
            d.reason.contains("condition[1] `'x' == 'x'` is true"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn default_branch_when_nothing_is_true_wherever_it_stands() {
        let p = params(
            r#"{"condition":[{"task":"d"},{"task":"a","condition":"0 > 1"},{"task":"b","condition":"false"}]}"#,
        );
        let d = decide(&p).unwrap();
        assert_eq!((d.index, d.task.as_str()), (0, "d"));
        assert!(d.reason.contains("default branch `d`"), "{}", d.reason);
        assert!(d.reason.contains("condition[1] `0 > 1`"), "{}", d.reason);

        let only_default = params(r#"{"condition":[{"task":"d"}]}"#);
        assert_eq!(decide(&only_default).unwrap().task, "d");
    }

    #[test]
    fn nothing_true_and_no_default_fails() {
        let p = params(r#"{"condition":[{"task":"a","condition":"1 > 2"}]}"#);
        let err = decide(&p).unwrap_err();
        assert!(err.contains("no default branch"), "{err}");
        assert!(err.contains("condition[0] `1 > 2`"), "{err}");
    }

    #[test]
    fn a_broken_condition_fails_naming_it() {
        let p =
            params(r#"{"condition":[{"task":"a","condition":"hello world > 1"},{"task":"b"}]}"#);
        let err = decide(&p).unwrap_err();
        assert!(
            err.starts_with("condition[0] `hello world > 1` (branch `a`): at column 7"),
            "{err}"
        );
    }
}
