//! Projects, who may do what in them, and what belongs to a project beside its
//! workflows: sealed secrets and alert channels.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use shoal_store::ProjectRow;

use super::users::check_name;
use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::error::{ApiError, ApiResult};
use crate::view::View;
pub use shoal_api_types::projects::{
    AlertChannelBody, AlertChannelView, Permission, PermissionBody, Project, ProjectBody,
    SecretBody, SecretName, TenancyBody,
};

impl crate::view::View<Project> for ProjectRow {
    fn view(self) -> Project {
        let p = self;
        Project {
            id: p.id,
            name: p.name,
            description: p.description,
            created_at: p.created_at,
            tenant: p.tenant,
            allow_process: p.allow_process != 0,
            cluster: None,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<Project>), (status = 401, body = crate::ErrorBody)))]
pub async fn list_projects(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Project>>> {
    let mut visible = Vec::new();
    for p in state.store().projects().await? {
        if caller.admin
            || state
                .store()
                .permission(&p.name, caller.user_id)
                .await?
                .is_some()
        {
            visible.push(p.view());
        }
    }
    Ok(Json(visible))
}

/// Any user may create a project; its creator gets `edit` on it.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = ProjectBody,
    responses((status = 201, body = Project), (status = 400, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub async fn create_project(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<ProjectBody>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    check_name("name", &body.name)?;
    let row = state
        .store()
        .create_project(&body.name, &body.description)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("project `{}` exists", body.name)))?;
    state
        .store()
        .grant_permission(row.id, caller.user_id, Level::Edit.as_str())
        .await?;
    Ok((StatusCode::CREATED, Json(row.view())))
}

pub(crate) async fn project_row(
    state: &ApiState,
    caller: &Caller,
    project: &str,
    level: Level,
) -> ApiResult<ProjectRow> {
    caller.require(state, project, level).await?;
    state
        .store()
        .project(project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = Project), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn get_project(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Project>> {
    Ok(Json(
        project_row(&state, &caller, &project, Level::Read)
            .await?
            .view(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}", tag = "projects",
    params(("project" = String, Path)),
    responses((status = 204), (status = 403, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub async fn delete_project(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<StatusCode> {
    project_row(&state, &caller, &project, Level::Edit).await?;
    if state.store().delete_project(&project).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Conflict(format!(
            "project `{project}` still holds workflow definitions; delete them first"
        )))
    }
}

/// Allow or forbid process task types and set the tenant: admins only, since either
/// decides what runs on the server's machine.
#[utoipa::path(patch, path = "/api/v1/projects/{project}/tenancy", tag = "projects",
    params(("project" = String, Path)), request_body = TenancyBody,
    responses((status = 200, body = Project), (status = 400, body = crate::ErrorBody),
              (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn set_tenancy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
    Json(body): Json<TenancyBody>,
) -> ApiResult<Json<Project>> {
    let row = project_row(&state, &caller, &project, Level::Read).await?;
    if !caller.admin {
        return Err(ApiError::Forbidden(
            "only an admin decides whether a project may run processes and as which OS user".into(),
        ));
    }
    let tenant = match body.tenant {
        None => row.tenant.clone(),
        Some(t) if t.is_empty() => None,
        Some(t) => {
            if !shoal_model::sandbox::valid_tenant_name(&t) || t == "root" {
                return Err(ApiError::BadRequest(format!(
                    "tenant: `{t}` is not a usable OS user name (lower-case letters, digits, `-`, `_`; not root)"
                )));
            }
            Some(t)
        }
    };
    let allow = body.allow_process.unwrap_or(row.allow_process != 0);
    state
        .store()
        .set_project_tenancy(&project, tenant.as_deref(), allow)
        .await?;
    let row = state
        .store()
        .project(&project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project `{project}`")))?;
    Ok(Json(row.view()))
}

/// Who holds what level on the project (admins, or users with `edit`).
#[utoipa::path(get, path = "/api/v1/projects/{project}/permissions", tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<Permission>), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn list_permissions(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Permission>>> {
    Ok(Json(
        crate::auth::project_permissions(state.store(), &caller, &project).await?,
    ))
}

/// Give a user a permission level on the project (admins, or users with `edit`).
#[utoipa::path(put, path = "/api/v1/projects/{project}/permissions/{user}", tag = "projects",
    params(("project" = String, Path), ("user" = String, Path)), request_body = PermissionBody,
    responses((status = 204), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn grant_permission(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, user)): Path<(String, String)>,
    Json(body): Json<PermissionBody>,
) -> ApiResult<StatusCode> {
    let p = project_row(&state, &caller, &project, Level::Edit).await?;
    let u = state
        .store()
        .user_by_name(&user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user `{user}`")))?;
    state
        .store()
        .grant_permission(p.id, u.id, body.level.as_str())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/secrets", tag = "secrets",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<SecretName>), (status = 403, body = crate::ErrorBody)))]
pub async fn list_secrets(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<SecretName>>> {
    project_row(&state, &caller, &project, Level::Read).await?;
    Ok(Json(
        state
            .store()
            .secrets(&project)
            .await?
            .into_iter()
            .map(|s| SecretName {
                name: s.name,
                updated_at: s.updated_at,
            })
            .collect(),
    ))
}

/// Store a secret, sealed. Tasks reference it as `${secret.NAME}`; its value is masked
/// in task logs.
#[utoipa::path(put, path = "/api/v1/projects/{project}/secrets/{name}", tag = "secrets",
    params(("project" = String, Path), ("name" = String, Path)), request_body = SecretBody,
    responses((status = 204), (status = 400, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody)))]
pub async fn put_secret(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Json(body): Json<SecretBody>,
) -> ApiResult<StatusCode> {
    let p = project_row(&state, &caller, &project, Level::Edit).await?;
    check_name("name", &name)?;
    if body.value.is_empty() {
        return Err(ApiError::BadRequest("value: must not be empty".into()));
    }
    let (nonce, sealed) = state.secrets().seal(&project, &name, &body.value);
    state
        .store()
        .put_secret(p.id, &name, &nonce, &sealed)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/secrets/{name}", tag = "secrets",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::ErrorBody)))]
pub async fn delete_secret(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let p = project_row(&state, &caller, &project, Level::Edit).await?;
    if state.store().delete_secret(p.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "project `{project}` has no secret `{name}`"
        )))
    }
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/alerts", tag = "alerts",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<AlertChannelView>), (status = 403, body = crate::ErrorBody)))]
pub async fn list_alert_channels(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<AlertChannelView>>> {
    project_row(&state, &caller, &project, Level::Read).await?;
    let mut out = Vec::new();
    for row in state.store().alert_channels(&project).await? {
        let config: serde_json::Value = serde_json::from_str(&row.config).unwrap_or_default();
        out.push(AlertChannelView {
            name: row.name,
            kind: config["kind"].as_str().unwrap_or("?").to_owned(),
            events: serde_json::from_str(&row.events).unwrap_or_default(),
        });
    }
    Ok(Json(out))
}

#[utoipa::path(put, path = "/api/v1/projects/{project}/alerts/{name}", tag = "alerts",
    params(("project" = String, Path), ("name" = String, Path)), request_body = AlertChannelBody,
    responses((status = 204), (status = 400, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody)))]
pub async fn put_alert_channel(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Json(body): Json<AlertChannelBody>,
) -> ApiResult<StatusCode> {
    let p = project_row(&state, &caller, &project, Level::Edit).await?;
    check_name("name", &name)?;
    let config: shoal_alert::ChannelConfig = serde_json::from_value(body.config.clone())
        .map_err(|e| ApiError::BadRequest(format!("config: {e}")))?;
    config
        .validate()
        .map_err(|e| ApiError::BadRequest(format!("config: {e}")))?;
    for (i, event) in body.events.iter().enumerate() {
        serde_json::from_value::<shoal_alert::AlertKind>(serde_json::Value::String(event.clone()))
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "events[{i}]: unknown event `{event}`; expected workflow-failed, workflow-succeeded, task-timeout or task-failed"
                ))
            })?;
    }
    state
        .store()
        .put_alert_channel(
            p.id,
            &name,
            &state.secrets().seal_channel(&project, &name, &body.config),
            &serde_json::to_string(&body.events).unwrap_or_default(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/alerts/{name}", tag = "alerts",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::ErrorBody)))]
pub async fn delete_alert_channel(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let p = project_row(&state, &caller, &project, Level::Edit).await?;
    if state.store().delete_alert_channel(p.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "project `{project}` has no alert channel `{name}`"
        )))
    }
}
