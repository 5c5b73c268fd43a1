//! # shoal-rpc: the wire between masters and workers
//!
//! The messages are `shoal_protocol::rpc`; this crate moves them over HTTP/JSON:
//!
//! - [`transport`]: an [`RpcClient`] that signs every request with the cluster secret
//!   and the protocol version, and the axum guard that checks both on the way in.
//! - [`master`]: the master's endpoint for task updates, feeding its `TaskEventSink`
//!   and answering with the keys it acknowledged.
//! - [`remote`]: [`RemoteExecutor`], the `TaskExecutorClient` of a master whose tasks run
//!   on remote workers, placing each task by the workers' last heartbeats.
//!
//! Why HTTP/JSON (axum + reqwest) rather than gRPC (tonic): both are already in the
//! build for the REST API and alerts, so the RPC adds no second HTTP stack, no protoc
//! or code generation step, and its messages are the same serde types the rest of the
//! code uses; a request can be read with curl. The cost is a larger encoding than
//! protobuf, which batching (many updates per request) keeps small.
//!
//! Architecture invariant: every listener binds to the address it is configured with,
//! and every request without the cluster secret is refused before it is parsed.

pub mod master;
pub mod remote;
pub mod transport;

pub use remote::{RemoteExecutor, WorkerView};
pub use transport::{RpcClient, RpcConfig, check_request};
