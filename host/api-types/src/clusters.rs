//! What the cluster proxy says about the clusters behind it, and what a cluster says
//! about itself for the proxy's health checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A cluster's own summary (`GET /api/v1/status`): what the proxy's cluster manager
/// pulls on every health check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// The server's version (the `shoal` binary's).
    pub version: String,
    /// The REST API's major version (`v1`).
    pub api_version: String,
    /// Task types it can run, each with its installed versions (active one first).
    pub task_types: BTreeMap<String, Vec<String>>,
    /// Live nodes (an all-in-one server counts as one).
    pub nodes: i64,
    /// Task slots over all live workers, and how many are free.
    pub slots: i64,
    pub slots_free: i64,
    /// Instances not yet finished.
    pub running_instances: i64,
    /// Runs waiting in a queue (serial run modes, backfills).
    pub queued_runs: i64,
}

/// `healthy`, `degraded` or `unreachable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterHealth {
    /// Answered its last check, with free capacity.
    Healthy,
    /// Answers, but something is wrong (no free slot, no worker, slow, an old API).
    Degraded,
    /// Did not answer its last checks; gets no new runs.
    Unreachable,
}

impl ClusterHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unreachable => "unreachable",
        }
    }
}

/// One cluster behind the proxy, as its cluster manager last saw it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    pub name: String,
    /// Its API base URL.
    pub url: String,
    pub labels: BTreeMap<String, String>,
    pub weight: u32,
    pub health: ClusterHealth,
    /// Why it is degraded or unreachable; empty when healthy.
    pub reason: String,
    /// Milliseconds since the epoch of the last check that got an answer.
    pub last_seen_at: Option<i64>,
    /// Milliseconds the last check took.
    pub latency_ms: Option<u64>,
    /// The last answer to `GET /api/v1/status`, if any.
    pub status: Option<ClusterStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterList {
    pub clusters: Vec<ClusterView>,
}

/// A cluster whose part of an aggregated listing is missing, and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MissingCluster {
    pub cluster: String,
    pub reason: String,
}

/// A forwarded write, as the proxy's audit log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    /// The proxy user who asked.
    pub user: String,
    /// `METHOD /path`.
    pub action: String,
    pub cluster: Option<String>,
    /// The HTTP status the cluster answered, or 0 when it could not be reached.
    pub status: i64,
    /// A short result: the instance started, or the error.
    pub result: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
}

/// A run the proxy accepted, and where it went (`GET /api/v1/proxy-runs/{key}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProxyRun {
    /// The run's key, sent to the cluster as `Idempotency-Key`.
    pub key: String,
    pub project: String,
    pub workflow: String,
    /// `pending` (not acknowledged by a cluster yet), `placed` or `failed`.
    pub state: String,
    pub cluster: Option<String>,
    /// The instance's id at the proxy (cluster-qualified), once placed.
    pub instance: Option<i64>,
    pub attempts: i64,
    pub last_error: String,
    pub created_at: i64,
}
