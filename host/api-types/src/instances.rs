//! Workflow instances, task instances, operations and log reads.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
pub struct InstanceQuery {
    /// Only this project's instances (required unless you are an admin).
    pub project: Option<String>,
    /// Only this workflow's (needs `project`).
    pub workflow: Option<String>,
    /// Comma-separated states: running, succeeded, failed, ...
    pub state: Option<String>,
    /// Business time from (ms since the epoch, included).
    pub from: Option<i64>,
    /// Business time to (ms since the epoch, excluded).
    pub to: Option<i64>,
    /// Page size, 1-1000 (default 50).
    pub limit: Option<i64>,
    /// Rows to skip (paging by number; see `before` for deep pages).
    pub offset: Option<i64>,
    /// Keyset paging: only instances older than this id, i.e. the previous page's
    /// `next_before`. A deep page then costs what the first does. Not with `offset`.
    pub before: Option<i64>,
    /// Only this cluster's (the cluster proxy; a cluster itself ignores it).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    pub id: i64,
    pub definition_id: i64,
    pub version: i64,
    pub name: String,
    pub state: String,
    pub schedule_time: i64,
    #[schema(value_type = Object)]
    pub startup_params: serde_json::Value,
    pub parent_task_instance_id: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// The cluster it lives on; set by the cluster proxy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstancePage {
    /// Matching instances (older than `before` when given), counted exactly up to
    /// 1,000 past this page; see `total_capped`.
    pub total: i64,
    /// True when more than `total` instances match.
    pub total_capped: bool,
    pub limit: i64,
    pub offset: i64,
    pub items: Vec<Instance>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
    /// Set by the cluster proxy: clusters whose instances are missing from this page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<crate::clusters::MissingCluster>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskInstance {
    pub id: i64,
    pub task_name: String,
    pub task_type: String,
    pub attempt: i64,
    pub state: String,
    pub host: Option<String>,
    pub plugin_version: Option<String>,
    pub handle: Option<String>,
    pub message: String,
    #[schema(value_type = Object)]
    pub out_params: serde_json::Value,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceDetail {
    pub project: String,
    #[serde(flatten)]
    pub instance: Instance,
    pub tasks: Vec<TaskInstance>,
}

/// One task instance with the instance and project it belongs to
/// (`GET /api/v1/tasks/{id}`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskInstanceDetail {
    pub project: String,
    pub workflow_instance_id: i64,
    #[serde(flatten)]
    pub task: TaskInstance,
}

/// `{"op": "stop" | "pause" | "resume" | "rerun" | "recover"}`, or
/// `{"op": "force-success" | "kill", "task": NAME}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperationBody {
    pub op: String,
    #[serde(default)]
    pub task: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Start at this byte of the log file (the `X-Log-Next-Offset` of an earlier read).
    pub offset: Option<u64>,
    /// At most this many bytes (default and cap: 1 MiB); whole lines where they fit.
    pub limit: Option<usize>,
    /// Keep the response open and stream new lines (from `offset`) until the task
    /// finishes or the client goes away.
    pub follow: Option<bool>,
}

/// One change as `GET /api/v1/events` streams it (server-sent events, the event's name
/// is `kind`): what a live view needs to redraw without polling every table.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LiveEvent {
    /// A workflow instance changed state.
    Workflow { instance: i64, state: String },
    /// A task attempt changed state.
    Task {
        instance: i64,
        task: String,
        task_instance_id: i64,
        attempt: u32,
        state: String,
        message: String,
    },
    /// The stream fell behind and `missed` changes were dropped: refetch what is shown.
    Lagged { missed: u64 },
}
