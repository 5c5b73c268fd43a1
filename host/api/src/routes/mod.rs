//! The endpoints, one module per resource. Each handler carries a `#[utoipa::path]`
//! annotation; [`all`] registers them with `routes!`, which takes path and method from
//! that annotation, so the served OpenAPI document and the router are one list.

mod datasources;
mod definitions;
mod events;
pub mod import;
mod instances;
mod jobs;
mod plugins;
mod projects;
mod schedules;
mod system;
mod users;
pub use users::{calling_token_expiry, outlives_check};

pub use definitions::{DefinitionDetail, Saved, VersionView, load_upload};
pub use jobs::{ActionBody, ActionDone, Job};
pub use schedules::preview as schedule_preview;
pub use system::{NodeList, NodeView};

use axum::extract::DefaultBodyLimit;
use shoal_store::DefinitionRow;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Level};
use crate::error::{ApiError, ApiResult};
use crate::{ApiLimits, ApiState};

/// Every endpoint, in `router` with body limits from `limits`.
pub fn all(router: OpenApiRouter<ApiState>, limits: &ApiLimits) -> OpenApiRouter<ApiState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(plugins::list_plugins, plugins::upload_plugin))
        .layer(DefaultBodyLimit::max(limits.max_plugin));
    // An export holds many workflows: it gets the converter's own limit.
    let imports = OpenApiRouter::new()
        .routes(routes!(import::import_export))
        .layer(DefaultBodyLimit::max(shoal_dolphin::MAX_INPUT_BYTES));
    let rest = OpenApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::metrics))
        .routes(routes!(system::nodes))
        .routes(routes!(system::status))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::create_token))
        .routes(routes!(users::my_tokens))
        .routes(routes!(users::me))
        .routes(routes!(users::revoke_token))
        .routes(routes!(projects::list_projects, projects::create_project))
        .routes(routes!(projects::get_project, projects::delete_project))
        .routes(routes!(projects::grant_permission))
        .routes(routes!(projects::list_permissions))
        .routes(routes!(projects::set_tenancy))
        .routes(routes!(projects::list_secrets))
        .routes(routes!(projects::put_secret, projects::delete_secret))
        .routes(routes!(datasources::list_datasources))
        .routes(routes!(
            datasources::put_datasource,
            datasources::delete_datasource
        ))
        .routes(routes!(projects::list_alert_channels))
        .routes(routes!(
            projects::put_alert_channel,
            projects::delete_alert_channel
        ))
        .routes(routes!(
            definitions::list_definitions,
            definitions::put_definition
        ))
        .routes(routes!(
            definitions::get_definition,
            definitions::delete_definition
        ))
        .routes(routes!(definitions::get_version))
        .routes(routes!(definitions::diff_versions))
        .routes(routes!(definitions::release))
        .routes(routes!(definitions::set_run_mode))
        .routes(routes!(definitions::start_run))
        .routes(routes!(definitions::backfill))
        .routes(routes!(definitions::pin_plugin))
        .routes(routes!(schedules::list_schedules))
        .routes(routes!(schedules::preview_schedule))
        .routes(routes!(
            schedules::get_schedule,
            schedules::put_schedule,
            schedules::delete_schedule
        ))
        .routes(routes!(schedules::schedule_online))
        .routes(routes!(instances::list_instances))
        .routes(routes!(instances::get_instance))
        .routes(routes!(instances::operate))
        .routes(routes!(instances::task_log))
        .routes(routes!(instances::get_task))
        .routes(routes!(events::events))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::task_action))
        .routes(routes!(plugins::activate_plugin))
        .routes(routes!(plugins::rollback_plugin))
        .layer(DefaultBodyLimit::max(limits.max_body));
    router.merge(uploads).merge(imports).merge(rest)
}

/// The definition `name` of `project`, after checking the caller holds `level` on it.
async fn definition_for(
    state: &ApiState,
    caller: &Caller,
    project: &str,
    name: &str,
    level: Level,
) -> ApiResult<DefinitionRow> {
    caller.require(state, project, level).await?;
    state
        .store()
        .definition_row(project, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project `{project}` has no workflow `{name}`")))
}

/// Parse a `YYYY-MM-DD` business date at midnight in `zone` (IANA name; none: the
/// server's local zone) into ms since the epoch.
fn business_date_ms(date: &str, zone: Option<&str>, field: &str) -> ApiResult<i64> {
    use chrono::TimeZone;
    let day = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").map_err(|e| {
        ApiError::BadRequest(format!("{field}: `{date}` is not a YYYY-MM-DD date: {e}"))
    })?;
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let at = match zone {
        Some(z) => {
            let tz: chrono_tz::Tz = z
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("timezone: unknown zone `{z}`")))?;
            tz.from_local_datetime(&midnight)
                .earliest()
                .map(|t| t.timestamp_millis())
        }
        None => chrono::Local
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.timestamp_millis()),
    };
    at.ok_or_else(|| ApiError::BadRequest(format!("{field}: `{date}` has no midnight there")))
}
