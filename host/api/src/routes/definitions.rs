//! Workflow definitions (YAML or JSON bodies, versioned), their release state and run
//! mode, runs, backfills and plugin pins.

use std::path::Path as FsPath;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use shoal_master::RunRequest;
use shoal_scheduler::{Launch, RunMode};
use shoal_store::DefinitionRow;

use super::{business_date_ms, definition_for};
use crate::ApiState;
use crate::auth::{Caller, Level};
use crate::catalog::RegistryCatalog;
use crate::error::{ApiError, ApiResult};
use crate::view::View;
pub use shoal_api_types::definitions::{
    BackfillBody, BackfillQueued, Definition, DefinitionDetail, DiffQuery, DryRunQuery, LaunchView,
    PinBody, RunBody, RunModeBody, Saved, VersionView,
};

impl crate::view::View<Definition> for DefinitionRow {
    fn view(self) -> Definition {
        let d = self;
        Definition {
            id: d.id,
            project: d.project,
            name: d.name,
            current_version: d.current_version,
            online: d.released,
            run_mode: d.run_mode,
            created_at: d.created_at,
            updated_at: d.updated_at,
            cluster: None,
        }
    }
}

impl crate::view::View<LaunchView> for Launch {
    fn view(self) -> LaunchView {
        let l = self;
        match l {
            Launch::Started { instance } => LaunchView {
                outcome: "started".into(),
                instance: Some(instance),
                queued: None,
                cluster: None,
                run: None,
            },
            Launch::Queued { queued } => LaunchView {
                outcome: "queued".into(),
                instance: None,
                queued: Some(queued),
                cluster: None,
                run: None,
            },
            Launch::Discarded => LaunchView {
                outcome: "discarded".into(),
                instance: None,
                queued: None,
                cluster: None,
                run: None,
            },
        }
    }
}

const MAX_BACKFILL_DAYS: usize = 3660;

#[utoipa::path(get, path = "/api/v1/projects/{project}/definitions", tag = "definitions",
    params(("project" = String, Path)),
    responses((status = 200, body = Vec<Definition>), (status = 403, body = crate::ErrorBody)))]
pub async fn list_definitions(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Definition>>> {
    caller.require(&state, &project, Level::Read).await?;
    Ok(Json(
        state
            .store()
            .definitions(&project)
            .await?
            .into_iter()
            .map(View::view)
            .collect(),
    ))
}

/// Create a definition or add a version: the body is the workflow file, YAML
/// (`application/yaml`) or JSON (`application/json`). Problems are answered with 422,
/// each naming line and field; a body still holding `$FILE{}`, `$ENV{}` or `$WORKFLOW{}`
/// with 400 (the client resolves those before upload).
#[utoipa::path(post, path = "/api/v1/projects/{project}/definitions", tag = "definitions",
    params(("project" = String, Path), DryRunQuery),
    request_body(content = String, content_type = "application/yaml", description = "Workflow definition (YAML or JSON)"),
    responses((status = 201, body = Saved), (status = 200, body = Saved),
              (status = 400, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
              (status = 413, body = crate::ErrorBody)))]
pub async fn put_definition(
    State(state): State<ApiState>,
    caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<DryRunQuery>,
    headers: HeaderMap,
    body: String,
) -> ApiResult<(StatusCode, Json<Saved>)> {
    caller.require(&state, &project, Level::Edit).await?;
    if state.store().project(&project).await?.is_none() {
        return Err(ApiError::NotFound(format!("no project `{project}`")));
    }
    let loaded = load_upload(&body, &headers, &project)?;
    let catalog = RegistryCatalog::new(state.registry().clone());
    let problems = shoal_workflow::validate(&loaded, &catalog).await;
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ApiError::InvalidDefinition(text.join("\n")));
    }
    if q.dry_run {
        return Ok((
            StatusCode::OK,
            Json(Saved {
                definition_id: 0,
                name: loaded.workflow.name.clone(),
                version: 0,
                created: false,
                warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
            }),
        ));
    }
    let spec =
        serde_json::to_value(&loaded.workflow).map_err(|e| ApiError::Internal(e.to_string()))?;
    let saved = state
        .store()
        .save_definition(&project, &loaded.workflow.name, &spec, &body)
        .await?;
    // The file's `execution_type` is the definition's run mode (DolphinScheduler keeps
    // the two together).
    if let Some(mode) = &loaded.workflow.run_mode {
        state
            .store()
            .set_run_mode(saved.definition_id, mode)
            .await?;
    }
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Saved {
            definition_id: saved.definition_id,
            name: loaded.workflow.name.clone(),
            version: saved.version,
            created: saved.created,
            warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/definitions/{name}", tag = "definitions",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = DefinitionDetail), (status = 404, body = crate::ErrorBody)))]
pub async fn get_definition(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<DefinitionDetail>> {
    let d = definition_for(&state, &caller, &project, &name, Level::Read).await?;
    let versions = state.store().definition_versions(d.id).await?;
    let pins = state.store().plugin_pins(d.id).await?.into_iter().collect();
    let spec = state
        .store()
        .definition_by_id(d.id, d.current_version)
        .await?
        .map(|s| s.spec)
        .unwrap_or_default();
    Ok(Json(DefinitionDetail {
        definition: d.view(),
        versions,
        pins,
        spec,
    }))
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/definitions/{name}", tag = "definitions",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub async fn delete_definition(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let d = definition_for(&state, &caller, &project, &name, Level::Edit).await?;
    if state.store().delete_definition(d.id).await? {
        state.cron().wake();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Conflict(format!(
            "workflow `{name}` has unfinished instances; stop them or wait before deleting"
        )))
    }
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/definitions/{name}/versions/{version}", tag = "definitions",
    params(("project" = String, Path), ("name" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionView), (status = 404, body = crate::ErrorBody)))]
