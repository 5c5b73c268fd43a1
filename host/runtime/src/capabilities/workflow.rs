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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::bindings::workflow::{ChildRun, Host};
use crate::capabilities::HostState;
use crate::invoke::{TaskEnv, TaskIdentity};

/// What the calls that need a master return for a task run on its own.
pub const OUTSIDE_WORKFLOW: &str = "only available inside a workflow run";

/// A boxed future, so [`WorkflowHost`] stays object-safe (it is held as
/// `Arc<dyn WorkflowHost>`) without an async-trait dependency.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a child workflow run stands (`shoal:task/workflow` `child-run`).
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

/// The master's side of `shoal:task/workflow`: what only the scheduler of workflow runs
/// can answer. The master implements it and hands it to each task of a run through
/// [`TaskEnv::workflow_host`](crate::invoke::TaskEnv::workflow_host).
///
/// Every call names the calling task instance, so the implementation can scope it (the
/// caller's project, only the caller's own children). An `Err` is a refusal or a failure
/// the plugin sees as text and usually turns into a failed task; it never traps.
///
/// The futures run inside the plugin call and are dropped when that call loses its race
/// against the task's deadline or cancellation, so they must be cancel-safe: a dropped
/// `start_child` must either not have started the child or leave it findable (for
/// example by recording it as a child of the caller before returning).
pub trait WorkflowHost: Send + Sync {
    /// Start a run of the workflow definition named `workflow`, in the caller's project,
    /// as a child of the caller's task instance, with these startup params. Returns the
    /// child's workflow instance id.
    fn start_child<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        workflow: &'a str,
        params: Vec<(String, String)>,
    ) -> HostFuture<'a, Result<u64, String>>;

    /// Where the caller's child run `instance` stands.
    fn child_status<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<ChildStatus, String>>;

    /// Stop the caller's child run `instance`.
    fn stop_child<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<(), String>>;

    /// The state of the newest run of `workflow` (in `project`, or the caller's project)
    /// whose business time lies in `[from_ms, to_ms)`: the state of its task `task` when
    /// given (kebab-case task state), else the workflow state. `None` when there is no
    /// such run. See `last-run` in `wit/v0.1/task.wit` for a run without that task.
    fn last_run<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        project: Option<&'a str>,
        workflow: &'a str,
        task: Option<&'a str>,
        from_ms: i64,
        to_ms: i64,
    ) -> HostFuture<'a, Result<Option<String>, String>>;
}

/// Lets [`TaskEnv`] and the task engine's request keep deriving `Debug` with an
/// `Option<Arc<dyn WorkflowHost>>` field; the host itself has nothing useful to print.
impl std::fmt::Debug for dyn WorkflowHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkflowHost")
    }
}

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
