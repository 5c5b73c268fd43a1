//! `POST /projects/{project}/import`: a DolphinScheduler export (3.0–3.3 JSON, or the
//! create-definition API body) becomes the project's definitions and schedules.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};

use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::catalog::RegistryCatalog;
use crate::error::{ApiError, ApiResult};
use crate::import::{ImportFailure, ImportReport};
pub use shoal_api_types::imports::ImportQuery;

/// `ID=NAME,ID=NAME` as a map, or which pair is wrong.
pub fn id_names(text: Option<&str>, field: &str) -> Result<BTreeMap<i64, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let parsed = pair
            .split_once('=')
            .and_then(|(id, name)| Some((id.trim().parse::<i64>().ok()?, name.trim())));
        match parsed {
            Some((id, name)) if !name.is_empty() => {
                out.insert(id, name.to_owned());
            }
            _ => return Err(format!("{field}: `{pair}` is not ID=NAME")),
        }
    }
    Ok(out)
}

impl From<ImportFailure> for ApiError {
    fn from(e: ImportFailure) -> Self {
        match e {
            ImportFailure::Convert(m) | ImportFailure::Invalid(m) => ApiError::InvalidDefinition(m),
            ImportFailure::Store(e) => e.into(),
        }
    }
}

/// Import every workflow of the export; nothing is written unless all of them load.
#[utoipa::path(post, path = "/api/v1/projects/{project}/import", tag = "definitions",
    params(("project" = String, Path), ImportQuery),
    request_body(content = String, content_type = "application/json",
        description = "The DolphinScheduler export file, as it is"),
    responses((status = 200, body = ImportReport), (status = 422, body = crate::ErrorBody),
        (status = 403, body = crate::ErrorBody)))]
pub async fn import_export(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
    Query(query): Query<ImportQuery>,
    body: String,
) -> ApiResult<Json<ImportReport>> {
    caller.require(&state, &project, Level::Edit).await?;
    if state.store().project(&project).await?.is_none() {
        return Err(ApiError::NotFound(format!("no project `{project}`")));
    }
    let options = shoal_dolphin::Options {
        project: Some(project.clone()),
        partial: query.partial,
        datasources: id_names(query.datasources.as_deref(), "datasources")
            .map_err(ApiError::BadRequest)?,
        task_groups: id_names(query.task_groups.as_deref(), "task_groups")
            .map_err(ApiError::BadRequest)?,
        export_timezone: query.export_timezone.clone(),
    };
    let catalog = RegistryCatalog::new(state.registry().clone());
    let report = crate::import::import(state.store(), &catalog, &project, &body, &options).await?;
    state.cron().wake();
    Ok(Json(report))
}
