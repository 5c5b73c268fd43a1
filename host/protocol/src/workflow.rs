//! The master's side of `shoal:task/workflow`: what only the scheduler of workflow runs
//! can answer for a logic task (child runs, other workflows' runs).

use std::future::Future;
use std::pin::Pin;

use crate::task::TaskIdentity;

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

/// The master's side of `shoal:task/workflow`. The master implements it and hands it to
/// each task of a run through [`TaskRequest::workflow_host`](crate::TaskRequest).
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

    /// The ends of the caller's child runs as they happen, when this host hears of them
    /// (the master whose runs they are); `None` leaves the caller to its poll interval.
    fn child_ends(&self, _caller: &TaskIdentity) -> Option<ChildEnds> {
        None
    }
}

/// Lets requests keep deriving `Debug` with an `Option<Arc<dyn WorkflowHost>>` field;
/// the host itself has nothing useful to print.
impl std::fmt::Debug for dyn WorkflowHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkflowHost")
    }
}

/// Which task instance started a child run: the child's parent task, by workflow run and
/// task name, so every attempt of that task hears of it (a retried attempt follows the
/// child its earlier attempt started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEnd {
    pub workflow_instance_id: u64,
    pub task_name: String,
}

/// Wakes a task that waits on a child run as soon as one of its children ends, so a
/// SubWorkflow looks at once rather than at its next poll. Spurious wakes are allowed (the
/// task only polls early); a missed end is not, which is why the stream is subscribed to
/// before the task's first poll and a lagging receiver counts as a wake.
#[derive(Debug)]
pub struct ChildEnds {
    rx: tokio::sync::broadcast::Receiver<ChildEnd>,
    workflow_instance_id: u64,
    task_name: String,
}

impl ChildEnds {
    pub fn new(rx: tokio::sync::broadcast::Receiver<ChildEnd>, caller: &TaskIdentity) -> Self {
        Self {
            rx,
            workflow_instance_id: caller.workflow_instance_id,
            task_name: caller.task_name.clone(),
        }
    }

    /// Resolves when a child of the caller may have ended; never, once nothing can send.
    pub async fn next(&mut self) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.rx.recv().await {
                Ok(end)
                    if end.workflow_instance_id == self.workflow_instance_id
                        && end.task_name == self.task_name =>
                {
                    return;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}
