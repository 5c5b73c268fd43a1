//! What the API and the CLI's checks need from the task-type plugins: the
//! [`PluginCatalog`] trait and its plain data types, so they can list, install, activate
//! and validate plugins without linking the runtime that runs them (wasmtime).
//!
//! `shoal-runtime` implements the trait for its `PluginRegistry`; every message in a
//! [`PluginError`] is the registry's own, so what a caller shows reads the same as before.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_model::{Grant, PluginManifest};

use crate::BoxFuture;

/// The task-type plugins one host knows: built-in and installed, every version, and which
/// version new tasks get. Object-safe, so callers hold an `Arc<dyn PluginCatalog>`.
pub trait PluginCatalog: Send + Sync {
    /// Every known plugin id.
    fn ids(&self) -> Vec<String>;

    /// Every known plugin version, newest first per id.
    fn list(&self) -> Vec<PluginSummary>;

    /// The plugin version that runs tasks of type `task_type` (matched ignoring case, `-`
    /// and `_`): the active one, or exactly `version`. The component is loaded on first
    /// use, so one that does not load is an error here, not at the first task.
    fn resolve<'a>(
        &'a self,
        task_type: &'a str,
        version: Option<&'a semver::Version>,
    ) -> BoxFuture<'a, Result<ResolvedPlugin, PluginError>>;

    /// The field errors (field, message) the active version of `plugin` reports for
    /// `params`, asked of the plugin itself within `timeout`.
    fn validate_params<'a>(
        &'a self,
        plugin: &'a str,
        params: &'a serde_json::Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, PluginError>>;

    /// Install the plugin whose manifest (`shoal-plugin.toml`) and component are in `dir`,
    /// after checking it (manifest, WIT version, a test instantiation and call). A version
    /// is immutable: the same version with other content is refused; the same content
    /// again is no error. Installing chooses no active version itself: without an
    /// operator's choice the newest runs.
    fn install<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Installed, PluginError>>;

    /// The version new tasks of `id` get, or none for an unknown id.
    fn active_version(&self, id: &str) -> Option<semver::Version>;

    /// Make `version` of `id` the one new tasks get; none goes back to the newest.
    fn set_active(&self, id: &str, version: Option<&semver::Version>) -> Result<(), PluginError>;
}

/// One plugin version, as `GET /api/v1/plugins` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSummary {
    pub id: String,
    pub version: semver::Version,
    /// The `shoal:task` WIT version it was built against.
    pub wit: semver::Version,
    pub description: String,
    /// Capabilities as granted (the manifest's, narrowed by the operator's policy).
    pub capabilities: Vec<String>,
    pub http_hosts: Vec<String>,
    pub source: PluginSource,
    /// Whether new tasks get this version.
    pub active: bool,
}

/// Where a plugin version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginSource {
    /// Embedded in the `shoal` binary.
    Builtin,
    /// From the plugin store (`shoal plugins install`, an upload).
    Installed,
}

/// A plugin version that [`PluginCatalog::resolve`] found and loaded.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedPlugin {
    pub manifest: PluginManifest,
    /// What it may do on this host: its manifest narrowed by the operator's policy.
    pub grant: Grant,
}

/// A version [`PluginCatalog::install`] put into the plugin store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub manifest: PluginManifest,
    /// SHA-256 of the component, hex.
    pub sha256: String,
}

/// Why a plugin operation failed. The variants are the kinds a caller answers
/// differently (the API: 404, 409, 400, 500); each carries the whole message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// No such task type, or no such version of it.
    #[error("{0}")]
    Unknown(String),
    /// The version exists with other content, or the id clashes with another plugin's.
    #[error("{0}")]
    Conflict(String),
    /// The plugin's own fault: its manifest, WIT version, a component that does not load
    /// or fails its test call.
    #[error("{0}")]
    Rejected(String),
    /// The plugin store on disk failed.
    #[error("{0}")]
    Storage(String),
}
