//! Cron schedules of a definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleBody {
    /// Quartz cron with seconds: `0 0 2 * * ?`, `0 0 1 L * ?`, `0 0 9 ? * 2#1`, ...
    pub cron: String,
    /// IANA zone the cron reads in; default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// RFC 3339 start of the window.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339 end of the window.
    #[serde(default)]
    pub end: Option<String>,
    /// `skip` (default) or `run-once`: what to do with fires missed while down.
    #[serde(default)]
    pub missed: Option<String>,
    /// Default true; the definition must be online for an online schedule.
    #[serde(default)]
    pub online: Option<bool>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    pub definition_id: i64,
    pub workflow: String,
    pub cron: String,
    pub timezone: String,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub missed: String,
    pub online: bool,
    pub params: BTreeMap<String, String>,
    pub last_fire_at: Option<i64>,
    pub next_fire_at: Option<i64>,
    /// The next few fire times, RFC 3339 in the schedule's zone.
    pub upcoming: Vec<String>,
    /// The cron expression in plain English.
    #[serde(default)]
    pub description: String,
    /// The cluster it lives on; set by the cluster proxy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// `POST /api/v1/schedules/preview`: what a cron expression means and when it fires,
/// before it is saved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchedulePreviewBody {
    /// Quartz cron with seconds.
    pub cron: String,
    /// IANA zone the cron reads in; default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// RFC 3339 start of the window.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339 end of the window.
    #[serde(default)]
    pub end: Option<String>,
    /// How many fire times (1-100, default 10).
    #[serde(default)]
    pub count: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchedulePreview {
    pub cron: String,
    pub timezone: String,
    /// The expression in plain English.
    pub description: String,
    /// The next fire times from now, RFC 3339 in the schedule's zone.
    pub fires: Vec<String>,
}
