//! # shoal-registry: who is alive in a distributed deployment
//!
//! Every `shoal master` and `shoal worker` process registers a row in the shared store's
//! `nodes` table and keeps it alive by heartbeat. A registration is a new **generation**
//! of the node; a lease is (node id, generation). Peers read the table to find live
//! workers and masters, and a master that sees a node's heartbeat older than the lease
//! declares it dead, which is the start of that node's failover.
//!
//! Architecture invariant: a node acts only while it holds its lease: its heartbeat is a
//! compare-and-set on (id, generation, alive), and a heartbeat that matches nothing
//! ([`RegistryError::Fenced`]) means it was declared dead or replaced; it must stop what
//! it runs for that generation and register again as a new one.
//! Architecture invariant: exactly one caller declares a node dead: [`Registry::declare_dead`]
//! is one compare-and-set on the generation its caller saw, allowed only once the lease
//! ran out on the database's clock; its winner runs the failover, and records it done
//! with [`Registry::failover_done`] for that dead generation.
//! Architecture invariant: a pending failover survives the node's return: registering
//! again never clears it, so what the dead generation left is still taken over.
//! Architecture invariant: library code never exits the process; a lost lease is a value
//! ([`LeaseState::Lost`]) the binary acts on.

mod heartbeat;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_store::{Store, StoreError};

pub use heartbeat::{LeaseLoss, LeaseState, LeaseUntil};
pub use shoal_store::{NodeInfo, NodeLoad, NodeRole, NodeRow, NodeState};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "node {id} generation {generation} was declared dead or replaced; register again as a new generation"
    )]
    Fenced { id: String, generation: i64 },
    #[error("invalid node registration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often a node renews its lease, and how long a lease lasts without renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryConfig {
    pub heartbeat: Duration,
    pub lease: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            lease: Duration::from_secs(10),
        }
    }
}

impl RegistryConfig {
    /// A node must get several heartbeats into one lease, or a single slow one loses it.
    fn check(&self) -> Result<(), RegistryError> {
        if self.heartbeat.is_zero() || self.heartbeat * 2 > self.lease {
            return Err(RegistryError::Invalid(format!(
                "the heartbeat interval ({:?}) must be non-zero and at most half the lease ({:?})",
                self.heartbeat, self.lease
            )));
        }
        Ok(())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// What a node holds while it is registered: its id and the generation it acts as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeLease {
    pub id: String,
    pub generation: i64,
}

/// The registry on a store. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    config: RegistryConfig,
}

impl Registry {
    pub fn new(store: Store, config: RegistryConfig) -> Self {
        Self { store, config }
    }

    pub fn config(&self) -> RegistryConfig {
        self.config
    }

