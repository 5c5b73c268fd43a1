//! One view over every cluster: instances (listed across clusters, or routed back to
//! the cluster their id names), task instances, logs, external jobs and nodes.
//!
//! Ids at the proxy are cluster-qualified (`clusters::qualify`). A cluster that does
//! not answer leaves a listing partial (`missing` names it), and the runs this proxy
//! placed there are listed as `unreachable`, not dropped.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde::Deserialize;
use shoal_api::ApiError;
use shoal_api::auth::{Caller, Level};
use shoal_api_types::clusters::ClusterHealth;
use shoal_api_types::instances::{
    Instance, InstanceDetail, InstancePage, InstanceQuery, OperationBody, TaskInstance,
    TaskInstanceDetail,
};
use shoal_api_types::jobs::{ActionBody, Job};
use shoal_api_types::system::NodeList;

use super::ApiResult;
use crate::Proxy;
use crate::clusters::{Cluster, qualify};
use crate::outbox::seg;
use crate::store::RunRow;
use crate::upstream::Body;

/// The deepest page a listing across clusters serves (each cluster is asked for
/// `offset + limit` rows, at most this many).
const WINDOW: i64 = 1000;

/// The state the proxy shows for an instance on a cluster it cannot reach.
const UNREACHABLE: &str = "unreachable";

fn qualify_instance(c: &Cluster, mut i: Instance) -> Instance {
    i.id = qualify(c.number, i.id);
    i.parent_task_instance_id = i.parent_task_instance_id.map(|t| qualify(c.number, t));
    i.cluster = Some(c.name().to_owned());
    i
}

fn qualify_task(c: &Cluster, mut t: TaskInstance) -> TaskInstance {
    t.id = qualify(c.number, t.id);
    t
}

/// What the proxy knows of a run it placed on a cluster it cannot reach now.
fn unreachable_instance(c: &Cluster, r: &RunRow) -> Option<Instance> {
    Some(Instance {
        id: qualify(c.number, r.remote_instance?),
        definition_id: 0,
        version: 0,
        name: r.workflow.clone(),
        state: UNREACHABLE.into(),
        schedule_time: r.created_at,
        startup_params: serde_json::json!({}),
        parent_task_instance_id: None,
        created_at: r.created_at,
        started_at: None,
        ended_at: None,
        cluster: Some(c.name().to_owned()),
    })
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub(super) async fn list_instances(
    State(p): State<Proxy>,
    caller: Caller,
    Query(q): Query<InstanceQuery>,
) -> ApiResult<Json<InstancePage>> {
    match &q.project {
        Some(project) => {
            caller
                .require_in(p.store().store(), project, Level::Read)
                .await?
        }
        None => {
            if !caller.admin {
                return Err(ApiError::BadRequest(
                    "project: required (only admins list every project's instances)".into(),
                ));
            }
        }
    }
    if let Some(name) = &q.cluster
        && p.clusters().get(name).is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "cluster: no cluster `{name}`"
        )));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0).max(0);
    // Instance ids are each cluster's own: paging by id works within one cluster only.
    if q.before.is_some() && q.cluster.is_none() {
        return Err(ApiError::BadRequest(
            "before: instance ids are per cluster; name one with `cluster` to page by id".into(),
        ));
    }
    if q.before.is_some() && offset > 0 {
        return Err(ApiError::BadRequest(
            "before: pages by id, so it cannot be combined with offset".into(),
        ));
    }
    if offset + limit > WINDOW {
        return Err(ApiError::BadRequest(format!(
            "offset: the proxy pages through the newest {WINDOW} instances across clusters; narrow with from/to, state or workflow to go further back"
        )));
    }
    let path = format!(
        "/instances{}",
        query_string(&[
            ("project", q.project.clone()),
            ("workflow", q.workflow.clone()),
            ("state", q.state.clone()),
            ("from", q.from.map(|v| v.to_string())),
            ("to", q.to.map(|v| v.to_string())),
            ("limit", Some((offset + limit).to_string())),
            ("before", q.before.map(|v| v.to_string())),
        ])
    );
    let (answers, missing) = p
        .fan_out_to::<InstancePage>(&path, q.cluster.as_deref())
        .await;
    let mut total = 0;
    let mut capped = false;
    let mut items = Vec::new();
    // Only one cluster answers a keyset page (`before` needs `cluster`).
    let mut next_before = None;
    for (c, page) in answers {
        total += page.total;
        capped |= page.total_capped;
        next_before = next_before.or(page.next_before.filter(|_| q.before.is_some()));
        items.extend(page.items.into_iter().map(|i| qualify_instance(&c, i)));
    }
    let wants_unreachable = q
        .state
        .as_deref()
        .is_none_or(|s| s.split(',').any(|x| x.trim() == UNREACHABLE));
    if wants_unreachable {
        for m in &missing {
            let Some(c) = p.clusters().get(&m.cluster) else {
                continue;
            };
            for r in p
                .store()
                .placed_on(c.name(), q.project.as_deref(), offset + limit)
                .await?
            {
                if q.workflow.as_deref().is_some_and(|w| w != r.workflow) {
                    continue;
                }
                if let Some(i) = unreachable_instance(c, &r) {
                    total += 1;
                    items.push(i);
                }
            }
        }
    }
    items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let items = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    Ok(Json(InstancePage {
        next_before,
        total,
        total_capped: capped,
        limit,
        offset,
        items,
        missing,
    }))
}

