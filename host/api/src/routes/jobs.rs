//! External jobs (a Flink job, a CDC pipeline) by their task instance: the project's
//! list, and named actions on one (savepoint, stop with a savepoint, cancel), carried
//! out by the task type's plugin through the instance's owner.

use axum::Json;
use axum::extract::{Path, Query, State};
use shoal_store::TaskInstanceRow;

use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::error::{ApiError, ApiResult};
pub use shoal_api_types::jobs::{ActionBody, ActionDone, Job, JobQuery};

/// A task attempt with a handle, as a job; `None` without one.
fn job_from_row(t: TaskInstanceRow) -> Option<Job> {
    Some(Job {
        handle: t.handle?,
        task_instance_id: t.id,
        workflow_instance_id: t.workflow_instance_id,
        task_name: t.task_name,
        task_type: t.task_type,
        attempt: t.attempt,
        state: t.state,
        host: t.host,
        started_at: t.started_at,
        ended_at: t.ended_at,
    })
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "instances", params(JobQuery),
    responses((status = 200, body = [Job]), (status = 400, body = crate::ErrorBody),
              (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn list_jobs(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<JobQuery>,
) -> ApiResult<Json<Vec<Job>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit: must be 1 to 1000".into()));
    }
    caller.require(&state, &q.project, Level::Read).await?;
    let rows = state.store().external_jobs(&q.project, limit).await?;
    Ok(Json(rows.into_iter().filter_map(job_from_row).collect()))
}

/// Carry out an action on the job of a task instance's task; answers once the outcome
/// is stored. 409 when the task has no job, or its type does not offer the action.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/actions", tag = "instances",
    params(("id" = i64, Path, description = "Task instance id")), request_body = ActionBody,
    responses((status = 200, body = ActionDone), (status = 400, body = crate::ErrorBody),
              (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
              (status = 409, body = crate::ErrorBody)))]
pub async fn task_action(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<ActionBody>,
) -> ApiResult<Json<ActionDone>> {
    let missing = || ApiError::NotFound(format!("no task instance {id}"));
    let args = match body.args {
        serde_json::Value::Null => serde_json::json!({}),
        a @ serde_json::Value::Object(_) => a,
        _ => return Err(ApiError::BadRequest("args: must be a JSON object".into())),
    };
    let action = body.action.trim();
    if action.is_empty() || action.len() > 64 {
        return Err(ApiError::BadRequest(
            "action: must name an action (at most 64 characters)".into(),
        ));
    }
    let row = state.store().task_instance(id).await?.ok_or_else(missing)?;
    super::instances::instance_for(&state, &caller, row.workflow_instance_id, Level::Operate)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => missing(),
            other => other,
        })?;
    let message = state
        .master()
        .control(row.workflow_instance_id, &row.task_name, action, args)
        .await?;
    Ok(Json(ActionDone {
        task_instance_id: id,
        action: action.to_owned(),
        message,
    }))
}
