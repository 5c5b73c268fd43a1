//! Workflow instances: filtered listing with paging, detail with task instances,
//! operations, and task logs (read, or follow while the task runs).

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use shoal_master::Operation;
use shoal_model::log::LogChunk;
use shoal_store::{InstanceFilter, Store, TaskInstanceRow, WorkflowInstanceRow};

use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::error::{ApiError, ApiResult};
use crate::view::View;
pub use shoal_api_types::instances::{
    Instance, InstanceDetail, InstancePage, InstanceQuery, LogQuery, OperationBody, TaskInstance,
    TaskInstanceDetail,
};

impl crate::view::View<Instance> for WorkflowInstanceRow {
    fn view(self) -> Instance {
        let r = self;
        Instance {
            id: r.id,
            definition_id: r.definition_id,
            version: r.version,
            name: r.name,
            state: r.state,
            schedule_time: r.schedule_time,
            startup_params: r.startup_params,
            parent_task_instance_id: r.parent_task_instance_id,
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
            cluster: None,
        }
    }
}

impl crate::view::View<TaskInstance> for TaskInstanceRow {
    fn view(self) -> TaskInstance {
        let t = self;
        TaskInstance {
            id: t.id,
            task_name: t.task_name,
            task_type: t.task_type,
            attempt: t.attempt,
            state: t.state,
            host: t.host,
            plugin_version: t.plugin_version,
            handle: t.handle,
            message: t.message,
            out_params: t.out_params,
            started_at: t.started_at,
            ended_at: t.ended_at,
        }
    }
}

/// The most one log read returns.
const LOG_READ_MAX: usize = 1 << 20;

/// The response header naming where the next read continues.
pub const NEXT_OFFSET_HEADER: &str = "x-log-next-offset";

/// An instance and its project, after checking the caller holds `level` there. An
/// instance in a project the caller cannot see answers 404, like a missing one.
pub(super) async fn instance_for(
    state: &ApiState,
    caller: &Caller,
    id: i64,
    level: Level,
) -> ApiResult<(WorkflowInstanceRow, String)> {
    let missing = || ApiError::NotFound(format!("no workflow instance {id}"));
    let row = state
        .store()
        .workflow_instance(id)
        .await?
        .ok_or_else(missing)?;
    let project = state
        .store()
        .definition_row_by_id(row.definition_id)
        .await?
        .map(|d| d.project)
        .ok_or_else(missing)?;
    if !caller.admin {
        let held = state.store().permission(&project, caller.user_id).await?;
        match held.as_deref().and_then(Level::parse) {
            None => return Err(missing()),
            Some(h) if h < level => {
                return Err(ApiError::Forbidden(format!(
                    "you need `{}` permission on project `{project}`",
                    level.as_str()
                )));
            }
            Some(_) => {}
        }
    }
    Ok((row, project))
}

#[utoipa::path(get, path = "/api/v1/instances", tag = "instances", params(InstanceQuery),
    responses((status = 200, body = InstancePage), (status = 400, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
              (status = 404, description = "`workflow` names no workflow of `project`", body = crate::ErrorBody)))]
