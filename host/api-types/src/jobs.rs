//! External jobs (a Flink job, a CDC pipeline) and the actions a task offers on them.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An attempt that holds an external job's handle.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub task_instance_id: i64,
    pub workflow_instance_id: i64,
    pub task_name: String,
    pub task_type: String,
    pub attempt: i64,
    /// The task's state: a stream job whose task `succeeded` may still run.
    pub state: String,
    /// The plugin's handle (for Flink: cluster, job id, last savepoint).
    pub handle: String,
    pub host: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct JobQuery {
    pub project: String,
    /// At most this many, newest first (1-1000, default 100).
    pub limit: Option<i64>,
}

/// An action on a task's external job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionBody {
    /// `savepoint`, `stop-with-savepoint`, `cancel`, or another action the task type
    /// offers.
    pub action: String,
    /// The action's options, e.g. `{"target-directory": "file:///savepoints"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
}

/// What the plugin said it did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionDone {
    pub task_instance_id: i64,
    pub action: String,
    pub message: String,
}
