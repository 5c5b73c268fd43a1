//! DolphinScheduler imports: the query and the report.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Import the rest when some tasks have types Shoal lacks; those become skipped
    /// `Noop` tasks, each with a warning.
    #[serde(default)]
    pub partial: bool,
    /// Shoal datasource names for the export's datasource ids: `1=warehouse,2=crm`.
    #[serde(default)]
    pub datasources: Option<String>,
    /// Shoal task group names for the export's task group ids: `3=etl`.
    #[serde(default)]
    pub task_groups: Option<String>,
    /// The IANA zone of the DolphinScheduler server that wrote the export (its
    /// schedule windows carry no offset); default: each schedule's own zone.
    #[serde(default)]
    pub export_timezone: Option<String>,
}

/// What was imported.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub workflows: Vec<ImportedDefinition>,
    /// What was read but not carried over (or not exactly), naming workflow, task and
    /// field; nothing is dropped without one.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportedDefinition {
    pub name: String,
    pub version: i64,
    /// False when the definition equalled its current version.
    pub created: bool,
    pub online: bool,
    pub run_mode: String,
    /// The schedule created for it: cron and zone, and whether it is online.
    pub schedule: Option<String>,
}