    /// Register `info` as a new generation of its node (1 for a node never seen, else the
    /// previous generation + 1), alive with a fresh heartbeat. Whatever an earlier
    /// generation still believes, it is fenced from now on. Start
    /// [`Registry::spawn_heartbeat`] right away: the lease runs from here.
    pub async fn register(&self, info: NodeInfo) -> Result<NodeLease, RegistryError> {
        self.config.check()?;
        if info.id.trim().is_empty() {
            return Err(RegistryError::Invalid("the node id is empty".into()));
        }
        if info.address.trim().is_empty() {
            return Err(RegistryError::Invalid(format!(
                "node {} has no address",
                info.id
            )));
        }
        if info.slots < 0 || info.shared_slots < 0 || info.exclusive_slots < 0 {
            return Err(RegistryError::Invalid(format!(
                "node {} has a negative slot count",
                info.id
            )));
        }
        if info.role == NodeRole::Master && !info.groups.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "master {} cannot serve worker groups",
                info.id
            )));
        }
        let generation = self.store.register_node(&info).await?;
        tracing::info!(node = %info.id, role = info.role.as_str(), generation, "registered");
        Ok(NodeLease {
            id: info.id,
            generation,
        })
    }

    /// Renew `lease` and report the node's load. [`RegistryError::Fenced`] when the
    /// lease's generation is no longer the node's alive one.
    pub async fn heartbeat(&self, lease: &NodeLease, load: NodeLoad) -> Result<(), RegistryError> {
        if self
            .store
            .node_heartbeat(&lease.id, lease.generation, &load)
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::Fenced {
                id: lease.id.clone(),
                generation: lease.generation,
            })
        }
    }

    /// Keep `lease` renewed every heartbeat interval, reporting `load()` each time, on a
    /// task of its own. The receiver turns to [`LeaseState::Lost`] when the node must
    /// stop acting, and the task ends then: at once when a heartbeat is fenced, or once
    /// no heartbeat succeeded for a whole lease (failed ones are retried meanwhile),
    /// counted from when the last good one was sent, so the node gives up no later than
    /// a peer may declare it dead. Aborting the handle stops the heartbeats.
    pub fn spawn_heartbeat<F>(
        &self,
        lease: NodeLease,
        load: F,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::sync::watch::Receiver<LeaseState>,
    )
    where
        F: FnMut() -> NodeLoad + Send + 'static,
    {
        self.spawn_heartbeat_until(lease, load, LeaseUntil::default())
    }

    /// [`Registry::spawn_heartbeat`], also keeping `until` at the wall-clock time until
    /// which the lease is proven (0 once it is lost).
    pub fn spawn_heartbeat_until<F>(
        &self,
        lease: NodeLease,
        load: F,
        until: LeaseUntil,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::sync::watch::Receiver<LeaseState>,
    )
    where
        F: FnMut() -> NodeLoad + Send + 'static,
    {
        heartbeat::spawn(self.clone(), lease, load, until)
    }

    /// Leave the cluster (a clean shutdown): the node declares itself dead now, so its
    /// failover starts at once instead of after the lease. Stop its heartbeat first.
    pub async fn leave(&self, lease: &NodeLease) -> Result<bool, RegistryError> {
        let left = self.store.leave_node(&lease.id, lease.generation).await?;
        if left {
            tracing::info!(node = %lease.id, generation = lease.generation, "left the cluster");
        }
        Ok(left)
    }

    /// Every node row, alive or dead, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, RegistryError> {
        Ok(self.store.nodes().await?)
    }

    pub async fn node(&self, id: &str) -> Result<Option<NodeRow>, RegistryError> {
        Ok(self.store.node(id).await?)
    }

    /// Nodes of `role` alive with a heartbeat within the lease, by id.
    pub async fn live(&self, role: NodeRole) -> Result<Vec<NodeRow>, RegistryError> {
        Ok(self.store.live_nodes(role, self.config.lease_ms()).await?)
    }

    /// Declare `node` dead if it is still the generation read in `node` and its lease ran
    /// out. True for the one caller that won, which then runs the failover of generation
    /// `node.generation + 1` and ends it with [`Registry::failover_done`].
    pub async fn declare_dead(&self, node: &NodeRow) -> Result<bool, RegistryError> {
        let won = self
            .store
            .declare_node_dead(&node.id, node.generation, self.config.lease_ms())
            .await?;
        if won {
            tracing::warn!(
                node = %node.id,
                generation = node.generation,
                silent_ms = node.heartbeat_age_ms(),
                "declared dead"
            );
        }
        Ok(won)
    }

    /// Nodes of `role` whose failover is not recorded as done (alive again or not); the
    /// failover to run for each is the one of `failover_gen`.
    pub async fn pending_failovers(&self, role: NodeRole) -> Result<Vec<NodeRow>, RegistryError> {
        Ok(self.store.pending_failovers(role).await?)
    }

    /// Record the failover of `id`'s dead generation `generation` (its `failover_gen`) as
    /// done. False when it was recorded already or the node died again since.
    pub async fn failover_done(&self, id: &str, generation: i64) -> Result<bool, RegistryError> {
        Ok(self.store.failover_done(id, generation).await?)
    }
}
