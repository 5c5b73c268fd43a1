//! # shoal-master: the workflow master
//!
//! Every state change of a workflow instance or a task instance is a named action on
//! an explicit state machine ([`state`]); the [`graph`] says which tasks are ready, given
//! their states and the part of the DAG this run covers; there is no other way to change a state, so
//! "stuck in RUNNING" cannot come from a forgotten `if` branch: a transition is either
//! in the table or refused with [`state::IllegalTransition`].
//!
//!
//! The [`master`] drives these machines: one worker per live workflow instance handles
//! the instance's ordered event stream, stores every transition (group-committed in
//! batches) and only then acts on it, dispatching tasks through the TaskEngine.

pub mod graph;
pub mod master;
pub mod state;

pub use graph::{ExecutionGraph, GraphError, NodeStatus, RunScope};
pub use master::{
    BatchCounts, CachedDefinition, DatasourcesFuture, Master, MasterConfig, MasterError, Operation,
    Progress, RunRequest, SecretSource, SecretsFuture, StartTasks, queue_operation,
    queue_operation_for_message,
};
pub use state::{IllegalTransition, TaskAction, TaskInstanceState, WorkflowAction, WorkflowState};
