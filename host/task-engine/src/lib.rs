//! # shoal-task-engine: one lifecycle for every task type
//!
//! The TaskEngine runs a task instance through its plugin, whatever the task type: a
//! logic task, a shell script or an external Flink job all go through the same
//! [`TaskExecutor`] lifecycle and emit the same ordered [`TaskEvent`]s:
//!
//! ```text
//! Dispatched ─▶ Running ─┬─────────────────────────────▶ Finished(succeeded | failed | killed)
//!                        └▶ HandleAssigned ─▶ Progress* ─┘
//! ```
//!
//! `HandleAssigned` carries an external job's handle. The caller must make it durable
//! before the executor goes on (the event callback runs before polling starts), so that
//! after a crash [`TaskRequest::attach_to`] re-attaches to the job instead of submitting
//! it again.
//!
//! The master reaches it through [`LocalExecutor`], the in-process
//! `shoal_protocol::TaskExecutorClient`; remote workers serve the same engine over RPC.
//!
//! Before an executor runs, it takes a place in one of the [`Containers`]: the shared
//! container for short tasks and external-job polling, the exclusive one for blocking
//! tasks, plus a slot of its task group if it names one.

mod containers;
mod executor;
mod file_params;
mod local;
pub mod log_shipping;

pub use containers::{
    ContainerConfig, ContainerError, ContainerKind, Containers, GroupUsage, Occupancy, SlotGuard,
    SlotRequest, Usage, WaitingFor, WaitingTask, priority,
};
pub use executor::{
    HandleSink, TaskEngine, TaskEngineConfig, TaskEvent, TaskExecutor, TaskReport, TaskRequest,
    WorkDirRetention,
};
pub use local::LocalExecutor;
