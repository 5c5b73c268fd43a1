//! Plugin versions installed through the API: their records, their components' bytes
//! by digest (for workers that lack them), the active choice and workflows' pins.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginVersionRow {
    pub plugin_id: String,
    pub version: String,
    pub sha256: String,
    pub manifest: String,
    pub installed_at: i64,
}

crate::rows::from_row!(PluginVersionRow {
    plugin_id,
    version,
    sha256,
    manifest,
    installed_at
});

impl Store {
    pub async fn record_plugin_version(&self, row: &PluginVersionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_versions (plugin_id, version, sha256, manifest, installed_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (plugin_id, version) DO UPDATE SET sha256 = excluded.sha256, manifest = excluded.manifest, installed_at = excluded.installed_at",
        )
        .bind(&row.plugin_id)
        .bind(&row.version)
        .bind(&row.sha256)
        .bind(&row.manifest)
        .bind(row.installed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Store a plugin component under `sha256` (lowercase hex of its bytes' SHA-256)
    /// unless it is stored already; true when this call added it. The digest is checked
    /// here, because content addressing is only as good as its weakest writer: a blob
    /// stored under a wrong name would be handed to every worker that asks for that name.
    pub async fn put_plugin_blob(&self, sha256: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        use sha2::Digest;
        let actual: String = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if actual != sha256 {
            return Err(StoreError::DigestMismatch {
                named: sha256.to_owned(),
                actual,
            });
        }
        let done = sqlx::query(
            "INSERT INTO plugin_blobs (sha256, bytes, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(bytes)
        .bind(bytes.len() as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The component stored under `sha256`, if any.
    pub async fn plugin_blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT bytes FROM plugin_blobs WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose()?)
    }

    pub async fn plugin_versions(&self) -> Result<Vec<PluginVersionRow>, StoreError> {
        let rows: Vec<PluginVersionRow> = sqlx::query_as(
            "SELECT plugin_id, version, sha256, manifest, installed_at FROM plugin_versions ORDER BY plugin_id, installed_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Make `version` the active one, remembering the one it replaces for rollback.
    pub async fn set_active_plugin(
        &self,
        plugin_id: &str,
        version: &str,
        previous: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_active (plugin_id, version, previous, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (plugin_id) DO UPDATE SET version = excluded.version, previous = excluded.previous, updated_at = excluded.updated_at",
        )
        .bind(plugin_id)
        .bind(version)
        .bind(previous)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// (plugin id, active version, previous version) for every operator choice.
    pub async fn active_plugins(
        &self,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT plugin_id, version, previous FROM plugin_active")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    pub async fn pin_plugin(
        &self,
        definition_id: i64,
        plugin_id: &str,
        version: Option<&str>,
    ) -> Result<(), StoreError> {
        match version {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO plugin_pins (definition_id, plugin_id, version) VALUES ($1, $2, $3) \
                     ON CONFLICT (definition_id, plugin_id) DO UPDATE SET version = excluded.version",
                )
                .bind(definition_id)
                .bind(plugin_id)
                .bind(v)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM plugin_pins WHERE definition_id = $1 AND plugin_id = $2")
                    .bind(definition_id)
                    .bind(plugin_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// (plugin id, version) pins of a definition.
    pub async fn plugin_pins(
        &self,
        definition_id: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT plugin_id, version FROM plugin_pins WHERE definition_id = $1 ORDER BY plugin_id",
        )
        .bind(definition_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
