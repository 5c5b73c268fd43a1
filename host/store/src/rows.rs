//! Rows as the store hands them out.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::StoreError;

/// `sqlx::FromRow` by column name for a row struct, written out rather than derived:
/// sqlx's derive lives in its proc-macro crate, which brings a second, host-side build of
/// every sqlx driver into each build (about a minute of CPU on a fresh two-core machine).
macro_rules! from_row {
    ($row:ident { $($field:ident),* $(,)? }) => {
        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $row {
            fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self {
                    $($field: row.try_get(stringify!($field))?),*
                })
            }
        }
    };
}
pub(crate) use from_row;

fn json(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionVersion {
    pub definition_id: i64,
    pub version: i64,
    /// False when the saved spec equalled the current version (nothing was added).
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDefinition {
    pub id: i64,
    pub project: String,
    pub name: String,
    pub version: i64,
    pub current_version: i64,
    pub spec: serde_json::Value,
    pub source: String,
    pub created_at: i64,
}

impl StoredDefinition {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.try_get(0)?,
            project: r.try_get(1)?,
            name: r.try_get(2)?,
            version: r.try_get(3)?,
            current_version: r.try_get(4)?,
            spec: json(&r.try_get::<String, _>(5)?, "definition spec")?,
            source: r.try_get(6)?,
            created_at: r.try_get(7)?,
        })
    }
}

pub(crate) const WORKFLOW_COLUMNS: &str = "id, definition_id, version, name, state, schedule_time, startup_params, start_tasks, parent_task_instance_id, created_at, started_at, ended_at, updated_at, owner, owner_gen";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowInstanceRow {
    pub id: i64,
    pub definition_id: i64,
    pub version: i64,
    pub name: String,
    pub state: String,
    pub schedule_time: i64,
    pub startup_params: serde_json::Value,
    pub start_tasks: serde_json::Value,
    pub parent_task_instance_id: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
    /// The node id of the master that drives it (None in single-node mode).
    pub owner: Option<String>,
    /// The owner's generation when it took the instance; writes are fenced on it.
    pub owner_gen: i64,
}

impl WorkflowInstanceRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.try_get(0)?,
            definition_id: r.try_get(1)?,
            version: r.try_get(2)?,
            name: r.try_get(3)?,
            state: r.try_get(4)?,
            schedule_time: r.try_get(5)?,
            startup_params: json(&r.try_get::<String, _>(6)?, "startup params")?,
            start_tasks: json(&r.try_get::<String, _>(7)?, "start tasks")?,
            parent_task_instance_id: r.try_get(8)?,
            created_at: r.try_get(9)?,
            started_at: r.try_get(10)?,
            ended_at: r.try_get(11)?,
            updated_at: r.try_get(12)?,
            owner: r.try_get(13)?,
            owner_gen: r.try_get(14)?,
        })
    }
}

pub(crate) const TASK_COLUMNS: &str = "id, workflow_instance_id, task_name, task_type, attempt, state, host, plugin_version, handle, message, out_params, log_path, created_at, started_at, ended_at, updated_at, failover";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInstanceRow {
    pub id: i64,
    pub workflow_instance_id: i64,
    pub task_name: String,
    pub task_type: String,
    pub attempt: i64,
    pub state: String,
    pub host: Option<String>,
    pub plugin_version: Option<String>,
    /// External-job handle, persisted before the job is polled.
    pub handle: Option<String>,
    pub message: String,
    pub out_params: serde_json::Value,
    pub log_path: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
    /// This attempt replaced one lost with its worker: it does not count as a retry.
    pub failover: bool,
}

impl TaskInstanceRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.try_get(0)?,
            workflow_instance_id: r.try_get(1)?,
            task_name: r.try_get(2)?,
            task_type: r.try_get(3)?,
            attempt: r.try_get(4)?,
            state: r.try_get(5)?,
            host: r.try_get(6)?,
            plugin_version: r.try_get(7)?,
            handle: r.try_get(8)?,
            message: r.try_get(9)?,
            out_params: json(&r.try_get::<String, _>(10)?, "out params")?,
            log_path: r.try_get(11)?,
            created_at: r.try_get(12)?,
            started_at: r.try_get(13)?,
            ended_at: r.try_get(14)?,
            updated_at: r.try_get(15)?,
            failover: r.try_get::<i64, _>(16)? != 0,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub workflow_instance_id: i64,
    pub seq: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

impl EventRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            workflow_instance_id: r.try_get(0)?,
            seq: r.try_get(1)?,
            kind: r.try_get(2)?,
            payload: json(&r.try_get::<String, _>(3)?, "event payload")?,
            created_at: r.try_get(4)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandRow {
    pub id: i64,
    pub kind: String,
    pub workflow_instance_id: Option<i64>,
    pub payload: serde_json::Value,
    pub created_at: i64,
}

impl CommandRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.try_get(0)?,
            kind: r.try_get(1)?,
            workflow_instance_id: r.try_get(2)?,
            payload: json(&r.try_get::<String, _>(3)?, "command payload")?,
            created_at: r.try_get(4)?,
        })
    }
}

/// A piece of a task's log shipped from a remote node (see `task_log_chunks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPiece {
    /// Byte range of the node's log file.
    pub start_offset: i64,
    pub next_offset: i64,
    pub text: String,
    /// The node shipped everything: nothing follows.
    pub last: bool,
}
