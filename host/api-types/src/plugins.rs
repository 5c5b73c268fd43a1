//! Task-type plugins: installed versions and the active one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginView {
    pub id: String,
    pub version: String,
    pub wit: String,
    pub description: String,
    pub capabilities: Vec<String>,
    pub http_hosts: Vec<String>,
    /// `builtin` or `installed`.
    pub origin: String,
    /// SHA-256 of the component, for installed versions.
    pub sha256: Option<String>,
    /// Whether new tasks get this version.
    pub active: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivateBody {
    pub version: String,
}

/// The outcome of an install or activation.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ActivePlugin {
    pub id: String,
    pub version: String,
    /// The version it replaced as active, if any.
    pub previous: Option<String>,
    /// SHA-256 of the component (installs only).
    pub sha256: Option<String>,
}
