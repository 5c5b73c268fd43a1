//! The RPC between masters and workers: HTTP/JSON, versioned by path and header.
//!
//! Every request carries the cluster secret (`Authorization: Bearer ...`) and
//! [`VERSION_HEADER`]; a node answers a request of a version it does not speak with
//! 400 and says which it speaks. Bodies are the types below, as JSON.
//!
//! Master → worker ([`paths`]): dispatch (in batches), kill, pause, take over, list running, read a
//! log range, carry out an action on a job. Worker → master: batches of [`KeyedEvent`]s, each acknowledged by key.

use serde::{Deserialize, Serialize};

use crate::client::{RunningTask, TakeOver};
use crate::task::{KeyedEvent, TaskKey, TaskRequest};

/// The protocol version this build speaks.
pub const RPC_VERSION: u32 = 1;

/// Carries [`RPC_VERSION`] on every request.
pub const VERSION_HEADER: &str = "shoal-rpc-version";

/// On a master's commands: until when (ms since the epoch, wall clock) the master's
/// lease is proven to hold. A worker refuses a command that arrives later: its master
/// may have been declared dead meanwhile (paused past its lease, say), and its
/// instances' new owner may already have run the attempt elsewhere.
pub const LEASE_HEADER: &str = "shoal-lease-until";

/// Largest request body a node takes. A worker's update batches stay far below it (the
/// outbox cuts them at a few MiB); a batch of dispatches carries tasks' parameters,
/// which come from definitions of at most a few MiB. Above it a request is refused with
/// 413, never read whole into memory.
pub const MAX_BODY: usize = 64 << 20;

/// Request paths, all under `/rpc/v1`.
pub mod paths {
    pub const DISPATCH: &str = "/rpc/v1/tasks/dispatch";
    pub const KILL: &str = "/rpc/v1/tasks/kill";
    pub const PAUSE: &str = "/rpc/v1/tasks/pause";
    pub const TAKE_OVER: &str = "/rpc/v1/tasks/take-over";
    pub const RUNNING: &str = "/rpc/v1/tasks/running";
    pub const CONTROL: &str = "/rpc/v1/tasks/control";
    pub const LOG: &str = "/rpc/v1/tasks/log";
    pub const UPDATES: &str = "/rpc/v1/updates";
}

/// The master an attempt reports to: its node id, RPC address and node generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterRef {
    pub node: String,
    pub address: String,
    pub generation: u64,
}

/// Attempts for one worker, taken in order; the answer has one entry per request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchMsg {
    pub requests: Vec<TaskRequest>,
    pub master: MasterRef,
}

/// Per request of a [`DispatchMsg`], in its order: `None` when the worker took it, or
/// why it refused it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DispatchReply {
    pub refused: Vec<Option<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyMsg {
    pub key: TaskKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeOverMsg {
    pub key: TaskKey,
    pub master: MasterRef,
    pub owner_generation: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeOverReply {
    pub answer: TakeOver,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningReply {
    /// The worker's node generation: a master ignores a list from an older one.
    pub generation: u64,
    pub tasks: Vec<RunningTask>,
}

/// Read part of a task log a worker holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogMsg {
    pub key: TaskKey,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogReply {
    pub text: String,
    pub next_offset: u64,
    /// The attempt still runs there, so more may come.
    pub running: bool,
}

/// Updates from a worker, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdatesMsg {
    pub node: String,
    /// The worker's node generation; updates of a generation that was declared dead are
    /// refused, never applied.
    pub node_generation: u64,
    pub events: Vec<KeyedEvent>,
}

/// Which updates the master took (stored, or found stale: either way the worker forgets
/// them). Those not listed are sent again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdatesReply {
    pub acked: Vec<(TaskKey, u32)>,
    /// Updates the master will never take (a dead generation, an instance it does not
    /// own and cannot adopt), with why; the worker drops them.
    pub refused: Vec<(TaskKey, u32, String)>,
}

/// The answer to a [`crate::client::ControlRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlReply {
    pub outcome: Result<crate::client::ControlDone, String>,
}

/// An RPC error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcError {
    pub error: String,
}
