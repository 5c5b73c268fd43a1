//! Workflow definitions, their versions, runs and backfills.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shoal_model::run::StartTasks;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Definition {
    pub id: i64,
    pub project: String,
    pub name: String,
    pub current_version: i64,
    /// Online definitions can run and be scheduled.
    pub online: bool,
    pub run_mode: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The cluster it lives on; set by the cluster proxy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DefinitionDetail {
    #[serde(flatten)]
    pub definition: Definition,
    pub versions: Vec<i64>,
    /// Plugin versions this workflow's tasks are pinned to.
    pub pins: BTreeMap<String, String>,
    /// The current version's definition, as stored.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Saved {
    pub definition_id: i64,
    pub name: String,
    pub version: i64,
    /// False when the body equalled the current version (no new version).
    pub created: bool,
    /// Fields read but not acted on, each naming line and field ("accepted, not
    /// supported: ..."); the definition was saved regardless.
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// The text it was created from (YAML or JSON).
    pub source: String,
    pub created_at: i64,
}

/// `?dry_run=true`: check and answer, change nothing. On a definition upload: every
/// problem with line and field, version 0 in the answer. On a backfill: the dates it
/// would run, nothing queued.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRunQuery {
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DiffQuery {
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunModeBody {
    /// parallel, serial-wait, serial-discard or serial-priority.
    pub run_mode: String,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RunBody {
    /// Startup parameters; they override every other layer.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Business date `YYYY-MM-DD` (midnight in `timezone`); default now.
    #[serde(default)]
    pub business_date: Option<String>,
    /// Business time in ms since the epoch (a scheduler's fire time); wins over
    /// `business_date`.
    #[serde(default)]
    pub schedule_time: Option<i64>,
    /// IANA zone for `business_date`; default the server's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Run this version instead of the current one.
    #[serde(default)]
    pub version: Option<i64>,
    /// A sub-graph: `{"mode": "only" | "with-downstream" | "with-upstream", "tasks": [..]}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub start_tasks: Option<StartTasks>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LaunchView {
    /// `started`, `queued` or `discarded`.
    pub outcome: String,
    pub instance: Option<i64>,
    pub queued: Option<i64>,
    /// Set by the cluster proxy: where the run went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Set by the cluster proxy: the run's key (`GET /api/v1/proxy-runs/{key}`), which
    /// is all there is to show while no cluster has acknowledged it yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct BackfillBody {
    /// First business date `YYYY-MM-DD` of a range (with `to`).
    #[serde(default)]
    pub from: Option<String>,
    /// Last business date of the range, included.
    #[serde(default)]
    pub to: Option<String>,
    /// Or an explicit list of business dates.
    #[serde(default)]
    pub dates: Vec<String>,
    /// How many dates run at once; 1 (the default) runs them one after another.
    #[serde(default)]
    pub parallelism: Option<i64>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BackfillQueued {
    /// The backfill's queue.
    pub group: String,
    pub dates: Vec<String>,
    pub queued: Vec<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PinBody {
    /// The version to pin to; null removes the pin.
    pub version: Option<String>,
}
