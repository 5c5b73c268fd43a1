//! Definitions, runs, backfills and global schedules at the proxy, and the project
//! settings (secrets, datasources, alert channels, run modes, pins) it writes to every
//! cluster.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde::Deserialize;
use shoal_api::ApiError;
use shoal_api::auth::{Caller, Level};
use shoal_api_types::definitions::{
    BackfillBody, BackfillQueued, Definition, DefinitionDetail, LaunchView, RunBody, Saved,
};
use shoal_api_types::schedules::{ScheduleBody, ScheduleView};

use super::ApiResult;
use crate::Proxy;
use crate::outbox::{Envelope, seg};
use crate::routing::{Needs, candidates};
use crate::upstream::Body;

fn definition_view(d: shoal_store::DefinitionRow, cluster: Option<String>) -> Definition {
    Definition {
        id: d.id,
        project: d.project,
        name: d.name,
        current_version: d.current_version,
        online: d.released,
        run_mode: d.run_mode,
        created_at: d.created_at,
        updated_at: d.updated_at,
        cluster,
    }
}

async fn require(p: &Proxy, caller: &Caller, project: &str, level: Level) -> ApiResult<()> {
    caller.require_in(p.store().store(), project, level).await
}

/// The proxy's definitions of a project, and those only clusters hold; `cluster` lists
/// the clusters holding each.
pub(super) async fn list_definitions(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Definition>>> {
    require(&p, &caller, &project, Level::Read).await?;
    let (answers, _missing) = p
        .fan_out::<Vec<Definition>>(&format!("/projects/{}/definitions", seg(&project)))
        .await;
    let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut theirs: BTreeMap<String, Definition> = BTreeMap::new();
    for (c, defs) in answers {
        for d in defs {
            holders
                .entry(d.name.clone())
                .or_default()
                .push(c.name().to_owned());
            theirs.entry(d.name.clone()).or_insert(d);
        }
    }
    let mut out: BTreeMap<String, Definition> = BTreeMap::new();
    for d in p.store().store().definitions(&project).await? {
        out.insert(d.name.clone(), definition_view(d, None));
    }
    for (name, d) in theirs {
        out.entry(name).or_insert(d);
    }
    Ok(Json(
        out.into_values()
            .map(|mut d| {
                d.cluster = holders.get(&d.name).map(|h| h.join(","));
                d
            })
            .collect(),
    ))
}

/// Apply a definition at the proxy: checked, kept as the proxy's version, and copied to
/// every cluster its route can pick. Each copy's outcome is in `warnings`.
pub(super) async fn apply(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
    Query(q): Query<shoal_api_types::definitions::DryRunQuery>,
    headers: HeaderMap,
    body: String,
) -> ApiResult<(StatusCode, Json<Saved>)> {
    require(&p, &caller, &project, Level::Edit).await?;
    let store = p.store().store();
    if store.project(&project).await?.is_none() {
        return Err(ApiError::NotFound(format!("no project `{project}`")));
    }
    // Checked as a cluster checks an upload; each copy is checked again by its cluster
    // (with its own plugins' parameter checks).
    let loaded = shoal_api::routes::load_upload(&body, &headers, &project)?;
    let name = loaded.workflow.name.clone();
    if q.dry_run {
        return Ok((
            StatusCode::OK,
            Json(Saved {
                definition_id: 0,
                name,
                version: 0,
                created: false,
                warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
            }),
        ));
    }
    let spec =
        serde_json::to_value(&loaded.workflow).map_err(|e| ApiError::Internal(e.to_string()))?;
    let saved = store.save_definition(&project, &name, &spec, &body).await?;
    if let Some(mode) = &loaded.workflow.run_mode {
        store.set_run_mode(saved.definition_id, mode).await?;
    }
    p.audit(
        &caller.name,
        &format!("POST /projects/{project}/definitions ({name})"),
        None,
        201,
        &format!("version {}", saved.version),
    )
    .await;
    let mut warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let pins = store
        .plugin_pins(saved.definition_id)
        .await?
        .into_iter()
        .collect();
    let needs = Needs::of_spec(&spec, pins);
    let reach = p.reach(&project, &name, &needs);
    if reach.is_empty() {
        warnings.push("not copied to any cluster: none can take it now (see GET /api/v1/clusters); the sync pass copies it when one can".into());
    }
    let copies = futures_util::future::join_all(
        reach
            .iter()
            .map(|c| p.copy_as(c, &project, &name, &caller.name)),
    )
    .await;
    for (c, r) in reach.iter().zip(copies) {
        warnings.push(match r {
            Ok(Some(s)) => format!("copied to cluster {} (its version {})", c.name(), s.version),
            Ok(None) => format!(
                "not copied to cluster {}: the proxy's copy vanished",
                c.name()
            ),
            Err(e) => format!("not copied to cluster {}: {e}", c.name()),
        });
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
            name,
            version: saved.version,
            created: saved.created,
            warnings,
        }),
    ))
}