pub async fn list_instances(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<InstanceQuery>,
) -> ApiResult<Json<InstancePage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit: must be 1 to 1000".into()));
    }
    let offset = q.offset.unwrap_or(0).max(0);
    if q.before.is_some() && offset > 0 {
        return Err(ApiError::BadRequest(
            "before: pages by id, so it cannot be combined with offset".into(),
        ));
    }
    let mut filter = InstanceFilter {
        project: q.project.clone(),
        from_ms: q.from,
        to_ms: q.to,
        before_id: q.before,
        ..Default::default()
    };
    match &q.project {
        Some(p) => caller.require(&state, p, Level::Read).await?,
        None if caller.admin => {}
        None => {
            return Err(ApiError::BadRequest(
                "project: required (only admins list every project's instances)".into(),
            ));
        }
    }
    if let Some(name) = &q.workflow {
        let project = q
            .project
            .as_deref()
            .ok_or_else(|| ApiError::BadRequest("workflow: needs `project` too".into()))?;
        let d = state
            .store()
            .definition_row(project, name)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("project `{project}` has no workflow `{name}`"))
            })?;
        filter.definition_id = Some(d.id);
    }
    if let Some(states) = &q.state {
        filter.states = states
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    let listing = state.store().find_instances(&filter, limit, offset).await?;
    Ok(Json(InstancePage {
        next_before: listing.next_before(offset),
        total: listing.total,
        total_capped: listing.capped,
        limit,
        offset,
        items: listing.rows.into_iter().map(View::view).collect(),
        missing: Vec::new(),
    }))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = i64, Path)),
    responses((status = 200, body = InstanceDetail), (status = 404, body = crate::ErrorBody)))]
pub async fn get_instance(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<InstanceDetail>> {
    let (row, project) = instance_for(&state, &caller, id, Level::Read).await?;
    let tasks = state.store().task_instances(id).await?;
    Ok(Json(InstanceDetail {
        project,
        instance: row.view(),
        tasks: tasks.into_iter().map(View::view).collect(),
    }))
}

/// Apply an operation; answers once its state change is stored (or refused with 409).
#[utoipa::path(post, path = "/api/v1/instances/{id}/operations", tag = "instances",
    params(("id" = i64, Path)), request_body = OperationBody,
    responses((status = 200, body = Instance), (status = 400, body = crate::ErrorBody),
              (status = 403, description = "The caller may read the instance's project but not operate on it", body = crate::ErrorBody),
              (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub async fn operate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<OperationBody>,
) -> ApiResult<Json<Instance>> {
    instance_for(&state, &caller, id, Level::Operate).await?;
    let task = || {
        body.task
            .clone()
            .ok_or_else(|| ApiError::BadRequest(format!("task: `{}` needs a task name", body.op)))
    };
    let op = match body.op.as_str() {
        "stop" => Operation::Stop,
        "pause" => Operation::Pause,
        "resume" => Operation::Resume,
        "rerun" => Operation::Rerun,
        "recover" => Operation::Recover,
        "force-success" => Operation::ForceSuccess { task: task()? },
        "kill" => Operation::Kill { task: task()? },
        other => {
            return Err(ApiError::BadRequest(format!(
                "op: unknown operation `{other}`; expected stop, pause, resume, rerun, recover, force-success or kill"
            )));
        }
    };
    state.master().operate(id, op).await?;
    let row = state
        .store()
        .workflow_instance(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow instance {id}")))?;
    Ok(Json(row.view()))
}

const FINISHED_TASK: [&str; 6] = [
    "succeeded",
    "failed",
    "killed",
    "forced-success",
    "skipped",
    "paused",
];

/// A bounded piece of a task's log: from its file when this node has it (the task ran
/// here, or on a node sharing this disk), else from what its node shipped to the store.
async fn read_log(store: &Store, row: &TaskInstanceRow, offset: u64, limit: usize) -> LogChunk {
    let empty = LogChunk {
        text: String::new(),
        next_offset: offset,
        eof: true,
    };
    if let Some(path) = row
        .log_path
        .clone()
        .filter(|p| std::path::Path::new(p).is_file())
    {
        let id = row.id as u64;
        return tokio::task::spawn_blocking(move || {
            shoal_model::log::read_task_log_range(std::path::Path::new(&path), id, offset, limit)
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(empty);
    }
    shipped_log(store, row, offset, limit)
        .await
        .unwrap_or(empty)
}

/// The part of a remote task's log its node shipped, from `offset`. Once the task has
/// ended, a log its node did not finish shipping (the node died first) ends with a line
/// saying the rest is unavailable.
async fn shipped_log(
    store: &Store,
    row: &TaskInstanceRow,
    offset: u64,
    limit: usize,
) -> Result<LogChunk, shoal_store::StoreError> {
    let pieces = store.task_log_chunks(row.id, offset as i64, limit).await?;
    let finished = FINISHED_TASK.contains(&row.state.as_str());
    let cut_short = || match row.host.as_deref() {
        Some(host) if !host.is_empty() => format!(
            "[the rest of this log is unavailable: it was on node {host}, which stopped before shipping it]\n"
        ),
        _ => "[this task's log is unavailable]\n".to_owned(),
    };
    if let Some(last) = pieces.last() {
        let next_offset = last.next_offset.max(0) as u64;
        let mut text = pieces.iter().map(|p| p.text.as_str()).collect::<String>();
        let mut eof = last.last;
        // The attempt ended, and what its node shipped ends here without the mark.
        if finished
            && !last.last
            && store
                .task_log_chunks(row.id, next_offset as i64, 1)
                .await?
                .is_empty()
        {
            text.push_str(&cut_short());
            eof = true;
        }
        return Ok(LogChunk {
            text,
            next_offset,
            eof,
        });
    }
    let text = if finished && !store.task_log_complete(row.id).await? {
        cut_short()
    } else {
        String::new()
    };
    Ok(LogChunk {
        text,
        next_offset: offset,
        eof: true,
    })
}

/// One task instance, with its workflow instance and project.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "instances",
    params(("id" = i64, Path, description = "Task instance id")),
    responses((status = 200, body = TaskInstanceDetail), (status = 404, body = crate::ErrorBody)))]
pub async fn get_task(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<TaskInstanceDetail>> {
    let missing = || ApiError::NotFound(format!("no task instance {id}"));
    let row = state.store().task_instance(id).await?.ok_or_else(missing)?;
    let (_, project) = instance_for(&state, &caller, row.workflow_instance_id, Level::Read)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => missing(),
            other => other,
        })?;
    Ok(Json(TaskInstanceDetail {
        project,
        workflow_instance_id: row.workflow_instance_id,
        task: row.view(),
    }))
}

/// A task instance's log as text. With `follow=true` the response streams new lines
/// until the task finishes.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/log", tag = "instances",
    params(("id" = i64, Path, description = "Task instance id"), LogQuery),
    responses((status = 200, body = String, content_type = "text/plain"), (status = 404, body = crate::ErrorBody)))]
