//! The node registry's rows and statements: one row per `shoal master` or `shoal worker`
//! process of a distributed deployment, with its lease (the last heartbeat) and its
//! generation. `shoal-registry` builds the lease protocol on these; the SQL lives here.
//!
//! Architecture invariant: every change to a node row that decides who may act is one
//! compare-and-set statement on (id, generation, state): a heartbeat renews only the
//! generation that is alive, a declaration of death wins only against the generation
//! its caller saw and only once the lease has run out, so of any number of concurrent
//! callers exactly one wins.
//! Architecture invariant: generations only grow (+1 at each registration, +1 at each
//! declaration of death), so a process holding an older generation can never again
//! write as the node.
//! Architecture invariant: lease times are the database's clock, never a node's own, so
//! clocks that disagree between machines cannot make a live node look dead.
//! Architecture invariant: a pending failover (`failover_pending`, for generation
//! `failover_gen`) is cleared only by `failover_done` for that generation; registering
//! again does not clear it.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Store, StoreError};

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    Master,
    Worker,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Master => "master",
            NodeRole::Worker => "worker",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "master" => Ok(NodeRole::Master),
            "worker" => Ok(NodeRole::Worker),
            other => Err(StoreError::Corrupt(format!("node role `{other}`"))),
        }
    }
}

/// Whether a node's current generation may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    Alive,
    Dead,
}

impl NodeState {
    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "alive" => Ok(NodeState::Alive),
            "dead" => Ok(NodeState::Dead),
            other => Err(StoreError::Corrupt(format!("node state `{other}`"))),
        }
    }
}

/// What a node says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's name, unique in the deployment.
    pub id: String,
    pub role: NodeRole,
    /// Its RPC base URL.
    pub address: String,
    /// Worker groups it serves (empty for a master).
    pub groups: Vec<String>,
    pub slots: i64,
    /// Container sizes.
    pub shared_slots: i64,
    pub exclusive_slots: i64,
}

/// What a heartbeat reports.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeLoad {
    pub slots_used: i64,
    pub cpu_load: f64,
    /// Fraction of memory in use, 0..1.
    pub memory_used: f64,
}

/// A node's row, read at `seen_at` (the database's clock, like `heartbeat_at`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    pub id: String,
    pub role: NodeRole,
    pub address: String,
    pub groups: Vec<String>,
    pub slots: i64,
    pub slots_used: i64,
    pub shared_slots: i64,
    pub exclusive_slots: i64,
    pub cpu_load: f64,
    pub memory_used: f64,
    pub heartbeat_at: i64,
    pub started_at: i64,
    pub generation: i64,
    pub state: NodeState,
    /// Generation `failover_gen` was declared dead and its failover is not yet recorded
    /// as done.
    pub failover_pending: bool,
    /// The generation whose death the pending (or last) failover is for.
    pub failover_gen: i64,
    pub seen_at: i64,
}

impl NodeRow {
    /// How long ago its last heartbeat was, when the row was read.
    pub fn heartbeat_age_ms(&self) -> i64 {
        self.seen_at - self.heartbeat_at
    }

    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let groups: String = r.try_get(3)?;
        Ok(Self {
            id: r.try_get(0)?,
            role: NodeRole::parse(&r.try_get::<String, _>(1)?)?,
            address: r.try_get(2)?,
            groups: serde_json::from_str(&groups)
                .map_err(|e| StoreError::Corrupt(format!("node groups: {e}")))?,
            slots: r.try_get(4)?,
            slots_used: r.try_get(5)?,
            shared_slots: r.try_get(6)?,
            exclusive_slots: r.try_get(7)?,
            cpu_load: r.try_get(8)?,
            memory_used: r.try_get(9)?,
            heartbeat_at: r.try_get(10)?,
            started_at: r.try_get(11)?,
            generation: r.try_get(12)?,
            state: NodeState::parse(&r.try_get::<String, _>(13)?)?,
            failover_pending: r.try_get::<i64, _>(14)? != 0,
            failover_gen: r.try_get(15)?,
            seen_at: r.try_get(16)?,
        })
    }
}

const NODE_COLUMNS: &str = "id, role, address, groups, slots, slots_used, shared_slots, exclusive_slots, cpu_load, memory_used, heartbeat_at, started_at, generation, state, failover_pending, failover_gen";

