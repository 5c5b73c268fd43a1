//! Alert channels of a project (their configs sealed like secrets), and where an alert
//! about an instance goes.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertChannelRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub config: String,
    pub events: String,
    pub created_at: i64,
}

/// Where an alert about an instance goes ([`Store::alert_target`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTarget {
    pub project: String,
    pub workflow: String,
    pub channels: Vec<AlertChannelRow>,
}

crate::rows::from_row!(AlertChannelRow {
    id,
    project_id,
    name,
    config,
    events,
    created_at
});

impl Store {
    pub async fn put_alert_channel(
        &self,
        project_id: i64,
        name: &str,
        config: &str,
        events: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_channels (project_id, name, config, events, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project_id, name) DO UPDATE SET config = excluded.config, events = excluded.events",
        )
        .bind(project_id)
        .bind(name)
        .bind(config)
        .bind(events)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The alert channels of the project an instance's workflow belongs to, with the
    /// project's and the workflow's names: what an alert about the instance needs, in
    /// one read (an engine settles runs far faster than three reads each would allow).
    /// None when the instance is unknown or its project has no channel.
    pub async fn alert_target(&self, instance: i64) -> Result<Option<AlertTarget>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.project_id, a.name, a.config, a.events, a.created_at, \
             d.project AS workflow_project, d.name AS workflow_name \
             FROM workflow_instances w JOIN workflow_definitions d ON d.id = w.definition_id \
             JOIN projects p ON p.name = d.project JOIN alert_channels a ON a.project_id = p.id \
             WHERE w.id = $1 ORDER BY a.name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(AlertTarget {
            project: first.try_get("workflow_project")?,
            workflow: first.try_get("workflow_name")?,
            channels: rows
                .iter()
                .map(<AlertChannelRow as sqlx::FromRow<_>>::from_row)
                .collect::<Result<_, _>>()?,
        }))
    }

    pub async fn alert_channels(&self, project: &str) -> Result<Vec<AlertChannelRow>, StoreError> {
        let rows: Vec<AlertChannelRow> = sqlx::query_as(
            "SELECT a.id, a.project_id, a.name, a.config, a.events, a.created_at FROM alert_channels a \
             JOIN projects p ON p.id = a.project_id WHERE p.name = $1 ORDER BY a.name",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub async fn delete_alert_channel(
        &self,
        project_id: i64,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM alert_channels WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
