//! A project's datasources (never their passwords on the way out).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