pub async fn get_version(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name, version)): Path<(String, String, i64)>,
) -> ApiResult<Json<VersionView>> {
    let d = definition_for(&state, &caller, &project, &name, Level::Read).await?;
    let v = state
        .store()
        .definition_by_id(d.id, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` has no version {version}")))?;
    Ok(Json(VersionView {
        version: v.version,
        spec: v.spec,
        source: v.source,
        created_at: v.created_at,
    }))
}

/// A unified diff between two versions' source texts.
#[utoipa::path(get, path = "/api/v1/projects/{project}/definitions/{name}/diff", tag = "definitions",
    params(("project" = String, Path), ("name" = String, Path), DiffQuery),
    responses((status = 200, body = String, content_type = "text/plain"), (status = 404, body = crate::ErrorBody),
              (status = 413, body = crate::ErrorBody)))]
pub async fn diff_versions(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<String> {
    let d = definition_for(&state, &caller, &project, &name, Level::Read).await?;
    let text = |v: shoal_store::StoredDefinition| {
        if v.source.trim().is_empty() {
            serde_json::to_string_pretty(&v.spec).unwrap_or_default() + "\n"
        } else {
            v.source
        }
    };
    let mut texts = Vec::new();
    for version in [q.from, q.to] {
        let v = state
            .store()
            .definition_by_id(d.id, version)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("workflow `{name}` has no version {version}"))
            })?;
        texts.push(text(v));
    }
    let [from_text, to_text]: [String; 2] = texts
        .try_into()
        .map_err(|_| ApiError::Internal("diff: expected two versions".into()))?;
    bounded_diff(&name, q.from, q.to, from_text, to_text, DIFF_LIMITS).await
}

/// How much work one diff request may cost. Versions stored by `shoal run` never passed
/// the API's body limit, and a line diff's worst case grows with the product of the two
/// texts' lengths, so both size and time are capped.
#[derive(Debug, Clone, Copy)]
struct DiffLimits {
    /// Bytes of the two texts together.
    max_bytes: usize,
    /// After this the diff algorithm settles for a coarser (still correct) answer.
    deadline: std::time::Duration,
    /// Backstop for the whole blocking job, rendering included.
    timeout: std::time::Duration,
}

const DIFF_LIMITS: DiffLimits = DiffLimits {
    max_bytes: 4 << 20,
    deadline: std::time::Duration::from_secs(2),
    timeout: std::time::Duration::from_secs(10),
};

/// A unified diff of `a` (version `from`) and `b` (version `to`), computed on a blocking
/// thread so a large diff never stalls the async workers that serve other requests.
async fn bounded_diff(
    name: &str,
    from: i64,
    to: i64,
    a: String,
    b: String,
    limits: DiffLimits,
) -> ApiResult<String> {
    let total = a.len().saturating_add(b.len());
    if total > limits.max_bytes {
        return Err(ApiError::TooLarge(format!(
            "versions {from} and {to} of `{name}` are {total} bytes together; diffs are limited to {} bytes",
            limits.max_bytes
        )));
    }
    let header = (format!("{name} v{from}"), format!("{name} v{to}"));
    let job = tokio::task::spawn_blocking(move || {
        let diff = similar::TextDiff::configure()
            .deadline(std::time::Instant::now() + limits.deadline)
            .diff_lines(&a, &b);
        diff.unified_diff().header(&header.0, &header.1).to_string()
    });
    match tokio::time::timeout(limits.timeout, job).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(ApiError::Internal(format!("diff task failed: {e}"))),
        Err(_) => Err(ApiError::TooLarge(format!(
            "the diff of versions {from} and {to} of `{name}` took longer than {} s; compare closer versions",
            limits.timeout.as_secs()
        ))),
    }
}

/// Put a definition online (it can run and be scheduled) or offline. Going offline
/// also takes its schedule offline.
#[utoipa::path(post, path = "/api/v1/projects/{project}/definitions/{name}/{release}", tag = "definitions",
    params(("project" = String, Path), ("name" = String, Path), ("release" = String, Path, description = "`online` or `offline`")),
    responses((status = 200, body = Definition), (status = 404, body = crate::ErrorBody)))]
pub async fn release(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name, release)): Path<(String, String, String)>,
) -> ApiResult<Json<Definition>> {
    let online = match release.as_str() {
        "online" => true,
        "offline" => false,
        other => {
            return Err(ApiError::NotFound(format!(
                "no action `{other}` on a definition; use online or offline"
            )));
        }
    };
    let d = definition_for(&state, &caller, &project, &name, Level::Edit).await?;
    state.store().set_released(d.id, online).await?;
    if !online {
        state.store().set_schedule_online(d.id, false, None).await?;
        state.cron().wake();
    }
    let d = state
        .store()
        .definition_row_by_id(d.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{name}` vanished")))?;
    Ok(Json(d.view()))
}

#[utoipa::path(put, path = "/api/v1/projects/{project}/definitions/{name}/run-mode", tag = "definitions",
    params(("project" = String, Path), ("name" = String, Path)), request_body = RunModeBody,
    responses((status = 204), (status = 400, body = crate::ErrorBody)))]