impl Store {
    /// The database's clock in ms since the epoch, as SQL. One value per statement, so
    /// every row a statement reads or writes sees the same "now".
    fn db_now(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)",
            // 'now' is fixed for one sqlite3_step; julianday keeps the milliseconds.
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        }
    }

    /// The database's clock, the one leases are measured on.
    pub async fn db_now_ms(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(&format!("SELECT {}", self.db_now()))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Register `info` as a new generation of its node: the previous generation + 1, or 1
    /// for a node never seen; alive, heartbeat now, load zero. A pending failover stays
    /// pending (and for the generation it was for): a dead node that comes back does not
    /// erase the work its death left. Returns the new generation.
    pub async fn register_node(&self, info: &NodeInfo) -> Result<i64, StoreError> {
        let groups = serde_json::to_string(&info.groups)
            .map_err(|e| StoreError::Corrupt(format!("node groups: {e}")))?;
        let now = self.db_now();
        let row = sqlx::query(&format!(
            "INSERT INTO nodes ({NODE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, 0, 0, {now}, {now}, 1, 'alive', 0, 0) \
             ON CONFLICT (id) DO UPDATE SET role = excluded.role, address = excluded.address, \
             groups = excluded.groups, slots = excluded.slots, slots_used = 0, \
             shared_slots = excluded.shared_slots, exclusive_slots = excluded.exclusive_slots, \
             cpu_load = 0, memory_used = 0, heartbeat_at = excluded.heartbeat_at, \
             started_at = excluded.started_at, generation = nodes.generation + 1, state = 'alive' \
             RETURNING generation"
        ))
        .bind(&info.id)
        .bind(info.role.as_str())
        .bind(&info.address)
        .bind(groups)
        .bind(info.slots)
        .bind(info.shared_slots)
        .bind(info.exclusive_slots)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Renew the lease of `id` at `generation` and record its load. False when that
    /// generation is no longer the node's alive one: it was declared dead, or a newer
    /// registration replaced it.
    pub async fn node_heartbeat(
        &self,
        id: &str,
        generation: i64,
        load: &NodeLoad,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE nodes SET heartbeat_at = {}, slots_used = $3, cpu_load = $4, memory_used = $5 \
             WHERE id = $1 AND generation = $2 AND state = 'alive'",
            self.db_now()
        ))
        .bind(id)
        .bind(generation)
        .bind(load.slots_used)
        .bind(load.cpu_load)
        .bind(load.memory_used)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn node(&self, id: &str) -> Result<Option<NodeRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS}, {} FROM nodes WHERE id = $1",
            self.db_now()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| NodeRow::from_row(&r)).transpose()
    }

    /// Every node row, alive or dead, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS}, {} FROM nodes ORDER BY id",
            self.db_now()
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(NodeRow::from_row).collect()
    }

    /// Nodes of `role` that are alive and heartbeat within the last `lease_ms`, by id.
    pub async fn live_nodes(
        &self,
        role: NodeRole,
        lease_ms: i64,
    ) -> Result<Vec<NodeRow>, StoreError> {
        let now = self.db_now();
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS}, {now} FROM nodes \
             WHERE role = $1 AND state = 'alive' AND heartbeat_at >= {now} - $2 ORDER BY id"
        ))
        .bind(role.as_str())
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(NodeRow::from_row).collect()
    }

    /// Declare `id` dead, if it still is the alive generation `seen_generation` and its
    /// last heartbeat is more than `lease_ms` old: generation + 1, state dead, failover
    /// pending for that new generation. True for the one caller that won; the failover to
    /// run is then the one of generation `seen_generation + 1`.
    pub async fn declare_node_dead(
        &self,
        id: &str,
        seen_generation: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE nodes SET state = 'dead', generation = generation + 1, failover_pending = 1, \
             failover_gen = generation + 1 \
             WHERE id = $1 AND generation = $2 AND state = 'alive' AND heartbeat_at < {} - $3",
            self.db_now()
        ))
        .bind(id)
        .bind(seen_generation)
        .bind(lease_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A clean shutdown: `id` at `generation` declares itself dead at once, as a peer
    /// would after its lease (generation + 1, failover pending), so masters take over
    /// what it held without waiting for the lease to run out. False when that
    /// generation was not the alive one any more.
    pub async fn leave_node(&self, id: &str, generation: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE nodes SET state = 'dead', generation = generation + 1, failover_pending = 1, \
             failover_gen = generation + 1 WHERE id = $1 AND generation = $2 AND state = 'alive'",
        )
        .bind(id)
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Nodes of `role` whose failover is not recorded as done, by id. The node may be
    /// alive again under a newer generation: what its dead generation left still needs
    /// the failover.
    pub async fn pending_failovers(&self, role: NodeRole) -> Result<Vec<NodeRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS}, {} FROM nodes WHERE role = $1 AND failover_pending = 1 ORDER BY id",
            self.db_now()
        ))
        .bind(role.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(NodeRow::from_row).collect()
    }

    /// Record the failover of `id`'s generation `failover_gen` as done. False when it was
    /// done already, or when the node died again since (a newer failover is pending,
    /// which covers what this one did not).
    pub async fn failover_done(&self, id: &str, failover_gen: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE nodes SET failover_pending = 0 WHERE id = $1 AND failover_pending = 1 AND failover_gen = $2",
        )
        .bind(id)
        .bind(failover_gen)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