pub(super) async fn get_definition(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<DefinitionDetail>> {
    require(&p, &caller, &project, Level::Read).await?;
    let store = p.store().store();
    if let Some(d) = store.definition_row(&project, &name).await?
        && let Some((spec, pins)) = p.own_definition(&project, &name).await?
    {
        return Ok(Json(DefinitionDetail {
            versions: (1..=d.current_version).collect(),
            definition: definition_view(d, None),
            pins,
            spec,
        }));
    }
    let path = format!("/projects/{}/definitions/{}", seg(&project), seg(&name));
    let (answers, missing) = p.fan_out::<DefinitionDetail>(&path).await;
    match answers.into_iter().next() {
        Some((c, mut d)) => {
            d.definition.cluster = Some(c.name().to_owned());
            Ok(Json(d))
        }
        None => Err(ApiError::NotFound(format!(
            "no workflow `{name}` in project `{project}` at the proxy or on a cluster{}",
            if missing.is_empty() {
                String::new()
            } else {
                format!(
                    " (not asked: {})",
                    missing
                        .iter()
                        .map(|m| m.cluster.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ))),
    }
}

/// One version of a definition the proxy holds, with the text it was applied from; a
/// definition only clusters hold comes from the first that answers.
pub(super) async fn get_version(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name, version)): Path<(String, String, i64)>,
) -> ApiResult<Json<shoal_api_types::definitions::VersionView>> {
    require(&p, &caller, &project, Level::Read).await?;
    let store = p.store().store();
    if let Some(d) = store.definition_row(&project, &name).await? {
        let v = store
            .definition_by_id(d.id, version)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("workflow `{name}` has no version {version}"))
            })?;
        return Ok(Json(shoal_api_types::definitions::VersionView {
            version: v.version,
            spec: v.spec,
            source: v.source,
            created_at: v.created_at,
        }));
    }
    let path = format!(
        "/projects/{}/definitions/{}/versions/{version}",
        seg(&project),
        seg(&name)
    );
    let (answers, _) = p
        .fan_out::<shoal_api_types::definitions::VersionView>(&path)
        .await;
    answers
        .into_iter()
        .next()
        .map(|(_, v)| Json(v))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "workflow `{name}` of project `{project}` has no version {version}"
            ))
        })
}

#[derive(Debug, Deserialize)]
pub(super) struct RunQuery {
    /// Run on this cluster (it must be eligible).
    cluster: Option<String>,
}