pub async fn set_run_mode(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Json(body): Json<RunModeBody>,
) -> ApiResult<StatusCode> {
    let d = definition_for(&state, &caller, &project, &name, Level::Edit).await?;
    let mode: RunMode = body
        .run_mode
        .parse()
        .map_err(|e: String| ApiError::BadRequest(format!("run_mode: {e}")))?;
    state.store().set_run_mode(d.id, mode.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn require_online(d: &DefinitionRow) -> ApiResult<()> {
    if d.released {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!(
            "workflow `{}` is offline; put it online first (POST .../definitions/{}/online)",
            d.name, d.name
        )))
    }
}

/// Start a run, subject to the definition's run mode. With an `Idempotency-Key` header
/// the same key returns the run it started (or queued) the first time, with 200, and
/// never starts a second one: the cluster proxy retries forwards with it.
#[utoipa::path(post, path = "/api/v1/projects/{project}/definitions/{name}/runs", tag = "runs",
    params(("project" = String, Path), ("name" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "1-200 visible ASCII characters; a retry with the same key never starts a second run")),
    request_body = RunBody,
    responses((status = 201, body = LaunchView), (status = 200, description = "the run this key started before", body = LaunchView),
              (status = 400, body = crate::ErrorBody),
              (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
              (status = 422, description = "the project may not run a task type this workflow uses", body = crate::ErrorBody)))]
