//! Schedules: one per definition, a Quartz cron (with seconds) in a time zone, an
//! optional start/end window, a policy for fires missed while the server was down, and
//! startup params for each fire.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use shoal_schedule::CronSchedule;
use shoal_store::{NewSchedule, ScheduleRow};

use super::definition_for;
use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::error::{ApiError, ApiResult};
pub use shoal_api_types::schedules::{
    ScheduleBody, SchedulePreview, SchedulePreviewBody, ScheduleView,
};

fn view(row: ScheduleRow, workflow: String) -> ScheduleView {
    let upcoming = shoal_scheduler::cron_of(&row)
        .map(|cron| {
            let zone = cron.zone();
            cron.upcoming(Utc::now(), 5)
                .into_iter()
                .map(|t| t.with_timezone(&zone).to_rfc3339())
                .collect()
        })
        .unwrap_or_default();
    let description = shoal_schedule::describe(&row.cron);
    ScheduleView {
        definition_id: row.definition_id,
        workflow,
        cron: row.cron,
        timezone: row.timezone,
        start_at: row.start_at,
        end_at: row.end_at,
        missed: row.missed,
        online: row.online,
        params: serde_json::from_str(&row.params).unwrap_or_default(),
        last_fire_at: row.last_fire_at,
        next_fire_at: row.next_fire_at,
        upcoming,
        description,
        cluster: None,
    }
}

/// What a cron expression means and its next fire times, checked as a schedule is.
/// Shared with the cluster proxy, which answers the same path.
pub fn preview(body: &SchedulePreviewBody) -> ApiResult<SchedulePreview> {
    let zone = body.timezone.clone().unwrap_or_else(|| "UTC".into());
    let start = body
        .start
        .as_deref()
        .map(|s| instant(s, "start"))
        .transpose()?;
    let end = body.end.as_deref().map(|s| instant(s, "end")).transpose()?;
    let cron = CronSchedule::new(&body.cron, &zone)
        .and_then(|c| c.between(start, end))
        .map_err(|e| ApiError::BadRequest(format!("cron: {e}")))?;
    let count = body.count.unwrap_or(10);
    if !(1..=100).contains(&count) {
        return Err(ApiError::BadRequest("count: must be 1 to 100".into()));
    }
    let tz = cron.zone();
    Ok(SchedulePreview {
        cron: cron.expression().to_owned(),
        timezone: zone,
        description: shoal_schedule::describe(cron.expression()),
        fires: cron
            .upcoming(Utc::now(), count)
            .into_iter()
            .map(|t| t.with_timezone(&tz).to_rfc3339())
            .collect(),
    })
}

/// A cron expression in plain English and its next fire times in its zone, before it is
/// saved (any signed-in caller).
#[utoipa::path(post, path = "/api/v1/schedules/preview", tag = "schedules",
    request_body = SchedulePreviewBody,
    responses((status = 200, body = SchedulePreview), (status = 400, body = crate::ErrorBody)))]
pub async fn preview_schedule(
    _caller: Caller,
    Json(body): Json<SchedulePreviewBody>,
) -> ApiResult<Json<SchedulePreview>> {
    preview(&body).map(Json)
}

