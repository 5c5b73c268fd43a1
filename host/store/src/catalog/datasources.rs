//! A project's datasources: spec as JSON, password sealed by the caller (the store
//! never sees it in the clear).

use serde::Serialize;

use crate::{Store, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasourceRow {
    pub project_id: i64,
    pub name: String,
    /// [`shoal_model::DatasourceSpec`] as JSON.
    pub spec: String,
    pub nonce: String,
    pub ciphertext: String,
    pub created_at: i64,
    pub updated_at: i64,
}

crate::rows::from_row!(DatasourceRow {
    project_id,
    name,
    spec,
    nonce,
    ciphertext,
    created_at,
    updated_at
});

impl Store {
    /// Create or replace the datasource `name` of a project; true when it was new.
    pub async fn put_datasource(
        &self,
        project_id: i64,
        name: &str,
        spec: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let existed = sqlx::query("SELECT 1 FROM datasources WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO datasources (project_id, name, spec, nonce, ciphertext, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (project_id, name) DO UPDATE SET spec = excluded.spec, nonce = excluded.nonce, \
             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(project_id)
        .bind(name)
        .bind(spec)
        .bind(nonce)
        .bind(ciphertext)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(!existed)
    }

    /// Every datasource of the project named `project`, by name.
    pub async fn datasources(&self, project: &str) -> Result<Vec<DatasourceRow>, StoreError> {
        let rows = sqlx::query_as(
            "SELECT d.project_id, d.name, d.spec, d.nonce, d.ciphertext, d.created_at, d.updated_at \
             FROM datasources d JOIN projects p ON p.id = d.project_id WHERE p.name = $1 ORDER BY d.name",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub async fn delete_datasource(&self, project_id: i64, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM datasources WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