pub async fn start_run(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<Json<RunBody>>,
) -> ApiResult<(StatusCode, Json<LaunchView>)> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let d = definition_for(&state, &caller, &project, &name, Level::Operate).await?;
    let key = idempotency_key(&headers)?;
    // Keyed runs take turns, so "is this key new?" and the start it decides cannot
    // interleave with a retry of the same key.
    let _turn = match &key {
        Some(_) => Some(state.inner.keyed_runs.lock().await),
        None => None,
    };
    if let Some(key) = &key
        && let Some((instance, queued)) = state.store().run_by_idempotency_key(d.id, key).await?
    {
        let outcome = if instance.is_some() {
            "started"
        } else {
            "queued"
        };
        return Ok((
            StatusCode::OK,
            Json(LaunchView {
                outcome: outcome.into(),
                instance,
                queued,
                cluster: None,
                run: None,
            }),
        ));
    }
    require_online(&d)?;
    let version = body.version.unwrap_or(d.current_version);
    let mut run = RunRequest::new(d.id, version);
    run.startup_params = body.params;
    run.schedule_time = match body.schedule_time {
        Some(ms) => Some(ms),
        None => body
            .business_date
            .as_deref()
            .map(|date| business_date_ms(date, body.timezone.as_deref(), "business_date"))
            .transpose()?,
    };
    if let Some(start) = body.start_tasks {
        run.start_tasks = start;
    }
    run.idempotency_key = key;
    // Parsed once per version by the master, which needs it to start the run anyway.
    let spec = match state.launcher().master().definition(d.id, version).await {
        Ok(found) => found.spec,
        Err(shoal_master::MasterError::NoSuchDefinition { .. }) => {
            return Err(ApiError::NotFound(format!(
                "workflow `{name}` has no version {version}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    check_process_allowed(&state, &project, &spec).await?;
    let launch = state.launcher().launch(&d, run).await?;
    Ok((StatusCode::CREATED, Json(launch.view())))
}

/// The `Idempotency-Key` header, checked: 1-200 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(shoal_api_types::IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest(
            "Idempotency-Key: expected 1-200 visible ASCII characters".into(),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// An uploaded definition (YAML, or JSON by content type) loaded and checked the way
/// every upload is: `$FILE{}`/`$ENV{}`/`$WORKFLOW{}` refused (the client resolves them),
/// problems named by line and field, and its `project` (if any) the one it was sent to.
/// The cluster proxy checks what is applied to it with the same function.
pub fn load_upload(
    body: &str,
    headers: &HeaderMap,
    project: &str,
) -> ApiResult<shoal_workflow::LoadedWorkflow> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let origin = FsPath::new(if is_json { "body.json" } else { "body.yaml" });
    if is_json && let Err(e) = serde_json::from_str::<serde_json::Value>(body) {
        return Err(ApiError::InvalidDefinition(format!(
            "{}:{}:{}: not valid JSON: {e}",
            origin.display(),
            e.line(),
            e.column()
        )));
    }
    // A user's upload never reads this host: `$FILE{}`/`$ENV{}`/`$WORKFLOW{}` are the
    // client's to resolve (`shoal apply`), so they are refused here, not resolved.
    let mut loaded = shoal_workflow::load_uploaded(body, origin).map_err(|e| match e {
        shoal_workflow::UploadError::References(problems) => {
            ApiError::BadRequest(problems.to_string())
        }
        shoal_workflow::UploadError::Invalid(problems) => {
            ApiError::InvalidDefinition(problems.to_string())
        }
    })?;
    match &loaded.workflow.project {
        Some(p) if p != project => {
            return Err(ApiError::InvalidDefinition(format!(
                "{}: workflow.project: the file says `{p}` but it was sent to project `{project}`",
                origin.display()
            )));
        }
        _ => loaded.workflow.project = Some(project.to_owned()),
    }
    Ok(loaded)
}

/// Refuse a run whose workflow uses a task type holding the `process` capability in a
/// project an admin has not allowed to run processes: a validation error naming the
/// task, before anything is queued (the engine refuses such tasks at dispatch too).
async fn check_process_allowed(
    state: &ApiState,
    project: &str,
    workflow: &shoal_workflow::WorkflowDefinition,
) -> ApiResult<()> {
    // The registry answers from memory; the project is read only when a task needs it.
    let mut needs = None;
    for task in &workflow.tasks {
        if let Ok(plugin) = state.registry().resolve(&task.task_type, None).await
            && plugin.grant.process
        {
            needs = Some((task, plugin));
            break;
        }
    }
    let Some((task, plugin)) = needs else {
        return Ok(());
    };
    let allowed = state
        .store()
        .project(project)
        .await?
        .is_some_and(|p| p.allow_process != 0);
    if allowed {
        return Ok(());
    }
    Err(ApiError::InvalidDefinition(format!(
        "project `{project}` may not run task types that start processes: task `{}` is `{}` (plugin `{}` holds the `process` capability); an admin allows it with `shoal projects allow-process {project}`",
        task.name, task.task_type, plugin.manifest.id
    )))
}

/// Queue one run per business date, `parallelism` at a time, oldest first.
#[utoipa::path(post, path = "/api/v1/projects/{project}/definitions/{name}/backfill", tag = "runs",
    params(("project" = String, Path), ("name" = String, Path), DryRunQuery), request_body = BackfillBody,
    responses((status = 201, body = BackfillQueued), (status = 200, description = "dry run: the dates it would run", body = BackfillQueued), (status = 400, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
              (status = 422, description = "the project may not run a task type this workflow uses", body = crate::ErrorBody)))]
pub async fn backfill(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<DryRunQuery>,
    Json(body): Json<BackfillBody>,
) -> ApiResult<(StatusCode, Json<BackfillQueued>)> {
    let d = definition_for(&state, &caller, &project, &name, Level::Operate).await?;
    require_online(&d)?;
    let dates: Vec<String> = match (&body.from, &body.to, body.dates.is_empty()) {
        (Some(from), Some(to), true) => {
            let parse = |s: &str, field: &str| {
                chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|e| {
                    ApiError::BadRequest(format!("{field}: `{s}` is not a YYYY-MM-DD date: {e}"))
                })
            };
            shoal_schedule::backfill_dates(
                parse(from, "from")?,
                parse(to, "to")?,
                MAX_BACKFILL_DAYS,
            )
            .map_err(ApiError::BadRequest)?
            .into_iter()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect()
        }
        (None, None, false) => body.dates.clone(),
        _ => {
            return Err(ApiError::BadRequest(
                "give either `from` and `to`, or `dates`".into(),
            ));
        }
    };
    if dates.len() > MAX_BACKFILL_DAYS {
        return Err(ApiError::BadRequest(format!(
            "dates: at most {MAX_BACKFILL_DAYS} per backfill"
        )));
    }
    let parallelism = body.parallelism.unwrap_or(1);
    if !(1..=64).contains(&parallelism) {
        return Err(ApiError::BadRequest("parallelism: must be 1 to 64".into()));
    }
    let mut times = Vec::with_capacity(dates.len());
    for (i, date) in dates.iter().enumerate() {
        times.push(business_date_ms(
            date,
            body.timezone.as_deref(),
            &format!("dates[{i}]"),
        )?);
    }
    let spec = state
        .launcher()
        .master()
        .definition(d.id, d.current_version)
        .await?
        .spec;
    check_process_allowed(&state, &project, &spec).await?;
    if q.dry_run {
        return Ok((
            StatusCode::OK,
            Json(BackfillQueued {
                group: String::new(),
                dates,
                queued: Vec::new(),
            }),
        ));
    }
    let (group, queued) = state
        .launcher()
        .backfill(&d, d.current_version, &times, &body.params, parallelism)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(BackfillQueued {
            group,
            dates,
            queued,
        }),
    ))
}

