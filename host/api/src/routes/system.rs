//! Health (no token needed, for load balancers), Prometheus-style metrics and the
//! cluster's nodes.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::ApiState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::view::View;
pub use shoal_api_types::clusters::ClusterStatus;
pub use shoal_api_types::system::{Health, NodeList, NodeView};

#[utoipa::path(get, path = "/api/v1/health", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, description = "The store does not answer", body = crate::ErrorBody)))]
pub async fn health(State(state): State<ApiState>) -> ApiResult<axum::Json<Health>> {
    // 503, not 500: a load balancer reads it as "take this one out", which is the point.
    state
        .store()
        .user_count()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.inner.started_at.elapsed().as_secs(),
    }))
}

impl crate::view::View<NodeView> for shoal_store::NodeRow {
    fn view(self) -> NodeView {
        let n = self;
        NodeView {
            heartbeat_age_ms: n.heartbeat_age_ms(),
            slots_free: (n.slots - n.slots_used).max(0),
            role: n.role.as_str().to_owned(),
            state: match n.state {
                shoal_store::NodeState::Alive => "alive".to_owned(),
                shoal_store::NodeState::Dead => "dead".to_owned(),
            },
            id: n.id,
            address: n.address,
            groups: n.groups,
            slots: n.slots,
            slots_used: n.slots_used,
            shared_slots: n.shared_slots,
            exclusive_slots: n.exclusive_slots,
            cpu_load: n.cpu_load,
            memory_used: n.memory_used,
            generation: n.generation,
            failover_pending: n.failover_pending,
            cluster: None,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/nodes", tag = "system",
    responses((status = 200, body = NodeList), (status = 401, body = crate::ErrorBody)))]
pub async fn nodes(
    State(state): State<ApiState>,
    _caller: Caller,
) -> ApiResult<axum::Json<NodeList>> {
    let nodes = state
        .store()
        .nodes()
        .await?
        .into_iter()
        .map(View::view)
        .collect();
    Ok(axum::Json(NodeList { nodes }))
}

/// This cluster in one answer: version, task types with their versions, capacity and
/// backlog. The cluster proxy's health check reads it; any signed-in caller may.
#[utoipa::path(get, path = "/api/v1/status", tag = "system",
    responses((status = 200, body = ClusterStatus), (status = 401, body = crate::ErrorBody)))]
pub async fn status(
    State(state): State<ApiState>,
    _caller: Caller,
) -> ApiResult<axum::Json<ClusterStatus>> {
    let mut task_types = std::collections::BTreeMap::<String, Vec<String>>::new();
    for p in state.registry().list() {
        let versions = task_types.entry(p.id.clone()).or_default();
        if p.active {
            versions.insert(0, p.version.to_string());
        } else {
            versions.push(p.version.to_string());
        }
    }
    let nodes = state.store().nodes().await?;
    let alive: Vec<_> = nodes
        .iter()
        .filter(|n| n.state == shoal_store::NodeState::Alive)
        .collect();
    // An all-in-one server has no registry rows: its own containers are its capacity.
    let (node_count, slots, used) = if alive.is_empty() {
        let (slots, used) = state.inner.capacity.as_ref().map(|c| c()).unwrap_or((0, 0));
        (1, slots, used)
    } else {
        let workers = alive
            .iter()
            .filter(|n| n.role == shoal_store::NodeRole::Worker);
        let (s, u) = workers.fold((0, 0), |(s, u), n| (s + n.slots, u + n.slots_used));
        (alive.len() as i64, s, u)
    };
    let running = state.store().open_instance_count().await?;
    Ok(axum::Json(ClusterStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: "v1".into(),
        task_types,
        nodes: node_count,
        slots,
        slots_free: (slots - used).max(0),
        running_instances: running,
        queued_runs: state.store().waiting_runs().await?.len() as i64,
    }))
}

#[utoipa::path(get, path = "/api/v1/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 401, body = crate::ErrorBody)))]
pub async fn metrics(
    State(state): State<ApiState>,
    _caller: Caller,
) -> ApiResult<impl IntoResponse> {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    let by_state = state.store().instance_counts_by_state().await?;
    gauge(
        "shoal_workflow_instances",
        "Workflow instances by state.",
        by_state
            .into_iter()
            .map(|(s, n)| (format!("{{state=\"{s}\"}}"), n as f64))
            .collect(),
    );
    let waiting = state.store().waiting_runs().await?.len();
    gauge(
        "shoal_queued_runs",
        "Runs waiting for a slot (serial run modes, backfills).",
        vec![(String::new(), waiting as f64)],
    );
    let schedules = state.store().schedules().await?;
    gauge(
        "shoal_schedules_online",
        "Schedules that fire.",
        vec![(
            String::new(),
            schedules.iter().filter(|s| s.online).count() as f64,
        )],
    );
    gauge(
        "shoal_plugin_versions",
        "Plugin versions the registry knows.",
        vec![(String::new(), state.registry().list().len() as f64)],
    );
    gauge(
        "shoal_uptime_seconds",
        "Seconds since the API started.",
        vec![(
            String::new(),
            state.inner.started_at.elapsed().as_secs_f64(),
        )],
    );
    if let Some(extra) = &state.inner.extra_metrics {
        for (name, help, value) in extra() {
            gauge(&name, &help, vec![(String::new(), value)]);
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