/// The instance detail from its cluster; the caller must hold `level` on its project
/// (an instance they cannot see answers 404, as on a cluster).
async fn instance_detail(
    p: &Proxy,
    caller: &Caller,
    id: i64,
    level: Level,
) -> ApiResult<(std::sync::Arc<Cluster>, i64, InstanceDetail)> {
    let (c, remote) = p.locate(id, "workflow instance")?;
    let missing = || ApiError::NotFound(format!("no workflow instance {id}"));
    let detail = match p
        .call::<InstanceDetail>(&c, Method::GET, &format!("/instances/{remote}"), Body::None)
        .await
    {
        Ok((_, d)) => d,
        Err(crate::upstream::CallError::Answer { status: 404, .. }) => return Err(missing()),
        Err(e) => {
            // Unreachable: what the proxy placed there is shown as unreachable, not lost.
            if let Some(r) = p.store().run_by_instance(c.name(), remote).await?
                && let Some(instance) = unreachable_instance(&c, &r)
            {
                caller
                    .require_in(p.store().store(), &r.project, level)
                    .await
                    .map_err(|_| missing())?;
                if level == Level::Read {
                    return Ok((
                        c.clone(),
                        remote,
                        InstanceDetail {
                            project: r.project,
                            instance,
                            tasks: Vec::new(),
                        },
                    ));
                }
            }
            return Err(e.into());
        }
    };
    match caller
        .require_in(p.store().store(), &detail.project, level)
        .await
    {
        Ok(()) => Ok((c, remote, detail)),
        Err(ApiError::Forbidden(m)) if caller_can_read(p, caller, &detail.project).await => {
            Err(ApiError::Forbidden(m))
        }
        Err(_) => Err(missing()),
    }
}

async fn caller_can_read(p: &Proxy, caller: &Caller, project: &str) -> bool {
    caller
        .require_in(p.store().store(), project, Level::Read)
        .await
        .is_ok()
}