/// Pin this workflow's tasks of one plugin to a version (null unpins).
#[utoipa::path(put, path = "/api/v1/projects/{project}/definitions/{name}/pins/{plugin}", tag = "plugins",
    params(("project" = String, Path), ("name" = String, Path), ("plugin" = String, Path)), request_body = PinBody,
    responses((status = 204), (status = 400, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub async fn pin_plugin(
    State(state): State<ApiState>,
    caller: Caller,
    Path((project, name, plugin)): Path<(String, String, String)>,
    Json(body): Json<PinBody>,
) -> ApiResult<StatusCode> {
    let d = definition_for(&state, &caller, &project, &name, Level::Edit).await?;
    if let Some(v) = &body.version {
        let version: semver::Version = v
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("version: `{v}`: {e}")))?;
        state
            .registry()
            .resolve(&plugin, Some(&version))
            .await
            .map_err(|e| ApiError::BadRequest(format!("version: {e}")))?;
    }
    state
        .store()
        .pin_plugin(d.id, &plugin, body.version.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod diff_tests {
    use super::*;

    #[tokio::test]
    async fn a_diff_over_the_size_cap_is_refused() {
        let limits = DiffLimits {
            max_bytes: 100,
            ..DIFF_LIMITS
        };
        let e = bounded_diff("wf", 1, 2, "a\n".repeat(30), "b\n".repeat(30), limits)
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::TooLarge(_)), "{e:?}");
        assert!(e.to_string().contains("120 bytes together"), "{e}");
    }

    #[tokio::test]
    async fn a_worst_case_diff_ends_at_its_deadline() {
        // Two long texts with no line in common beyond a shared skeleton make the line
        // diff search its whole edit space; the deadline cuts that short.
        let a: String = (0..60_000).map(|i| format!("{}\n", i % 7)).collect();
        let b: String = (0..60_000).map(|i| format!("{}\n", (i * 3) % 11)).collect();
        let limits = DiffLimits {
            deadline: std::time::Duration::from_millis(200),
            ..DIFF_LIMITS
        };
        let started = std::time::Instant::now();
        let text = bounded_diff("wf", 1, 2, a, b, limits).await.unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            text.starts_with("--- wf v1\n+++ wf v2\n"),
            "{}",
            &text[..80]
        );
    }

    #[tokio::test]
    async fn a_small_diff_is_exact() {
        let text = bounded_diff("wf", 1, 2, "a\nb\n".into(), "a\nc\n".into(), DIFF_LIMITS)
            .await
            .unwrap();
        assert!(text.contains("-b\n+c\n"), "{text}");
    }
}
