//! # shoal-engine: the workflow master
//!
//! Every state change of a workflow instance or a task instance is a named action on
//! an explicit state machine ([`state`]); the [`graph`] says which tasks are ready, given
//! their states and the part of the DAG this run covers; there is no other way to change a state, so
//! "stuck in RUNNING" cannot come from a forgotten `if` branch: a transition is either
//! in the table or refused with [`state::IllegalTransition`].
//!
//! (The per-instance event loop that drives these machines, persisting each transition
//! through the store before acting on it, is the next piece to land here.)

pub mod graph;
pub mod state;

pub use graph::{ExecutionGraph, GraphError, NodeStatus, RunScope};
pub use state::{IllegalTransition, TaskAction, TaskInstanceState, WorkflowAction, WorkflowState};
