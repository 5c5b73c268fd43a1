//! The proxy's API, on the same paths as a cluster's `/api/v1`, so `shoal --server`
//! and any API client work against it unchanged; plus what only a proxy has
//! (`/clusters`, `/audit`, `/proxy-runs/{key}`).
//!
//! - [`admin`]: users, tokens, projects and permissions (the proxy's own);
//! - [`runs`]: definitions (applied here, copied out), runs, backfills, global
//!   schedules, and settings written to every cluster;
//! - [`view`]: instances, task instances, logs, jobs and nodes across clusters;
//! - [`events`]: the clusters' live event streams merged, with proxy ids.

mod admin;
mod events;
mod runs;
mod view;

use axum::extract::{Path, Query, State};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use shoal_api::ApiError;
use shoal_api::auth::{AuthStore, Caller, Level};
use shoal_api_types::clusters::{AuditPage, ClusterList, ProxyRun};
use shoal_api_types::system::Health;

use crate::Proxy;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl AuthStore for Proxy {
    fn auth_store(&self) -> &shoal_store::Store {
        self.store().store()
    }
}

/// The whole API.
pub fn router(proxy: Proxy) -> Router {
    let max_body = 1 << 20;
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/clusters", get(clusters))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/proxy-runs/{key}", get(proxy_run))
        .route("/api/v1/routes", get(list_routes).put(put_route))
        .route("/api/v1/schedules/preview", post(schedule_preview))
        .route("/api/v1/routes/{project}", axum::routing::delete(delete_route))
        .route("/api/v1/users", get(admin::list_users).post(admin::create_user))
        .route("/api/v1/users/{user}/tokens", post(admin::create_token))
        .route("/api/v1/tokens", get(admin::my_tokens))
        .route("/api/v1/me", get(admin::me))
        .route("/api/v1/projects/{project}/permissions", get(admin::permissions))
        .route("/api/v1/tokens/{id}", axum::routing::delete(admin::revoke_token))
        .route("/api/v1/projects", get(admin::list_projects).post(admin::create_project))
        .route("/api/v1/projects/{project}", get(admin::get_project))
        .route("/api/v1/projects/{project}/tenancy", patch(admin::tenancy))
        .route("/api/v1/projects/{project}/permissions/{user}", put(admin::grant))
        .route(
            "/api/v1/projects/{project}/definitions",
            get(runs::list_definitions).post(runs::apply),
        )
        .route("/api/v1/projects/{project}/definitions/{name}", get(runs::get_definition))
        .route(
            "/api/v1/projects/{project}/definitions/{name}/versions/{version}",
            get(runs::get_version),
        )
        .route("/api/v1/projects/{project}/definitions/{name}/runs", post(runs::start_run))
        .route("/api/v1/projects/{project}/definitions/{name}/backfill", post(runs::backfill))
        .route(
            "/api/v1/projects/{project}/definitions/{name}/schedule",
            get(runs::get_schedule).put(runs::put_schedule).delete(runs::delete_schedule),
        )
        .route(
            "/api/v1/projects/{project}/definitions/{name}/schedule/{switch}",
            post(runs::switch_schedule),
        )
        .route("/api/v1/projects/{project}/definitions/{name}/{release}", post(runs::release))
        .route("/api/v1/projects/{project}/schedules", get(runs::list_schedules))
        .route(
            "/api/v1/projects/{project}/definitions/{name}/run-mode",
            put(runs::broadcast_edit),
        )
        .route(
            "/api/v1/projects/{project}/definitions/{name}/pins/{plugin}",
            put(runs::broadcast_edit),
        )
        .route("/api/v1/projects/{project}/secrets", get(view::secrets))
        .route("/api/v1/projects/{project}/datasources", get(view::datasources))
        .route(
            "/api/v1/projects/{project}/secrets/{name}",
            put(runs::broadcast_edit).delete(runs::broadcast_edit),
        )
        .route(
            "/api/v1/projects/{project}/datasources/{name}",
            put(runs::broadcast_edit).delete(runs::broadcast_edit),
        )
        .route(
            "/api/v1/projects/{project}/alerts/{name}",
            put(runs::broadcast_edit).delete(runs::broadcast_edit),
        )
        .route("/api/v1/instances", get(view::list_instances))
        .route("/api/v1/instances/{id}", get(view::get_instance))
        .route("/api/v1/instances/{id}/operations", post(view::operate))
        .route("/api/v1/tasks/{id}", get(view::get_task))
        .route("/api/v1/tasks/{id}/log", get(view::task_log))
        .route("/api/v1/tasks/{id}/actions", post(view::task_action))
        .route("/api/v1/jobs", get(view::jobs))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/nodes", get(view::nodes))
        .fallback(|| async {
            ApiError::NotFound(
                "no such endpoint on the cluster proxy (plugins, imports and metrics are each cluster's own; call the cluster)"
                    .into(),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(proxy)
}

async fn health(State(p): State<Proxy>) -> ApiResult<Json<Health>> {
    p.store()
        .store()
        .user_count()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: p.uptime().as_secs(),
    }))
}

