//! `/projects/{project}/datasources`: the named database connections SQL tasks use.
//! Project editors manage them; readers see where they are, nobody sees a password.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::projects::project_row;
use super::users::check_name;
use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::datasources::{DatasourceBody, DatasourceError, DatasourceView};
use crate::error::{ApiError, ApiResult};

impl From<DatasourceError> for ApiError {
    fn from(e: DatasourceError) -> Self {
        match e {
            DatasourceError::Invalid(m) => ApiError::BadRequest(m),
            DatasourceError::Store(e) => e.into(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/datasources", tag = "datasources",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<DatasourceView>), (status = 403, body = crate::ErrorBody)))]
pub async fn list_datasources(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<DatasourceView>>> {
    project_row(&state, &caller, &project, Level::Read).await?;
    Ok(Json(
        crate::datasources::list(state.store(), state.secrets(), &project).await?,
    ))
}

/// Create or replace a datasource; its password is sealed at once and never shown.
#[utoipa::path(put, path = "/api/v1/projects/{project}/datasources/{name}", tag = "datasources",
    params(("project" = String, Path), ("name" = String, Path)), request_body = DatasourceBody,
    responses((status = 201, body = DatasourceView), (status = 200, body = DatasourceView),
        (status = 400, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody)))]
pub async fn put_datasource(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Json(body): Json<DatasourceBody>,
) -> ApiResult<(StatusCode, Json<DatasourceView>)> {
    let p = project_row(&state, &caller, &project, Level::Edit).await?;
    check_name("name", &name)?;
    let created =
        crate::datasources::put(state.store(), state.secrets(), p.id, &project, &name, &body)
            .await?;
    let view = crate::datasources::list(state.store(), state.secrets(), &project)
        .await?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| ApiError::Internal(format!("datasource `{name}` vanished")))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/datasources/{name}", tag = "datasources",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::ErrorBody)))]
pub async fn delete_datasource(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let p = project_row(&state, &caller, &project, Level::Edit).await?;
    if state.store().delete_datasource(p.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "project `{project}` has no datasource `{name}`"
        )))
    }
}
