//! `sub-workflow`: runs another workflow as a child run and ends as that run ends, as
//! DolphinScheduler's SubWorkflow (formerly SubProcess) task does.
//!
//! ```yaml
//! - name: child
//!   task_type: SubWorkflow
//!   workflow_name: other_workflow          # or process_definition_name, or
//!                                          # $WORKFLOW{"other.yaml"} (its name)
//!   params: {day: "${system.biz.date}"}    # Shoal: the child's startup params
//! ```
//!
//! `start` asks the master (`shoal:task/workflow` `start-child`) to start the workflow
//! named `workflow_name` in the same project as a child of this task instance, and
//! returns the child's workflow instance id as the external-job handle. That is all the
//! state there is: the host persists the handle, so after a restart `poll` and `cancel`
//! find the child from it alone. Each `poll` reads the child's state; once it finished,
//! the task succeeds or fails with it and passes on the child's OUT parameters. `cancel`
//! (the task killed or timed out) stops the child.
//!
//! The task is an external job, so it waits in the shared container rather than holding
//! a worker slot for the whole child run. There is no timeout of its own: the task's
//! `timeout` bounds the child run.

use std::collections::BTreeMap;

use shoal_sdk::prelude::*;
use shoal_sdk::workflow::ChildStatus;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Name of the workflow definition to run, in this run's project.
    /// `process_definition_name` is DolphinScheduler's older spelling.
    #[serde(
        alias = "process_definition_name",
        deserialize_with = "shoal_sdk::text::scalar"
    )]
    #[schemars(with = "shoal_sdk::text::Scalar")]
    pub workflow_name: String,
    /// Startup parameters for the child run, name → value (a Shoal extension).
    #[serde(default, deserialize_with = "shoal_sdk::text::scalar_map")]
    #[schemars(with = "BTreeMap<String, shoal_sdk::text::Scalar>")]
    pub params: BTreeMap<String, String>,
}

/// Static checks beyond the shape: the workflow and the parameters are named.
pub fn check(params: &Params) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if params.workflow_name.trim().is_empty() {
        errors.push(FieldError::new("workflow_name", "no workflow named"));
    }
    for name in params.params.keys() {
        if name.trim().is_empty() {
            errors.push(FieldError::new("params", "a parameter has an empty name"));
        }
    }
    errors
}

/// The child instance id kept in the handle.
pub fn child_id(handle: &str) -> Result<u64, String> {
    handle.trim().parse().map_err(|_| {
        format!("handle `{handle}` is not a child workflow instance id (a whole number)")
    })
}

/// What one look at the child means for this task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not finished; a note for the task log.
    Running(String),
    Finished {
        succeeded: bool,
        message: String,
        /// The child's OUT parameters, passed on as this task's.
        out_params: Vec<(String, String)>,
    },
}

/// Read a child's status.
pub fn progress(workflow: &str, instance: u64, status: ChildStatus) -> Progress {
    if !status.finished {
        return Progress::Running(format!("child instance {instance} is {}", status.state));
    }
    let message = if status.succeeded {
        format!("child workflow `{workflow}` (instance {instance}) succeeded")
    } else {
        format!(
            "child workflow `{workflow}` (instance {instance}) ended {}",
            status.state
        )
    };
    Progress::Finished {
        succeeded: status.succeeded,
        message,
        out_params: status.out_params,
    }
}

pub struct SubWorkflow;

impl TaskType for SubWorkflow {
    type Params = Params;
    const NAME: &'static str = "sub-workflow";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Runs another workflow as a child run and ends as it ends (DolphinScheduler's SubWorkflow)";
    // The child runs elsewhere (in the master); polling it holds no worker slot.
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::ExternalJob;

    fn validate(params: &Params) -> Vec<FieldError> {
        check(params)
    }

    fn start(_ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        let startup: Vec<(&String, &String)> = params.params.iter().collect();
        let id = workflow::start_child(&params.workflow_name, &startup).map_err(|e| {
            Error::new(format!(
                "cannot start workflow `{}` as a child run: {e}",
                params.workflow_name
            ))
        })?;
        log::info(format!(
            "started workflow `{}` as child instance {id}",
            params.workflow_name
        ));
        Ok(Start::running(id.to_string()))
    }

    fn poll(ctx: &mut TaskContext, params: Params, handle: &str) -> Result<Poll, Error> {
        let id = child_id(handle)?;
        let status = workflow::child_status(id).map_err(|e| {
            Error::new(format!(
                "cannot read child instance {id} of workflow `{}`: {e}",
                params.workflow_name
            ))
        })?;
        Ok(match progress(&params.workflow_name, id, status) {
            Progress::Running(note) => Poll::Running(note),
            Progress::Finished {
                succeeded,
                message,
                out_params,
            } => {
                for (k, v) in out_params {
                    ctx.set_out_param(k, v);
                }
                log::info(&message);
                Poll::Done(Done { succeeded, message })
            }
        })
    }

    fn cancel(_ctx: &mut TaskContext, params: Params, handle: &str) -> Result<(), Error> {
        let id = child_id(handle)?;
        workflow::stop_child(id).map_err(|e| {
            Error::new(format!(
                "cannot stop child instance {id} of workflow `{}`: {e}",
                params.workflow_name
            ))
        })?;
        log::info(format!("stopped child instance {id}"));
        Ok(())
    }
}