/// Start a run through the outbox: 201 when a cluster took it before the answer, 202
/// (`outcome: accepted`, `run`: its key) when it is stored and still being forwarded.
pub(super) async fn start_run(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<RunQuery>,
    headers: HeaderMap,
    body: Option<Json<serde_json::Value>>,
) -> ApiResult<(StatusCode, Json<LaunchView>)> {
    require(&p, &caller, &project, Level::Operate).await?;
    let run = body
        .map(|Json(v)| v)
        .unwrap_or_else(|| serde_json::json!({}));
    // Refuse a malformed body here, not after it sat in the outbox.
    serde_json::from_value::<RunBody>(run.clone())
        .map_err(|e| ApiError::BadRequest(format!("run body: {e}")))?;
    let needs = p.needs(&project, &name).await.map_err(ApiError::NotFound)?;
    if let Some(c) = &q.cluster {
        let cluster = p
            .clusters()
            .get(c)
            .ok_or_else(|| ApiError::BadRequest(format!("cluster: no cluster `{c}`")))?;
        // Unreachable is a wait; lacking a task type is a refusal.
        if let Some(why) = needs.missing_on(cluster) {
            return Err(ApiError::BadRequest(format!(
                "cluster: `{c}` cannot run `{name}`: {why}"
            )));
        }
    }
    let client_key = headers
        .get(shoal_api_types::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 150 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let (status, view) = p
        .accept_run(
            &caller,
            &project,
            &name,
            Envelope {
                cluster: q.cluster,
                run,
            },
            client_key.as_deref(),
        )
        .await?;
    Ok((status, Json(view)))
}

/// A backfill goes to one cluster, the first the route picks now.
pub(super) async fn backfill(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<shoal_api_types::definitions::DryRunQuery>,
    Json(body): Json<BackfillBody>,
) -> ApiResult<(StatusCode, Json<BackfillQueued>)> {
    require(&p, &caller, &project, Level::Operate).await?;
    let needs = p.needs(&project, &name).await.map_err(ApiError::NotFound)?;
    let route = p.route(&project, &name);
    let key = crate::outbox::new_key();
    let target = candidates(p.clusters(), route.as_ref(), &needs, &key, None, &[])
        .map_err(ApiError::Unavailable)?
        .remove(0);
    let path = format!(
        "/projects/{}/definitions/{}/backfill{}",
        seg(&project),
        seg(&name),
        if q.dry_run { "?dry_run=true" } else { "" }
    );
    let r = p
        .call::<BackfillQueued>(
            &target,
            Method::POST,
            &path,
            Body::Json(serde_json::to_value(&body).unwrap_or_default()),
        )
        .await;
    let (status, result) = match &r {
        Ok((s, q)) => (
            i64::from(s.as_u16()),
            format!("{} dates queued", q.queued.len()),
        ),
        Err(e) => (i64::from(e.status()), e.to_string()),
    };
    p.audit(
        &caller.name,
        &format!("POST {path}"),
        Some(target.name()),
        status,
        &result,
    )
    .await;
    let (s, q) = r?;
    Ok((
        StatusCode::from_u16(s.as_u16()).unwrap_or(StatusCode::CREATED),
        Json(q),
    ))
}

/// Online or offline, here and on every cluster that holds it.
pub(super) async fn release(
    State(p): State<Proxy>,
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
    require(&p, &caller, &project, Level::Edit).await?;
    let store = p.store().store();
    let path = format!(
        "/projects/{}/definitions/{}/{release}",
        seg(&project),
        seg(&name)
    );
    let own = store.definition_row(&project, &name).await?;
    if let Some(d) = &own {
        store.set_released(d.id, online).await?;
        p.audit(&caller.name, &format!("POST {path}"), None, 200, "proxy")
            .await;
    }
    let failures = p
        .broadcast(&caller, Method::POST, &path, Body::None, &[404])
        .await;
    if !failures.is_empty() {
        return Err(ApiError::Upstream {
            status: 502,
            code: "partial".into(),
            message: format!(
                "not on every cluster (the sync pass repairs it): {}",
                failures.join("; ")
            ),
        });
    }
    match store.definition_row(&project, &name).await? {
        Some(d) => Ok(Json(definition_view(d, None))),
        None => {
            let (answers, _) = p
                .fan_out::<DefinitionDetail>(&format!(
                    "/projects/{}/definitions/{}",
                    seg(&project),
                    seg(&name)
                ))
                .await;
            answers
                .into_iter()
                .next()
                .map(|(_, d)| Json(d.definition))
                .ok_or_else(|| {
                    ApiError::NotFound(format!("no workflow `{name}` in project `{project}`"))
                })
        }
    }
}

pub(super) async fn get_schedule(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<ScheduleView>> {
    require(&p, &caller, &project, Level::Read).await?;
    let row =
        p.store().schedule(&project, &name).await?.ok_or_else(|| {
            ApiError::NotFound(format!("workflow `{name}` has no global schedule"))
        })?;
    Ok(Json(crate::schedules::view(&row)))
}

pub(super) async fn put_schedule(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
    Json(body): Json<ScheduleBody>,
) -> ApiResult<Json<ScheduleView>> {
    require(&p, &caller, &project, Level::Edit).await?;
    p.needs(&project, &name).await.map_err(ApiError::NotFound)?;
    let view = p.put_schedule(&project, &name, &body).await?;
    p.audit(
        &caller.name,
        &format!("PUT /projects/{project}/definitions/{name}/schedule"),
        None,
        200,
        &body.cron,
    )
    .await;
    Ok(Json(view))
}

pub(super) async fn delete_schedule(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require(&p, &caller, &project, Level::Edit).await?;
    if !p.store().delete_schedule(&project, &name).await? {
        return Err(ApiError::NotFound(format!(
            "workflow `{name}` has no global schedule"
        )));
    }
    p.audit(
        &caller.name,
        &format!("DELETE /projects/{project}/definitions/{name}/schedule"),
        None,
        204,
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn switch_schedule(
    State(p): State<Proxy>,
    caller: Caller,
    Path((project, name, switch)): Path<(String, String, String)>,
) -> ApiResult<Json<ScheduleView>> {
    let online = match switch.as_str() {
        "online" => true,
        "offline" => false,
        other => {
            return Err(ApiError::NotFound(format!(
                "no action `{other}` on a schedule; use online or offline"
            )));
        }
    };
    require(&p, &caller, &project, Level::Edit).await?;
    let view = p.switch_schedule(&project, &name, online).await?;
    p.audit(
        &caller.name,
        &format!("POST /projects/{project}/definitions/{name}/schedule/{switch}"),
        None,
        200,
        "",
    )
    .await;
    Ok(Json(view))
}

pub(super) async fn list_schedules(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<ScheduleView>>> {
    require(&p, &caller, &project, Level::Read).await?;
    // The proxy's global schedules (no `cluster`), then each cluster's own.
    let mut out: Vec<ScheduleView> = p
        .store()
        .schedules(Some(&project))
        .await?
        .iter()
        .map(crate::schedules::view)
        .collect();
    let (answers, _missing) = p
        .fan_out::<Vec<ScheduleView>>(&format!("/projects/{}/schedules", seg(&project)))
        .await;
    for (c, list) in answers {
        out.extend(list.into_iter().map(|mut v| {
            v.cluster = Some(c.name().to_owned());
            v
        }));
    }
    Ok(Json(out))
}

/// A project setting (secret, datasource, alert channel, run mode, pin) written to
/// every cluster, since a run may land on any of them. Answers with the first
/// cluster's answer when all took it.
pub(super) async fn broadcast_edit(
    State(p): State<Proxy>,
    caller: Caller,
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let project = params
        .get("project")
        .ok_or_else(|| ApiError::BadRequest("no project in the path".into()))?;
    require(&p, &caller, project, Level::Edit).await?;
    let path = uri
        .path()
        .strip_prefix("/api/v1")
        .unwrap_or(uri.path())
        .to_owned();
    let method = Method::from_bytes(method.as_str().as_bytes())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let body = if text.is_empty() {
        Body::None
    } else {
        Body::Text(text, content_type)
    };
    // What is audited is the path and the cluster's answer, never the body (a
    // secret's value, a datasource's password).
    let mut first: Option<(u16, Bytes)> = None;
    let mut failures = Vec::new();
    let action = format!("{method} {path}");
    for c in p.clusters().all() {
        match p.send(c, method.clone(), &path, body.clone()).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                p.audit(
                    &caller.name,
                    &action,
                    Some(c.name()),
                    i64::from(status),
                    "ok",
                )
                .await;
                let bytes = crate::upstream::read_bounded(resp, crate::upstream::MAX_ANSWER)
                    .await
                    .map_err(|e| ApiError::Upstream {
                        status: 502,
                        code: "upstream".into(),
                        message: e,
                    })?;
                first.get_or_insert((status, Bytes::from(bytes)));
            }
            Err(e) => {
                p.audit(
                    &caller.name,
                    &action,
                    Some(c.name()),
                    i64::from(e.status()),
                    &e.to_string(),
                )
                .await;
                failures.push(e);
            }
        }
    }
    if let Some(e) = failures.first()
        && first.is_none()
    {
        return Err(e.clone().into());
    }
    if !failures.is_empty() {
        let list: Vec<String> = failures.iter().map(ToString::to_string).collect();
        return Err(ApiError::Upstream {
            status: 502,
            code: "partial".into(),
            message: format!("written to some clusters only; not: {}", list.join("; ")),
        });
    }
    let (status, bytes) = first.unwrap_or((204, Bytes::new()));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok((status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
