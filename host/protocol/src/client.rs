//! The [`TaskExecutorClient`]: the one way the master reaches task execution, whether
//! the TaskEngine runs in its own process or on a remote worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shoal_model::Trigger;

use crate::task::{KeyedEvent, TaskKey, TaskRequest};

/// A boxed future, so the traits here stay object-safe without async-trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ClientError {
    /// The node did not answer (down, partitioned, or too slow).
    #[error("node {host} is unreachable: {why}")]
    Unreachable { host: String, why: String },
    /// The node answered and refused (a stale generation, an unknown attempt, ...).
    #[error("node {host} refused: {why}")]
    Refused { host: String, why: String },
    /// No live worker serves the task's worker group.
    #[error("no worker serves worker group `{0}`")]
    NoWorker(String),
}

/// What a task type needs from the master before it is dispatched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTypeInfo {
    /// Which upstream results let its tasks run.
    pub trigger: Trigger,
}

/// The answer to [`TaskExecutorClient::take_over`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TakeOver {
    /// The attempt still runs there; its updates now go to the caller.
    Running,
    /// The node does not run it (it ended and its end was stored, or it was lost).
    Unknown,
}

/// A task attempt a node is executing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningTask {
    pub key: TaskKey,
    pub task_type: String,
    pub handle: Option<String>,
}

/// A named action on an attempt's external job (`shoal:task/controls`): a Flink job's
/// savepoint, say. The attempt travels as it would be dispatched again (type, version,
/// parameters), its job's handle in `task.attach_to`; `cancel` is the host's own action,
/// which calls the plugin's `cancel` on a job whose task already ended (a stream job).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlRequest {
    pub task: TaskRequest,
    pub action: String,
    /// The action's options as a JSON object.
    pub args: serde_json::Value,
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlDone {
    pub message: String,
    /// Replaces the attempt's handle.
    pub new_handle: Option<String>,
    /// The action ended the job: a running attempt ends as killed.
    pub job_ended: bool,
}

/// The action the host offers on every external job: cancel it through the plugin.
pub const CANCEL_ACTION: &str = "cancel";

/// Where a node sends task updates: the master that owns the instance. Delivering
/// resolves once the update is durably stored (or found stale, which changes nothing):
/// that is its acknowledgement. An error means "not acknowledged; send it again".
pub trait TaskEventSink: Send + Sync {
    fn deliver(&self, event: KeyedEvent) -> BoxFuture<'static, Result<(), String>>;

    /// Several updates of one workflow instance, oldest first; one answer each, in
    /// order. The default hands each over once the one before it is acknowledged; a
    /// sink that can take them in order at once should, so they are stored together.
    fn deliver_many(&self, events: Vec<KeyedEvent>) -> BoxFuture<'static, Vec<Result<(), String>>> {
        let pending: Vec<_> = events.into_iter().map(|e| self.deliver(e)).collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(pending.len());
            for ack in pending {
                out.push(ack.await);
            }
            out
        })
    }
}

/// Control commands from the master to task execution.
///
/// The master picks the node ([`place`](Self::place)), stores it in the attempt's row,
/// and only then calls [`dispatch`](Self::dispatch): a crash in between leaves a row
/// that names the node, which failover asks ([`take_over`](Self::take_over)).
pub trait TaskExecutorClient: Send + Sync {
    /// Where updates go from now on. Set once, before the first dispatch.
    fn connect(&self, sink: Arc<dyn TaskEventSink>);

    /// The node that should run a task of this worker group now (live, of the group,
    /// least loaded); `Ok(None)` when every such node is full.
    /// Answered from what the client already knows (the registry's last heartbeats),
    /// so the master decides placement inside its batch without waiting.
    /// Logic task types answer with the master itself, which runs them.
    fn place(
        &self,
        task_type: &str,
        worker_group: Option<&str>,
    ) -> Result<Option<String>, ClientError>;

    /// Start the attempt on `request.host`. Returns once that node accepted it; what
    /// happens next arrives as updates.
    fn dispatch(&self, request: TaskRequest) -> BoxFuture<'_, Result<(), ClientError>>;

    /// Several dispatches at once, one answer each, in order. The default sends them one
    /// after another; a client that talks to nodes over the network sends each node's
    /// share in one request, so a fan-out of thousands of tasks costs a few round trips,
    /// not thousands.
    fn dispatch_many(
        &self,
        requests: Vec<TaskRequest>,
    ) -> BoxFuture<'_, Vec<Result<(), ClientError>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(requests.len());
            for request in requests {
                out.push(self.dispatch(request).await);
            }
            out
        })
    }

    /// Kill the attempt (its processes, its external job). Its end arrives as an update.
    fn kill<'a>(&'a self, host: &'a str, key: TaskKey) -> BoxFuture<'a, Result<(), ClientError>>;

    /// Stop following the attempt without cancelling its external job: the handle is
    /// stored, and whoever owns the instance next re-attaches to it.
    fn pause<'a>(&'a self, host: &'a str, key: TaskKey) -> BoxFuture<'a, Result<(), ClientError>>;

    /// A new owner asks `host` about an attempt of an instance it adopted. If it still
    /// runs, its unacknowledged and future updates go to the caller.
    fn take_over<'a>(
        &'a self,
        host: &'a str,
        key: TaskKey,
        owner_generation: u64,
    ) -> BoxFuture<'a, Result<TakeOver, ClientError>>;

    /// What `host` is executing.
    fn running<'a>(&'a self, host: &'a str)
    -> BoxFuture<'a, Result<Vec<RunningTask>, ClientError>>;

    /// Carry out a named action on an attempt's external job, on `host` (the node that
    /// runs the attempt, or any node that can run its type once it ended). `Ok(Err)` is
    /// the plugin's (or the node's) refusal, for the caller.
    fn control<'a>(
        &'a self,
        host: &'a str,
        request: ControlRequest,
    ) -> BoxFuture<'a, Result<Result<ControlDone, String>, ClientError>>;

    /// What the master needs to know about a task type (none when no plugin has it:
    /// the task then fails at dispatch with a clear message).
    fn task_type<'a>(
        &'a self,
        task_type: &'a str,
        version: Option<&'a semver::Version>,
    ) -> BoxFuture<'a, Option<TaskTypeInfo>>;
}
