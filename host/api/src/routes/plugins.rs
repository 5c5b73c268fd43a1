//! Task-type plugins: list every version, upload a new one (hot-loaded, active at
//! once), switch the active version, roll back. Changing plugins needs the admin role.

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::plugins::{ActivePlugin, InstallError};
pub use shoal_api_types::plugins::{ActivateBody, PluginView};

/// The multipart form of an upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PluginUpload {
    /// `shoal-plugin.toml` text.
    manifest: String,
    /// The `.wasm` component.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> Self {
        use shoal_protocol::PluginError as P;
        match e {
            InstallError::Invalid(m) => ApiError::BadRequest(m),
            InstallError::Plugin(P::Conflict(m)) => ApiError::Conflict(m),
            InstallError::Plugin(P::Unknown(m)) => ApiError::NotFound(m),
            InstallError::Plugin(P::Storage(m)) => ApiError::Internal(m),
            InstallError::Io(_) | InstallError::Store(_) => ApiError::Internal(e.to_string()),
            // The upload's fault: bad manifest, WIT version, a component that does not
            // load or fails its test call.
            InstallError::Plugin(P::Rejected(m)) => ApiError::BadRequest(m),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginView>), (status = 401, body = crate::ErrorBody)))]
pub async fn list_plugins(
    State(state): State<ApiState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<PluginView>>> {
    let hashes: std::collections::HashMap<(String, String), String> = state
        .store()
        .plugin_versions()
        .await?
        .into_iter()
        .map(|r| ((r.plugin_id, r.version), r.sha256))
        .collect();
    Ok(Json(
        state
            .registry()
            .list()
            .into_iter()
            .map(|p| {
                let builtin = p.source == shoal_protocol::PluginSource::Builtin;
                PluginView {
                    sha256: (!builtin)
                        .then(|| hashes.get(&(p.id.clone(), p.version.to_string())).cloned())
                        .flatten(),
                    id: p.id,
                    version: p.version.to_string(),
                    wit: p.wit.to_string(),
                    description: p.description,
                    capabilities: p.capabilities,
                    http_hosts: p.http_hosts,
                    origin: if builtin { "builtin" } else { "installed" }.into(),
                    active: p.active,
                }
            })
            .collect(),
    ))
}

/// Upload a plugin version (multipart: `manifest`, `component`). It is validated (manifest,
/// WIT version, a test instantiation), stored by content hash, and made active: new tasks
/// use it at once, running tasks finish on the version they started with.
#[utoipa::path(post, path = "/api/v1/plugins", tag = "plugins",
    request_body(content = PluginUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = ActivePlugin), (status = 400, body = crate::ErrorBody),
              (status = 403, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
              (status = 413, body = crate::ErrorBody)))]
pub async fn upload_plugin(
    State(state): State<ApiState>,
    caller: Caller,
    mut form: Multipart,
) -> ApiResult<(StatusCode, Json<ActivePlugin>)> {
    caller.require_admin()?;
    let mut manifest = None;
    let mut component = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(upload_error(e)),
        };
        match field.name() {
            Some("manifest") => {
                manifest = Some(field.text().await.map_err(upload_error)?);
            }
            Some("component") => {
                component = Some(field.bytes().await.map_err(upload_error)?);
            }
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected form field `{other}`; send `manifest` and `component`"
                )));
            }
            None => return Err(ApiError::BadRequest("a form field has no name".into())),
        }
    }
    let manifest = manifest.ok_or_else(|| ApiError::BadRequest("manifest: missing".into()))?;
    let component = component.ok_or_else(|| ApiError::BadRequest("component: missing".into()))?;
    let active = state.plugins().install(&manifest, &component).await?;
    Ok((StatusCode::CREATED, Json(active)))
}

fn upload_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("the upload is too large: {}", e.body_text()))
    } else {
        ApiError::BadRequest(format!("malformed upload: {}", e.body_text()))
    }
}

#[utoipa::path(post, path = "/api/v1/plugins/{id}/activate", tag = "plugins",
    params(("id" = String, Path)), request_body = ActivateBody,
    responses((status = 200, body = ActivePlugin), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn activate_plugin(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ActivateBody>,
) -> ApiResult<Json<ActivePlugin>> {
    caller.require_admin()?;
    Ok(Json(state.plugins().activate(&id, &body.version).await?))
}

#[utoipa::path(post, path = "/api/v1/plugins/{id}/rollback", tag = "plugins",
    params(("id" = String, Path)),
    responses((status = 200, body = ActivePlugin), (status = 400, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody)))]
pub async fn rollback_plugin(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ActivePlugin>> {
    caller.require_admin()?;
    Ok(Json(state.plugins().rollback(&id).await?))
}
