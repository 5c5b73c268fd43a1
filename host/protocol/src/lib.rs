//! # shoal-protocol: how the master reaches task execution
//!
//! The master never runs a task itself. It hands a [`TaskRequest`] to a
//! [`TaskExecutorClient`] and learns what happens from the [`TaskEvent`]s that come
//! back through its [`TaskEventSink`]. Two implementations sit behind the trait: the
//! in-process TaskEngine (`shoal run`, the all-in-one `shoal server`) and the RPC client
//! of remote workers. Both speak these types, so the master is the same either way.
//!
//! - [`task`]: who a task attempt is ([`TaskIdentity`], [`TaskKey`]), what to run
//!   ([`TaskRequest`]), how it went ([`TaskEvent`], [`TaskReport`]).
//! - [`client`]: the [`TaskExecutorClient`] trait and the [`TaskEventSink`] the master
//!   implements to receive events (each acknowledged once it is stored).
//! - [`workflow`]: the master's side of `shoal:task/workflow` ([`WorkflowHost`]), for
//!   logic tasks that start or watch other runs.
//!
//! Architecture invariant: this crate depends on `shoal-model` and serde only. Nothing
//! here may pull in wasmtime, a store or a web framework.

pub mod client;
pub mod plugins;
pub mod rpc;
pub mod task;
pub mod workflow;

pub use client::{
    BoxFuture, CANCEL_ACTION, ClientError, ControlDone, ControlRequest, RunningTask, TakeOver,
    TaskEventSink, TaskExecutorClient, TaskTypeInfo,
};
pub use plugins::{
    Installed, PluginCatalog, PluginError, PluginSource, PluginSummary, ResolvedPlugin,
};
pub use task::{
    HandleSink, KeyedEvent, LiveHandle, TaskEvent, TaskIdentity, TaskKey, TaskReport, TaskRequest,
    TaskUpdate, priority,
};
pub use workflow::{ChildEnd, ChildEnds, ChildStatus, HostFuture, OUTSIDE_WORKFLOW, WorkflowHost};
