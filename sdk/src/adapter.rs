//! Glue between the generated `shoal:task/plugin` bindings and a [`TaskType`].

use std::marker::PhantomData;

use crate::bindings::exports::shoal::task::controls;
use crate::bindings::exports::shoal::task::plugin::Guest;
use crate::bindings::shoal::task::types as wit;
use crate::{Done, ExecutionClass, Poll, Start, TaskContext, TaskType, parse_params};

/// The component export for task type `T`; instantiated by [`crate::export_task!`].
pub struct Adapter<T>(PhantomData<T>);

fn context(ctx: &wit::TaskContext) -> TaskContext {
    TaskContext {
        workflow_instance_id: ctx.workflow_instance_id,
        task_instance_id: ctx.task_instance_id,
        task_name: ctx.task_name.clone(),
        attempt: ctx.attempt,
        work_dir: ctx.work_dir.clone(),
        out_params: Vec::new(),
    }
}

fn result(done: Done, ctx: TaskContext) -> wit::TaskResult {
    wit::TaskResult {
        status: if done.succeeded {
            wit::TaskStatus::Succeeded
        } else {
            wit::TaskStatus::Failed
        },
        message: done.message,
        out_params: ctx.out_params,
    }
}

fn params<T: TaskType>(ctx: &wit::TaskContext) -> Result<T::Params, String> {
    parse_params::<T::Params>(&ctx.params)
        .map_err(|e| format!("invalid parameter `{}`: {}", e.field, e.message))
}

impl<T: TaskType> Guest for Adapter<T> {
    fn describe() -> wit::PluginInfo {
        let schema = schemars::schema_for!(T::Params);
        wit::PluginInfo {
            name: T::NAME.to_owned(),
            version: T::VERSION.to_owned(),
            description: T::DESCRIPTION.to_owned(),
            params_schema: serde_json::to_string(&schema).unwrap_or_default(),
            execution_class: match T::EXECUTION_CLASS {
                ExecutionClass::Short => wit::ExecutionClass::Short,
                ExecutionClass::Blocking => wit::ExecutionClass::Blocking,
                ExecutionClass::ExternalJob => wit::ExecutionClass::ExternalJob,
            },
            capabilities: T::CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn validate(params: String) -> Vec<wit::FieldError> {
        let errors = match parse_params::<T::Params>(&params) {
            Ok(p) => T::validate(&p),
            Err(e) => vec![e],
        };
        errors
            .into_iter()
            .map(|e| wit::FieldError {
                field: e.field,
                message: e.message,
            })
            .collect()
    }

    fn start(ctx: wit::TaskContext) -> Result<wit::StartOutcome, String> {
        let p = params::<T>(&ctx)?;
        let mut task = context(&ctx);
        match T::start(&mut task, p).map_err(|e| e.0)? {
            Start::Done(done) => Ok(wit::StartOutcome::Finished(result(done, task))),
            Start::Running { handle } => Ok(wit::StartOutcome::Running(handle)),
        }
    }

    fn poll(ctx: wit::TaskContext, handle: String) -> Result<wit::PollOutcome, String> {
        let p = params::<T>(&ctx)?;
        let mut task = context(&ctx);
        match T::poll(&mut task, p, &handle).map_err(|e| e.0)? {
            Poll::Running(note) => Ok(wit::PollOutcome::Running(note)),
            Poll::Done(done) => Ok(wit::PollOutcome::Finished(result(done, task))),
        }
    }

    fn cancel(ctx: wit::TaskContext, handle: String) -> Result<(), String> {
        let p = params::<T>(&ctx)?;
        let mut task = context(&ctx);
        T::cancel(&mut task, p, &handle).map_err(|e| e.0)
    }
}

impl<T: TaskType> controls::Guest for Adapter<T> {
    fn actions() -> Vec<controls::ActionInfo> {
        T::ACTIONS
            .iter()
            .map(|a| controls::ActionInfo {
                name: a.name.to_owned(),
                description: a.description.to_owned(),
            })
            .collect()
    }

    fn act(
        ctx: wit::TaskContext,
        handle: String,
        action: String,
        args: String,
    ) -> Result<controls::ActionOutcome, String> {
        let p = params::<T>(&ctx)?;
        let mut task = context(&ctx);
        let args: serde_json::Value = if args.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(&args).map_err(|e| format!("action arguments: {e}"))?
        };
        let done = T::act(&mut task, p, &handle, &action, args).map_err(|e| e.0)?;
        Ok(controls::ActionOutcome {
            message: done.message,
            new_handle: done.new_handle,
            job_ended: done.job_ended,
        })
    }
}
