//! # shoal-runtime: the plugin runtime
//!
//! Every Shoal task type is a WebAssembly component implementing the `shoal:task` WIT
//! contract (`wit/`). This crate is the only place that knows about wasmtime. It owns:
//!
//! - [`engine`]: one wasmtime `Engine` per process, with epoch interruption (for
//!   deadlines, cancellation and runaway loops) and the pooling allocator where the
//!   machine's address space allows it.
//! - [`cache`]: compiled components cached on disk, keyed by the component's content hash
//!   and the engine's compatibility hash, so a restart does not recompile.
//! - [`plugin`]: a [`LoadedPlugin`] is a component checked against the host's supported
//!   WIT range, pre-instantiated once, with its manifest, grant and self-description.
//! - [`capabilities`]: what a plugin may import, one module per capability (log, context,
//!   process, workflow, HTTP, WASI with only the work dir). Each reads its configuration
//!   from the plugin's [`shoal_model::Grant`] and keeps its per-task state in
//!   [`HostState`]. The master plugs into `workflow` through the [`WorkflowHost`] trait.
//! - [`invoke`]: one call into a plugin (`start`, `poll`, ...) in a fresh `Store` with a
//!   memory cap, a deadline and a cancellation token.
//! - [`registry`]: the [`PluginRegistry`] of built-in and installed plugins, resolving a
//!   task type name to the plugin version that runs it. It implements
//!   [`shoal_protocol::PluginCatalog`] (in `catalog`), which is all the API sees of it.

pub mod cache;
pub mod capabilities;
pub mod engine;
pub mod invoke;
pub mod plugin;
pub mod registry;

mod bindings;
mod catalog;

pub use cache::{CompileCache, LoadReport};
pub use capabilities::HostState;
pub use capabilities::workflow::{ChildStatus, HostFuture, OUTSIDE_WORKFLOW, WorkflowHost};
pub use engine::{EngineConfig, PluginEngine};
pub use invoke::{
    ActionReply, CallError, CallLimits, PollReply, StartReply, TaskEnv, TaskIdentity,
};
pub use plugin::{ActionInfo, FieldError, LoadedPlugin, PluginInfo};
pub use registry::{InstalledPlugin, PluginListing, PluginOrigin, PluginRegistry};

use std::path::PathBuf;

/// Errors from loading, installing or resolving plugins.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Manifest(#[from] shoal_model::ManifestError),
    #[error("plugin `{plugin}`: cannot read component {path}: {source}")]
    ReadComponent {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{plugin}`: {message}")]
    InvalidComponent { plugin: String, message: String },
    #[error(
        "plugin `{plugin}`: built against shoal:task@{found}, but this host supports shoal:task {supported}"
    )]
    WitVersion {
        plugin: String,
        found: String,
        supported: &'static str,
    },
    #[error("unknown task type `{name}` (available: {available})")]
    UnknownTaskType { name: String, available: String },
    #[error("task type `{name}` has no version {version} (available: {available})")]
    UnknownVersion {
        name: String,
        version: String,
        available: String,
    },
    #[error(
        "plugin `{plugin}` version {version} is already installed with other content; versions are immutable, so give the new component a new version"
    )]
    VersionExists { plugin: String, version: String },
    #[error(
        "plugin id `{plugin}` clashes with the installed plugin `{existing}`: task types match ignoring case, `-` and `_`, so both would answer the same tasks; upload it as `{existing}` or choose another id"
    )]
    IdClash { plugin: String, existing: String },
    #[error("plugin store {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{plugin}` failed its test call: {source}")]
    TestCall {
        plugin: String,
        source: invoke::CallError,
    },
}