pub async fn task_log(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let missing = || ApiError::NotFound(format!("no task instance {id}"));
    let row = state.store().task_instance(id).await?.ok_or_else(missing)?;
    instance_for(&state, &caller, row.workflow_instance_id, Level::Read)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => missing(),
            other => other,
        })?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(LOG_READ_MAX).clamp(1, LOG_READ_MAX);
    let text_response = |body: Body, next: Option<u64>| {
        let mut r = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
        if let Some(next) = next {
            r.headers_mut()
                .insert(NEXT_OFFSET_HEADER, header::HeaderValue::from(next));
        }
        r
    };
    if !q.follow.unwrap_or(false) {
        let chunk = read_log(state.store(), &row, offset, limit).await;
        return Ok(text_response(
            Body::from(chunk.text),
            Some(chunk.next_offset),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    let store = state.store().clone();
    tokio::spawn(async move {
        let mut at = offset;
        loop {
            let Ok(Some(row)) = store.task_instance(id).await else {
                return;
            };
            let done = FINISHED_TASK.contains(&row.state.as_str());
            // Drain what is there now, a bounded piece at a time.
            loop {
                let chunk = read_log(&store, &row, at, limit).await;
                at = chunk.next_offset;
                if !chunk.text.is_empty() && tx.send(Ok(chunk.text)).await.is_err() {
                    return;
                }
                if chunk.eof {
                    break;
                }
            }
            if done {
                return;
            }
            // A client that went away ends the stream even while the log is quiet.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = tx.closed() => return,
            }
        }
    });
    Ok(text_response(
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
        None,
    ))
}
