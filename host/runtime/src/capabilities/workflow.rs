//! `shoal:task/workflow`: the workflow run around the current task.
//!
//! It owns what a logic task may learn about, and do to, the scheduler around it:
//!
//! - the states of its direct upstream tasks (Switch, Condition), which the master puts
//!   in [`TaskEnv::upstream_states`];
//! - child workflow runs (SubWorkflow) and the newest runs of other workflows in a time
//!   range (Dependent), which only the master can answer: it plugs in through the
//!   [`WorkflowHost`] trait ([`TaskEnv::workflow_host`]);
//! - the run's business time ([`TaskEnv::schedule_time_ms`]).
//!
//! None of it needs a grant: the master answers every call on behalf of the calling task
//! instance ([`TaskIdentity`]) and applies its own rules there. A task run on its own
//! (`shoal task run`) has no master, so it gets an empty upstream list, a business time
//! of 0, and [`OUTSIDE_WORKFLOW`] from the other calls: a plain refusal the plugin turns
//! into a task failure, never a trap.
//!
//! [`TaskEnv::upstream_states`]: crate::invoke::TaskEnv::upstream_states
//! [`TaskEnv::workflow_host`]: crate::invoke::TaskEnv::workflow_host
//! [`TaskEnv::schedule_time_ms`]: crate::invoke::TaskEnv::schedule_time_ms

use std::sync::Arc;

use crate::bindings::workflow::{ChildRun, Host};
use crate::capabilities::HostState;
use crate::invoke::{TaskEnv, TaskIdentity};

pub use shoal_protocol::{ChildStatus, HostFuture, OUTSIDE_WORKFLOW, WorkflowHost};

pub struct WorkflowCapability {
    upstream_states: Vec<(String, String)>,
    identity: TaskIdentity,
    host: Option<Arc<dyn WorkflowHost>>,
    schedule_time_ms: i64,
}

impl WorkflowCapability {
    pub fn new(env: &TaskEnv) -> Self {
        Self {
            upstream_states: env.upstream_states.clone(),
            identity: env.identity.clone(),
            host: env.workflow_host.clone(),
            schedule_time_ms: env.schedule_time_ms,
        }
    }

    /// Drop the master hook, for calls that must not act on the scheduler (`describe`
    /// and `validate` run before, and apart from, the task itself).
    pub(crate) fn detach(&mut self) {
        self.host = None;
    }

    fn host(&self) -> Result<&Arc<dyn WorkflowHost>, String> {
        self.host
            .as_ref()
            .ok_or_else(|| OUTSIDE_WORKFLOW.to_owned())
    }
}

impl Host for HostState {
    async fn upstream_states(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.workflow.upstream_states.clone())
    }

    async fn start_child(
        &mut self,
        workflow: String,
        params: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<u64, String>> {
        let cap = &self.workflow;
        Ok(match cap.host() {
            Ok(host) => host.start_child(&cap.identity, &workflow, params).await,
            Err(e) => Err(e),
        })
    }

    async fn child_status(&mut self, instance: u64) -> wasmtime::Result<Result<ChildRun, String>> {
        let cap = &self.workflow;
        let status = match cap.host() {
            Ok(host) => host.child_status(&cap.identity, instance).await,
            Err(e) => Err(e),
        };
        Ok(status.map(|s| ChildRun {
            state: s.state,
            finished: s.finished,
            succeeded: s.succeeded,
            out_params: s.out_params,
        }))
    }

    async fn stop_child(&mut self, instance: u64) -> wasmtime::Result<Result<(), String>> {
        let cap = &self.workflow;
        Ok(match cap.host() {
            Ok(host) => host.stop_child(&cap.identity, instance).await,
            Err(e) => Err(e),
        })
    }

    async fn schedule_time(&mut self) -> wasmtime::Result<i64> {
        // Without a master there is no run, so no business time, whatever the env says.
        let cap = &self.workflow;
        Ok(if cap.host.is_some() {
            cap.schedule_time_ms
        } else {
            0
        })
    }

    async fn last_run(
        &mut self,
        project: Option<String>,
        workflow: String,
        task: Option<String>,
        from_ms: i64,
        to_ms: i64,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        let cap = &self.workflow;
        Ok(match cap.host() {
            Ok(host) => {
                host.last_run(
                    &cap.identity,
                    project.as_deref(),
                    &workflow,
                    task.as_deref(),
                    from_ms,
                    to_ms,
                )
                .await
            }
            Err(e) => Err(e),
        })
    }
}
