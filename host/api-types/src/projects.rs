//! Projects, permissions, secrets (names only) and alert channels.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Level;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    /// The OS user its task processes run as; none: the server's default tenant.
    pub tenant: Option<String>,
    /// Whether it may run task types that start processes (an admin's decision).
    pub allow_process: bool,
    /// The cluster it lives on; set by the cluster proxy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// An admin's change to how a project's task processes run; absent fields stay.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenancyBody {
    /// Whether the project may run task types holding the `process` capability.
    #[serde(default)]
    pub allow_process: Option<bool>,
    /// The OS user its processes run as when the server runs as root; an empty string
    /// goes back to the server's default tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PermissionBody {
    pub level: Level,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretBody {
    pub value: String,
}

/// A secret as listed: its name only, never its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretName {
    pub name: String,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertChannelBody {
    /// `{"kind": "webhook", "url": ...}`, `{"kind": "slack", "url": ...}` or
    /// `{"kind": "email", "host", "port", "from", "to": [...], ...}`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Which events it receives: `workflow-failed`, `workflow-succeeded` (opt-in),
    /// `task-timeout`, `task-failed`. Empty: every failure kind.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertChannelView {
    pub name: String,
    /// The channel's kind (`webhook`, `slack`, `email`); addresses and credentials are
    /// not echoed back.
    pub kind: String,
    pub events: Vec<String>,
}

/// One user's level on a project.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Permission {
    pub user: String,
    pub level: Level,
}