async fn clusters(State(p): State<Proxy>, _caller: Caller) -> Json<ClusterList> {
    Json(ClusterList {
        clusters: p.clusters().all().iter().map(|c| c.view()).collect(),
    })
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

async fn audit(
    State(p): State<Proxy>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.require_admin()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(AuditPage {
        items: p.store().audit_page(limit, q.before).await?,
    }))
}

async fn proxy_run(
    State(p): State<Proxy>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<ProxyRun>> {
    let missing = || ApiError::NotFound(format!("no run `{key}` at this proxy"));
    let row = p.store().run(&key).await?.ok_or_else(missing)?;
    caller
        .require_in(p.store().store(), &row.project, Level::Read)
        .await
        .map_err(|_| missing())?;
    let placed = p.placed_view(&row);
    Ok(Json(row.view(placed.instance)))
}

/// A route in force and where it comes from.
#[derive(Debug, serde::Serialize)]
struct RouteView {
    #[serde(flatten)]
    route: crate::config::RouteConfig,
    /// `api` (set here, kept in the proxy's store) or `config` (proxy.toml).
    source: &'static str,
}

async fn list_routes(State(p): State<Proxy>, _caller: Caller) -> Json<serde_json::Value> {
    let routes: Vec<RouteView> = p
        .routes()
        .into_iter()
        .map(|(route, source)| RouteView { route, source })
        .collect();
    Json(serde_json::json!({ "routes": routes }))
}

/// Set a project's (or one workflow's) route; it wins over proxy.toml's for the same
/// project and workflow. Admins only.
async fn put_route(
    State(p): State<Proxy>,
    caller: Caller,
    Json(route): Json<crate::config::RouteConfig>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require_admin()?;
    p.config()
        .check_route(&route)
        .map_err(ApiError::BadRequest)?;
    let text = serde_json::to_string(&route).map_err(|e| ApiError::Internal(e.to_string()))?;
    let workflow = route.workflow.clone().unwrap_or_default();
    p.store()
        .put_route(&route.project, &workflow, &text)
        .await?;
    p.reload_routes()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    p.audit(&caller.name, "PUT /routes", None, 200, &text).await;
    Ok(Json(serde_json::to_value(&route).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
struct RouteQuery {
    workflow: Option<String>,
}

async fn delete_route(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<RouteQuery>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require_admin()?;
    let workflow = q.workflow.unwrap_or_default();
    if !p.store().delete_route(&project, &workflow).await? {
        return Err(ApiError::NotFound(format!(
            "no route of project `{project}`{} set through the API",
            if workflow.is_empty() {
                String::new()
            } else {
                format!(" workflow `{workflow}`")
            }
        )));
    }
    p.reload_routes()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    p.audit(
        &caller.name,
        &format!("DELETE /routes/{project}"),
        None,
        204,
        &workflow,
    )
    .await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The same preview a cluster gives (computed here: it needs no cluster).
async fn schedule_preview(
    _caller: Caller,
    Json(body): Json<shoal_api_types::schedules::SchedulePreviewBody>,
) -> ApiResult<Json<shoal_api_types::schedules::SchedulePreview>> {
    shoal_api::routes::schedule_preview(&body).map(Json)
}
