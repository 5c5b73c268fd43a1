//! Health and the cluster's nodes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when the store answers.
    pub status: String,
    pub version: String,
    /// Seconds since the API started.
    pub uptime_s: u64,
}

/// One node of a cluster, as the registry last saw it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// `master` or `worker`.
    pub role: String,
    /// Its RPC base URL.
    pub address: String,
    /// Worker groups it serves (none for a master).
    pub groups: Vec<String>,
    pub slots: i64,
    pub slots_used: i64,
    pub slots_free: i64,
    /// The worker's containers: short tasks share `shared_slots`, blocking ones get one
    /// of `exclusive_slots`.
    pub shared_slots: i64,
    pub exclusive_slots: i64,
    /// The one-minute load average per core (0..1).
    pub cpu_load: f64,
    /// Fraction of memory in use (0..1).
    pub memory_used: f64,
    /// Milliseconds since its last heartbeat, on the database's clock.
    pub heartbeat_age_ms: i64,
    pub generation: i64,
    /// `alive` or `dead`.
    pub state: String,
    /// Its death's failover is not finished yet.
    pub failover_pending: bool,
    /// The cluster it lives on; set by the cluster proxy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}
