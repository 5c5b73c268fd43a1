//! Shoal's domain model, shared by every host crate and free of wasmtime.
//!
//! - [`manifest`]: the TOML file beside each plugin component.
//! - [`policy`]: the operator's file that narrows what plugins are granted.
//! - [`sandbox`]: how the processes plugins start are confined and limited.
//! - [`grant`]: the capabilities a plugin actually gets (manifest ∩ policy).
//! - [`task`]: task states, execution classes and outcomes.
//! - [`limits`]: host-side caps on what one task may make the host hold.
//! - [`log`]: a task's log, written by the host on the plugin's behalf.
//! - [`datasource`]: a project's named database connections, for SQL tasks.
//! - [`file_param`]: FILE parameters' files, carried as parameter values.
//! - [`flink`]: the operator's Flink clusters and resources (`[flink]`).

pub mod datasource;
pub mod file_param;
pub mod flink;
pub mod grant;
pub mod limits;
pub mod log;
pub mod manifest;
pub mod policy;
pub mod run;
pub mod sandbox;
pub mod task;

pub use datasource::{DatasourceKind, DatasourceSpec, GrantedDatasource};
pub use grant::{Grant, HostPattern};
pub use limits::TaskLimits;
pub use log::{LogLevel, LogStream, TaskLog};
pub use manifest::{FlowSettings, ManifestError, PluginManifest, RequestedCapabilities, Trigger};
pub use policy::{OperatorPolicy, PolicyError};
pub use sandbox::{ProcessLimits, SandboxKind, SandboxPolicy};
pub use task::{ExecutionClass, TaskOutcome, TaskState, TaskStatus};

/// The `shoal:task` WIT versions this host can load: every 0.1.x.
pub const SUPPORTED_WIT: &str = "^0.1.0";

/// Whether a component built against `wit` can run on this host.
pub fn wit_supported(wit: &semver::Version) -> bool {
    semver::VersionReq::parse(SUPPORTED_WIT)
        .map(|req| req.matches(wit))
        .unwrap_or(false)
}
