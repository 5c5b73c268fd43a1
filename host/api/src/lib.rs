//! # shoal-api: Shoal's REST API
//!
//! Everything lives under `/api/v1`; [`router`] builds the axum router and, from the
//! same handler annotations, the OpenAPI document it serves at `/api/v1/openapi.json`,
//! so the document cannot drift from the routes.
//!
//! - [`auth`]: bearer tokens, roles and per-project permission levels;
//! - [`error`]: every failure is `{code, message}` with a fitting status;
//! - [`routes`]: one module per resource (projects, definitions, runs, instances, logs,
//!   schedules, plugins, users and tokens, secrets, datasources, alert channels, health,
//!   metrics);
//! - [`secrets`]: sealing and opening secret values;
//! - [`datasources`]: checking, sealing and listing a project's datasources;
//! - [`import`]: a DolphinScheduler export into a project's definitions and schedules.
//!
//! The API never drives the engine directly beyond [`shoal_master::Master`]'s public
//! operations and [`shoal_scheduler::Launcher`]: every state change still goes through
//! the engine's state machine. It sees plugins only through
//! [`shoal_protocol::PluginCatalog`], so it does not link the plugin runtime (wasmtime).

pub mod auth;
pub mod catalog;
pub mod datasources;
pub mod error;
pub mod import;
pub mod plugins;
pub mod routes;
pub mod secrets;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use shoal_master::Master;
use shoal_protocol::PluginCatalog;
use shoal_scheduler::{CronLoop, Launcher};
use shoal_store::Store;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};

/// Counters the server adds to `/metrics` (alert deliveries, say).
pub type ExtraMetrics = Arc<dyn Fn() -> Vec<(String, String, f64)> + Send + Sync>;

/// An all-in-one server's task slots and how many are in use (a cluster reads its
/// workers' from the registry instead).
pub type Capacity = Arc<dyn Fn() -> (i64, i64) + Send + Sync>;

/// Limits on request bodies.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Workflow definitions and other JSON bodies.
    pub max_body: usize,
    /// Plugin uploads (component + manifest).
    pub max_plugin: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            max_plugin: 64 << 20,
        }
    }
}

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    launcher: Launcher,
    cron: CronLoop,
    registry: Arc<dyn PluginCatalog>,
    secrets: secrets::SecretBox,
    plugins: plugins::PluginInstaller,
    limits: ApiLimits,
    extra_metrics: Option<ExtraMetrics>,
    capacity: Option<Capacity>,
    /// Runs asked for with an Idempotency-Key take turns (see `start_run`).
    keyed_runs: tokio::sync::Mutex<()>,
    started_at: std::time::Instant,
}

/// Everything [`ApiState::new`] needs.
pub struct ApiParts {
    pub launcher: Launcher,
    pub cron: CronLoop,
    /// The task-type plugins (the server's `PluginRegistry`).
    pub registry: Arc<dyn PluginCatalog>,
    pub secrets: secrets::SecretBox,
    /// Where uploaded plugins are staged before the registry takes them.
    pub staging_dir: PathBuf,
    pub limits: ApiLimits,
    pub extra_metrics: Option<ExtraMetrics>,
    pub capacity: Option<Capacity>,
}

impl ApiState {
    pub fn new(parts: ApiParts) -> Self {
        let plugins = plugins::PluginInstaller::new(
            parts.registry.clone(),
            parts.launcher.master().store().clone(),
            parts.staging_dir,
        );
        Self {
            inner: Arc::new(Inner {
                launcher: parts.launcher,
                cron: parts.cron,
                registry: parts.registry,
                secrets: parts.secrets,
                plugins,
                limits: parts.limits,
                extra_metrics: parts.extra_metrics,
                capacity: parts.capacity,
                keyed_runs: tokio::sync::Mutex::new(()),
                started_at: std::time::Instant::now(),
            }),
        }
    }

    pub fn master(&self) -> &Master {
        self.inner.launcher.master()
    }
    pub fn store(&self) -> &Store {
        self.inner.launcher.master().store()
    }
    pub fn launcher(&self) -> &Launcher {
        &self.inner.launcher
    }
    pub fn cron(&self) -> &CronLoop {
        &self.inner.cron
    }
    pub fn registry(&self) -> &Arc<dyn PluginCatalog> {
        &self.inner.registry
    }
    pub fn secrets(&self) -> &secrets::SecretBox {
        &self.inner.secrets
    }
    pub fn plugins(&self) -> &plugins::PluginInstaller {
        &self.inner.plugins
    }
    pub fn limits(&self) -> &ApiLimits {
        &self.inner.limits
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shoal API",
        description = "Workflows, runs, schedules and task-type plugins of a Shoal server. Every endpoint except health and this document needs `Authorization: Bearer TOKEN`."
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The API's router, with its OpenAPI document served at `/api/v1/openapi.json`.
pub fn router(state: ApiState) -> Router {
    let limits = state.limits().clone();
    let (router, mut doc) =
        routes::all(OpenApiRouter::with_openapi(ApiDoc::openapi()), &limits).split_for_parts();
    // After the split: `#[openapi(modifiers)]` run before the routes join the document.
    common_responses(&mut doc);
    // Serialised once: the document does not change while the server runs.
    let doc =
        axum::body::Bytes::from(serde_json::to_vec(&doc).expect("the OpenAPI document serialises"));
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc,
                    )
                }
            }),
        )
        .fallback(|| async {
            ApiError::NotFound("no such endpoint; see /api/v1/openapi.json".into())
        })
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}

/// Document the error answers that come from the layers around every handler rather
/// than from the handler itself, so no operation can forget them: 401 from the token
/// check, 400 from axum's path, query and body extractors (turned into `bad-request` by
/// [`error::json_errors`]), 404 for a path that names nothing (a missing resource, or a
/// segment that matches no route and reaches the fallback), 403 on every project-scoped
/// path ([`auth::Caller::require`] answers it for a project the caller may not see), 413
/// from the body limit, and 500 for a store that fails. An operation that documents one
/// of these itself keeps its own description.
fn common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let global_security = doc.security.as_ref().is_some_and(|s| !s.is_empty());
    for (path, item) in doc.paths.paths.iter_mut() {
        let project_scoped = path.starts_with("/api/v1/projects/{project}");
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            // `security(())` (health) is an empty requirement: the token is optional there.
            let needs_token = match &op.security {
                None => global_security,
                Some(reqs) => !reqs.is_empty() && !reqs.iter().any(is_empty_requirement),
            };
            let params = op.parameters.as_deref().unwrap_or_default();
            let path_params = params
                .iter()
                .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path);
            let has_input = !params.is_empty() || op.request_body.is_some();
            let responses = &mut op.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description));
            };
            if needs_token {
                add("401", "Missing, invalid, expired or revoked token");
            }
            if has_input {
                add(
                    "400",
                    "A path segment, query parameter or body that does not parse",
                );
            }
            if path_params {
                add("404", "Nothing by that name or id");
            }
            if project_scoped {
                add("403", "No such permission on the project");
            }
            if op.request_body.is_some() {
                add("413", "Body over the server's size limit");
            }
            add("500", "Internal failure; the server log has the details");
        }
    }
}

fn is_empty_requirement(req: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(req).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}