export_task!(SubWorkflow);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        shoal_sdk::parse_params(json).unwrap()
    }

    fn status(state: &str, finished: bool, succeeded: bool) -> ChildStatus {
        ChildStatus {
            state: state.into(),
            finished,
            succeeded,
            out_params: vec![("rows".into(), "42".into())],
        }
    }

    #[test]
    fn accepts_both_dolphinscheduler_spellings() {
        let p = params(r#"{"workflow_name":"other_workflow"}"#);
        assert_eq!(p.workflow_name, "other_workflow");
        assert!(p.params.is_empty());
        assert!(check(&p).is_empty());

        let p = params(r#"{"process_definition_name":"legacy"}"#);
        assert_eq!(p.workflow_name, "legacy");
    }

    #[test]
    fn yaml_scalars_become_text() {
        // What the loader makes of `workflow_name: 2024` and `params: {n: 3, on: true}`.
        let p = params(r#"{"workflow_name":2024,"params":{"n":3,"on":true,"x":1.5,"s":"v"}}"#);
        assert_eq!(p.workflow_name, "2024");
        let got: Vec<(&str, &str)> = p
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, [("n", "3"), ("on", "true"), ("s", "v"), ("x", "1.5")]);
    }

    #[test]
    fn bad_params_name_the_field() {
        let err = shoal_sdk::parse_params::<Params>("{}").err().unwrap();
        assert_eq!(err.field, "workflow_name");

        let err = shoal_sdk::parse_params::<Params>(r#"{"workflow_name":"a","workflow":"b"}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "workflow");

        let err = shoal_sdk::parse_params::<Params>(r#"{"workflow_name":"a","params":{"k":[1]}}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "params.k");
        assert!(
            err.message.contains("a string, number or boolean"),
            "{}",
            err.message
        );

        let p = params(r#"{"workflow_name":" ","params":{"":"v"}}"#);
        let fields: Vec<String> = check(&p).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["workflow_name", "params"]);
    }

    #[test]
    fn handles_are_instance_ids() {
        assert_eq!(child_id("17"), Ok(17));
        assert_eq!(child_id(" 17\n"), Ok(17));
        let err = child_id("waiting").unwrap_err();
        assert!(
            err.contains("`waiting` is not a child workflow instance id"),
            "{err}"
        );
    }

    #[test]
    fn a_running_child_is_a_progress_note() {
        assert_eq!(
            progress("other", 17, status("running", false, false)),
            Progress::Running("child instance 17 is running".into())
        );
        // Paused is not finished: it may still resume.
        assert_eq!(
            progress("other", 17, status("paused", false, false)),
            Progress::Running("child instance 17 is paused".into())
        );
    }

    #[test]
    fn a_finished_child_ends_the_task_with_its_out_params() {
        let Progress::Finished {
            succeeded,
            message,
            out_params,
        } = progress("other", 17, status("succeeded", true, true))
        else {
            panic!("finished child");
        };
        assert!(succeeded);
        assert_eq!(message, "child workflow `other` (instance 17) succeeded");
        assert_eq!(out_params, [("rows".to_owned(), "42".to_owned())]);

        let Progress::Finished {
            succeeded, message, ..
        } = progress("other", 17, status("stopped", true, false))
        else {
            panic!("finished child");
        };
        assert!(!succeeded);
        assert_eq!(
            message,
            "child workflow `other` (instance 17) ended stopped"
        );
    }
}
