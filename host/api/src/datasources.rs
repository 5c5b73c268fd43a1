//! Datasources of a project: checking, sealing and listing them, for the API and for the
//! CLI on the embedded store alike. Passwords go in and never come out: a listing shows
//! where a datasource is, and only the engine opens the password, for the task that
//! names it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shoal_model::{DatasourceKind, DatasourceSpec};
use shoal_store::Store;
use utoipa::ToSchema;

use crate::secrets::SecretBox;

/// A datasource as a project editor writes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasourceBody {
    /// `postgresql`, `mysql` (MySQL and MariaDB) or `sqlite`; DolphinScheduler's
    /// `POSTGRESQL` / `MYSQL` spellings are accepted.
    #[serde(rename = "type")]
    pub kind: String,
    /// Server host; empty for SQLite.
    #[serde(default)]
    pub host: String,
    /// Default: 5432 for PostgreSQL, 3306 for MySQL.
    #[serde(default)]
    pub port: Option<u16>,
    /// Database name; for SQLite a file name in the host's `datasources/<project>/`.
    pub database: String,
    #[serde(default)]
    pub user: String,
    /// Sealed on arrival, never shown. Absent on an update: the stored one stays.
    #[serde(default)]
    pub password: Option<String>,
    /// Extra connection options (`sslmode: require`, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// A datasource as listed: everything but its password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasourceView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub host: String,
    pub port: Option<u16>,
    pub database: String,
    pub user: String,
    pub options: BTreeMap<String, String>,
    /// Whether a password is stored (its value never leaves the server).
    pub has_password: bool,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasourceError {
    /// Every problem, each as `field: message`.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] shoal_store::StoreError),
}

/// Check `body`, seal its password and store it as `name` in the project; true when
/// the datasource is new.
pub async fn put(
    store: &Store,
    sealer: &SecretBox,
    project_id: i64,
    project: &str,
    name: &str,
    body: &DatasourceBody,
) -> Result<bool, DatasourceError> {
    let kind: DatasourceKind = body
        .kind
        .parse()
        .map_err(|e: String| DatasourceError::Invalid(format!("type: {e}")))?;
    let spec = DatasourceSpec {
        kind,
        host: body.host.trim().to_owned(),
        port: body.port,
        database: body.database.trim().to_owned(),
        user: body.user.trim().to_owned(),
        options: body.options.clone(),
    };
    let problems = spec.problems();
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        return Err(DatasourceError::Invalid(text.join("; ")));
    }
    if body.password.as_ref().is_some_and(|p| p.len() > 4096) {
        return Err(DatasourceError::Invalid(
            "password: longer than 4096 bytes".into(),
        ));
    }
    let existing = store
        .datasources(project)
        .await?
        .into_iter()
        .find(|d| d.name == name);
    let (nonce, sealed) = match (&body.password, existing) {
        (Some(password), _) => sealer.seal_datasource_password(project, name, password),
        (None, Some(row)) => (row.nonce, row.ciphertext),
        (None, None) => sealer.seal_datasource_password(project, name, ""),
    };
    let spec = serde_json::to_string(&spec).expect("a spec serializes");
    Ok(store
        .put_datasource(project_id, name, &spec, &nonce, &sealed)
        .await?)
}

/// The project's datasources, without passwords.
pub async fn list(
    store: &Store,
    sealer: &SecretBox,
    project: &str,
) -> Result<Vec<DatasourceView>, DatasourceError> {
    let rows = store.datasources(project).await?;
    rows.into_iter()
        .map(|row| {
            let spec: DatasourceSpec = serde_json::from_str(&row.spec).map_err(|e| {
                DatasourceError::Invalid(format!("datasource `{}`: stored spec: {e}", row.name))
            })?;
            let has_password = sealer
                .open_datasource_password(project, &row.name, &row.nonce, &row.ciphertext)
                .map(|p| !p.is_empty())
                .unwrap_or(true);
            Ok(DatasourceView {
                name: row.name,
                kind: spec.kind.to_string(),
                host: spec.host,
                port: spec.port,
                database: spec.database,
                user: spec.user,
                options: spec.options,
                has_password,
                updated_at: row.updated_at,
            })
        })
        .collect()
}