fn instant(text: &str, field: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::BadRequest(format!("{field}: `{text}` is not an RFC 3339 time: {e}"))
        })
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/schedules", tag = "schedules",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<ScheduleView>), (status = 403, body = crate::ErrorBody)))]
pub async fn list_schedules(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<ScheduleView>>> {
    caller.require(&state, &project, Level::Read).await?;
    let mut out = Vec::new();
    for d in state.store().definitions(&project).await? {
        if let Some(row) = state.store().schedule_of(d.id).await? {
            out.push(view(row, d.name));
        }
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/definitions/{name}/schedule", tag = "schedules",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 404, body = crate::ErrorBody)))]
pub async fn get_schedule(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<ScheduleView>> {
    let d = definition_for(&state, &caller, &project, &name, Level::Read).await?;
    let row = state
        .store()
        .schedule_of(d.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` has no schedule")))?;
    Ok(Json(view(row, d.name)))
}

/// Create or replace the schedule.
#[utoipa::path(put, path = "/api/v1/projects/{project}/definitions/{name}/schedule", tag = "schedules",
    params(("project" = String, Path), ("name" = String, Path)), request_body = ScheduleBody,
    responses((status = 200, body = ScheduleView), (status = 400, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub async fn put_schedule(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Json(body): Json<ScheduleBody>,
) -> ApiResult<Json<ScheduleView>> {
    let d = definition_for(&state, &caller, &project, &name, Level::Edit).await?;
    let zone = body.timezone.clone().unwrap_or_else(|| "UTC".into());
    let start = body
        .start
        .as_deref()
        .map(|s| instant(s, "start"))
        .transpose()?;
    let end = body.end.as_deref().map(|s| instant(s, "end")).transpose()?;
    let cron = CronSchedule::new(&body.cron, &zone)
        .and_then(|c| c.between(start, end))
        .map_err(|e| ApiError::BadRequest(format!("cron: {e}")))?;
    let missed = body.missed.clone().unwrap_or_else(|| "skip".into());
    if !matches!(missed.as_str(), "skip" | "run-once") {
        return Err(ApiError::BadRequest(format!(
            "missed: `{missed}` must be `skip` or `run-once`"
        )));
    }
    let online = body.online.unwrap_or(true);
    if online && !d.released {
        return Err(ApiError::Conflict(format!(
            "workflow `{name}` is offline; put it online before putting its schedule online"
        )));
    }
    let next = online
        .then(|| cron.next_after(Utc::now()).map(|t| t.timestamp_millis()))
        .flatten();
    let row = state
        .store()
        .put_schedule(&NewSchedule {
            definition_id: d.id,
            cron: cron.expression().to_owned(),
            timezone: zone,
            start_at: start.map(|t| t.timestamp_millis()),
            end_at: end.map(|t| t.timestamp_millis()),
            missed,
            online,
            params: serde_json::to_string(&body.params).unwrap_or_else(|_| "{}".into()),
            next_fire_at: next,
        })
        .await?;
    state.cron().wake();
    Ok(Json(view(row, d.name)))
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/definitions/{name}/schedule", tag = "schedules",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::ErrorBody)))]
pub async fn delete_schedule(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let d = definition_for(&state, &caller, &project, &name, Level::Edit).await?;
    if state.store().delete_schedule(d.id).await? {
        state.cron().wake();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "workflow `{name}` has no schedule"
        )))
    }
}

/// Put a schedule online (fires resume from now; missed fires while it was offline are
/// not run) or offline.
#[utoipa::path(post, path = "/api/v1/projects/{project}/definitions/{name}/schedule/{switch}", tag = "schedules",
    params(("project" = String, Path), ("name" = String, Path), ("switch" = String, Path, description = "`online` or `offline`")),
    responses((status = 200, body = ScheduleView), (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub async fn schedule_online(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name, switch)): Path<(String, String, String)>,
) -> ApiResult<Json<ScheduleView>> {
    let online = match switch.as_str() {
        "online" => true,
        "offline" => false,
        other => {
            return Err(ApiError::NotFound(format!(
                "no action `{other}` on a schedule; use online or offline"
            )));
        }
    };
    let d = definition_for(&state, &caller, &project, &name, Level::Edit).await?;
    let row = state
        .store()
        .schedule_of(d.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` has no schedule")))?;
    if online && !d.released {
        return Err(ApiError::Conflict(format!(
            "workflow `{name}` is offline; put it online first"
        )));
    }
    let next = if online {
        let cron = shoal_scheduler::cron_of(&row)
            .map_err(|e| ApiError::Internal(format!("stored schedule cannot be parsed: {e}")))?;
        shoal_scheduler::next_fire(&cron, Utc::now().timestamp_millis())
    } else {
        None
    };
    state
        .store()
        .set_schedule_online(d.id, online, next)
        .await?;
    state.cron().wake();
    let row = state
        .store()
        .schedule_of(d.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` has no schedule")))?;
    Ok(Json(view(row, d.name)))
}