pub(super) async fn get_instance(
    State(p): State<Proxy>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<InstanceDetail>> {
    let (c, _, mut d) = instance_detail(&p, &caller, id, Level::Read).await?;
    if d.instance.cluster.is_none() {
        d.instance = qualify_instance(&c, d.instance);
        d.tasks = d.tasks.into_iter().map(|t| qualify_task(&c, t)).collect();
    }
    Ok(Json(d))
}

/// Forward a write to one cluster, audit it, and answer with the cluster's answer.
async fn forward_write(
    p: &Proxy,
    caller: &Caller,
    c: &Cluster,
    path: &str,
    body: serde_json::Value,
) -> ApiResult<Response> {
    let resp = p
        .send_audited(&caller.name, c, Method::POST, path, Body::Json(body), "ok")
        .await?;
    let status = resp.status().as_u16();
    let bytes = crate::upstream::read_bounded(resp, crate::upstream::MAX_ANSWER)
        .await
        .map_err(|e| ApiError::Upstream {
            status: 502,
            code: "upstream".into(),
            message: e,
        })?;
    Ok((
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response())
}

pub(super) async fn operate(
    State(p): State<Proxy>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<OperationBody>,
) -> ApiResult<Response> {
    let (c, remote, _) = instance_detail(&p, &caller, id, Level::Operate).await?;
    forward_write(
        &p,
        &caller,
        &c,
        &format!("/instances/{remote}/operations"),
        serde_json::to_value(&body).unwrap_or_default(),
    )
    .await
}

/// A task instance from its cluster, after checking the caller's level on its project.
async fn task_detail(
    p: &Proxy,
    caller: &Caller,
    id: i64,
    level: Level,
) -> ApiResult<(std::sync::Arc<Cluster>, i64, TaskInstanceDetail)> {
    let (c, remote) = p.locate(id, "task instance")?;
    let missing = || ApiError::NotFound(format!("no task instance {id}"));
    let (_, d) = p
        .call::<TaskInstanceDetail>(&c, Method::GET, &format!("/tasks/{remote}"), Body::None)
        .await
        .map_err(|e| match e {
            crate::upstream::CallError::Answer { status: 404, .. } => missing(),
            other => other.into(),
        })?;
    match caller
        .require_in(p.store().store(), &d.project, level)
        .await
    {
        Ok(()) => Ok((c, remote, d)),
        Err(ApiError::Forbidden(m)) if caller_can_read(p, caller, &d.project).await => {
            Err(ApiError::Forbidden(m))
        }
        Err(_) => Err(missing()),
    }
}

pub(super) async fn get_task(
    State(p): State<Proxy>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<TaskInstanceDetail>> {
    let (c, _, mut d) = task_detail(&p, &caller, id, Level::Read).await?;
    d.workflow_instance_id = qualify(c.number, d.workflow_instance_id);
    d.task = qualify_task(&c, d.task);
    Ok(Json(d))
}

/// A task's log from its cluster, streamed through (a followed log streams until the
/// task ends, so its call has no short timeout).
pub(super) async fn task_log(
    State(p): State<Proxy>,
    caller: Caller,
    Path(id): Path<i64>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let (c, remote, _) = task_detail(&p, &caller, id, Level::Read).await?;
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let follow = query.contains("follow=true");
    let resp = p
        .send_with(
            &c,
            Method::GET,
            &format!("/tasks/{remote}/log{query}"),
            Body::None,
            |r| {
                if follow {
                    r.timeout(std::time::Duration::from_secs(24 * 3600))
                } else {
                    r
                }
            },
        )
        .await?;
    let mut out = Response::builder().status(resp.status().as_u16());
    for name in [
        header::CONTENT_TYPE.as_str(),
        "x-log-next-offset",
        "x-log-eof",
    ] {
        if let Some(v) = resp.headers().get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    out.body(axum::body::Body::from_stream(resp.bytes_stream()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

pub(super) async fn task_action(
    State(p): State<Proxy>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<ActionBody>,
) -> ApiResult<Response> {
    let (c, remote, _) = task_detail(&p, &caller, id, Level::Operate).await?;
    forward_write(
        &p,
        &caller,
        &c,
        &format!("/tasks/{remote}/actions"),
        serde_json::to_value(&body).unwrap_or_default(),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct JobQuery {
    project: String,
    limit: Option<i64>,
}

pub(super) async fn jobs(
    State(p): State<Proxy>,
    caller: Caller,
    Query(q): Query<JobQuery>,
) -> ApiResult<Json<Vec<Job>>> {
    caller
        .require_in(p.store().store(), &q.project, Level::Read)
        .await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let path = format!("/jobs?project={}&limit={limit}", seg(&q.project));
    let (answers, _) = p.fan_out::<Vec<Job>>(&path).await;
    let mut jobs: Vec<Job> = answers
        .into_iter()
        .flat_map(|(c, list)| {
            list.into_iter().map(move |mut j| {
                j.task_instance_id = qualify(c.number, j.task_instance_id);
                j.workflow_instance_id = qualify(c.number, j.workflow_instance_id);
                j
            })
        })
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.started_at));
    jobs.truncate(limit as usize);
    Ok(Json(jobs))
}

/// Every cluster's nodes, each with its cluster; an unreachable cluster's nodes are
/// not listed (its state is in `/clusters`).
pub(super) async fn nodes(State(p): State<Proxy>, _caller: Caller) -> ApiResult<Json<NodeList>> {
    let (answers, _) = p.fan_out::<NodeList>("/nodes").await;
    let mut by_cluster: BTreeMap<String, NodeList> = BTreeMap::new();
    for (c, list) in answers {
        by_cluster.insert(c.name().to_owned(), list);
    }
    let mut nodes = Vec::new();
    for c in p.clusters().all() {
        let Some(list) = by_cluster.remove(c.name()) else {
            continue;
        };
        // An all-in-one server has no registry rows: it is its own single node.
        if list.nodes.is_empty() && c.health() != ClusterHealth::Unreachable {
            let s = c.status().unwrap_or_default();
            nodes.push(shoal_api_types::system::NodeView {
                id: c.name().to_owned(),
                role: "server".into(),
                address: c.config.url.clone(),
                groups: Vec::new(),
                slots: s.slots,
                slots_used: s.slots - s.slots_free,
                slots_free: s.slots_free,
                shared_slots: 0,
                exclusive_slots: 0,
                cpu_load: 0.0,
                memory_used: 0.0,
                heartbeat_age_ms: c
                    .view()
                    .last_seen_at
                    .map(|t| shoal_store::now_ms() - t)
                    .unwrap_or(-1),
                generation: 0,
                state: "alive".into(),
                failover_pending: false,
                cluster: Some(c.name().to_owned()),
            });
        }
        for mut n in list.nodes {
            n.cluster = Some(c.name().to_owned());
            nodes.push(n);
        }
    }
    Ok(Json(NodeList { nodes }))
}

/// A project's secrets (names only) as every cluster holds them: the proxy writes them
/// to each cluster, so the union by name, newest first-seen time, is what a caller set.
pub(super) async fn secrets(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<shoal_api_types::projects::SecretName>>> {
    caller
        .require_in(p.store().store(), &project, Level::Read)
        .await?;
    let (answers, _) = p
        .fan_out::<Vec<shoal_api_types::projects::SecretName>>(&format!(
            "/projects/{}/secrets",
            seg(&project)
        ))
        .await;
    Ok(Json(union_by_name(
        answers.into_iter().flat_map(|(_, v)| v),
        |s| s.name.clone(),
        |s| s.updated_at,
    )))
}

/// A project's datasources (never their passwords), the union over its clusters.
pub(super) async fn datasources(
    State(p): State<Proxy>,
    caller: Caller,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<shoal_api_types::datasources::DatasourceView>>> {
    caller
        .require_in(p.store().store(), &project, Level::Read)
        .await?;
    let (answers, _) = p
        .fan_out::<Vec<shoal_api_types::datasources::DatasourceView>>(&format!(
            "/projects/{}/datasources",
            seg(&project)
        ))
        .await;
    Ok(Json(union_by_name(
        answers.into_iter().flat_map(|(_, v)| v),
        |d| d.name.clone(),
        |d| d.updated_at,
    )))
}

/// One entry per name (the most recently updated), sorted by name.
fn union_by_name<T>(
    items: impl IntoIterator<Item = T>,
    name: impl Fn(&T) -> String,
    updated: impl Fn(&T) -> i64,
) -> Vec<T> {
    let mut by: BTreeMap<String, T> = BTreeMap::new();
    for item in items {
        let key = name(&item);
        match by.get(&key) {
            Some(have) if updated(have) >= updated(&item) => {}
            _ => {
                by.insert(key, item);
            }
        }
    }
    by.into_values().collect()
}
