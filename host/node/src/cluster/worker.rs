//! A worker node: a TaskEngine behind the worker RPC, registered with its worker groups
//! and slots, reporting its load by heartbeat.
//!
//! Architecture invariant: when its lease is lost (declared dead, or the store out of
//! reach for a whole lease) the worker stops every attempt it runs and drops every
//! unsent update before it registers again; the new generation starts empty, and
//! masters refuse anything still signed with the old one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use shoal_registry::{LeaseState, NodeInfo, NodeLease, NodeLoad, NodeRole, Registry};
use shoal_rpc::RpcClient;
use shoal_runtime::PluginRegistry;
use shoal_task_engine::{ContainerConfig, Containers, LocalExecutor};
use shoal_worker::{Outbox, Worker};
use tokio::task::JoinHandle;

use super::{ClusterConfig, MASTER_TASK_TYPES, open_cluster_store, probe, serve};
use crate::DataDir;
use crate::assemble::task_engine_for;

/// What a worker serves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker groups whose tasks it takes [default: `default`].
    pub groups: Vec<String>,
    /// Attempts it runs at once; masters place no more on it.
    pub slots: usize,
    /// Task groups and their slots on this worker.
    pub task_groups: std::collections::BTreeMap<String, usize>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            groups: vec!["default".to_owned()],
            slots: 16,
            task_groups: Default::default(),
        }
    }
}

/// A running worker node.
pub struct WorkerNode {
    pub worker: Worker,
    pub registry: Registry,
    pub containers: Arc<Containers>,
    /// The RPC base URL masters reach this worker at.
    pub rpc_address: String,
    pub id: String,
    info: NodeInfo,
    generation: Arc<AtomicU64>,
    /// The lease held now (a new one after each re-registration).
    lease: Arc<std::sync::Mutex<NodeLease>>,
    tasks: Vec<JoinHandle<()>>,
}

impl WorkerNode {
    pub async fn start(
        data: &DataDir,
        cluster: &ClusterConfig,
        config: &WorkerConfig,
        plugins: Arc<PluginRegistry>,
    ) -> anyhow::Result<Self> {
        cluster.check()?;
        if config.slots == 0 {
            anyhow::bail!("a worker needs at least one slot (--slots)");
        }
        if config.groups.is_empty() {
            anyhow::bail!("a worker serves at least one worker group (--group)");
        }
        let store = open_cluster_store(&cluster.database, cluster.registry.lease).await?;
        let staging = data.root().join("uploads");
        super::plugins::sync_plugins(&store, &plugins, &staging)
            .await
            .context("copying plugins from the store")?;
        warm_up(&plugins).await;
        let plugin_sync =
            super::plugins::keep_in_sync(store.clone(), plugins.clone(), staging.clone());
        let registry = Registry::new(store.clone(), cluster.registry);
        let listener = tokio::net::TcpListener::bind(cluster.rpc_listen)
            .await
            .with_context(|| format!("listening for RPC on {}", cluster.rpc_listen))?;
        let bound = listener.local_addr()?;
        let id = cluster.node_id("worker", bound);
        let rpc_address = format!("http://{bound}");
        // Blocking tasks and short ones each get every slot: the masters keep the
        // total to `slots`, whichever kind they are.
        let containers = Containers::new(ContainerConfig {
            shared_slots: config.slots,
            exclusive_slots: config.slots,
        });
        for (name, slots) in &config.task_groups {
            containers.set_task_group(name, *slots);
        }
        let engine = task_engine_for(data, plugins.clone()).with_containers(containers.clone());
        let executor = Arc::new(LocalExecutor::new(engine, id.clone()));
        let info = NodeInfo {
            id: id.clone(),
            role: NodeRole::Worker,
            address: rpc_address.clone(),
            groups: config.groups.clone(),
            slots: config.slots as i64,
            shared_slots: config.slots as i64,
            exclusive_slots: config.slots as i64,
        };
        let lease = registry.register(info.clone()).await?;
        let generation = Arc::new(AtomicU64::new(lease.generation as u64));
        let outbox = Outbox::new(
            RpcClient::new(&cluster.rpc()),
            id.clone(),
            lease.generation as u64,
        );
        let worker = Worker::new(executor, outbox, &cluster.secret);
        // A version hot-loaded a moment ago may not have been copied here yet: look
        // before a task of a type this node does not know fails for it.
        worker.before_dispatch(Arc::new(move |task_type: String, version| {
            let (store, plugins, staging) = (store.clone(), plugins.clone(), staging.clone());
            Box::pin(async move {
                if plugins.resolve(&task_type, version.as_ref()).await.is_err()
                    && let Err(e) = super::plugins::sync_plugins(&store, &plugins, &staging).await
                {
                    tracing::warn!("syncing plugins for a `{task_type}` task failed: {e}");
                }
            })
        }));
        let rpc_server = serve(
            listener,
            shoal_worker::routes::router(worker.clone(), generation.clone()),
        );
        tracing::info!(node = %id, generation = lease.generation, %rpc_address, "worker registered");
        let mut node = Self {
            worker,
            registry,
            containers,
            rpc_address,
            id,
            info,
            generation,
            lease: Arc::new(std::sync::Mutex::new(lease.clone())),
            tasks: vec![rpc_server, plugin_sync],
        };
        let keeper = node.keep_lease(lease);
        node.tasks.push(keeper);
        Ok(node)
    }

    /// The generation this worker acts as now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Heartbeat; on a lost lease stop everything of the old generation and register
    /// again as a new one, for as long as the node runs.
    fn keep_lease(&self, first: NodeLease) -> JoinHandle<()> {
        let (registry, worker, info, generation, held) = (
            self.registry.clone(),
            self.worker.clone(),
            self.info.clone(),
            self.generation.clone(),
            self.lease.clone(),
        );
        tokio::spawn(async move {
            let mut lease = first;
            loop {
                let load_of = worker.clone();
                let (heartbeat, mut state) =
                    registry.spawn_heartbeat(lease.clone(), move || NodeLoad {
                        slots_used: load_of.executor().load() as i64,
                        cpu_load: probe::cpu_load(),
                        memory_used: probe::memory_used(),
                    });
                let loss = match state.wait_for(|s| matches!(s, LeaseState::Lost(_))).await {
                    Ok(s) => *s,
                    Err(_) => LeaseState::Lost(shoal_registry::LeaseLoss::Expired),
                };
                heartbeat.abort();
                tracing::error!(node = %lease.id, generation = lease.generation, ?loss, "lease lost: stopping every attempt of this generation");
                worker.lost_lease().await;
                lease = loop {
                    match registry.register(info.clone()).await {
                        Ok(lease) => break lease,
                        Err(e) => {
                            tracing::warn!("registering again failed: {e}; retrying");
                            tokio::time::sleep(registry.config().heartbeat).await;
                        }
                    }
                };
                generation.store(lease.generation as u64, Ordering::SeqCst);
                *held.lock().unwrap_or_else(|p| p.into_inner()) = lease.clone();
                worker.outbox().set_generation(lease.generation as u64);
                tracing::warn!(node = %lease.id, generation = lease.generation, "registered again");
            }
        })
    }

    /// A clean shutdown: stop serving and heartbeating, then leave the registry, so the
    /// masters fail what still runs here over at once rather than after the lease.
    pub async fn shutdown(&self) {
        self.stop();
        self.worker.lost_lease().await;
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Err(e) = self.registry.leave(&lease).await {
            tracing::warn!("leaving the registry failed: {e}; masters wait for the lease instead");
        }
    }

    /// Stop serving and heartbeating.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for WorkerNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Load (compile, or read from the compile cache) the active version of every task type
/// a worker runs, before it registers: otherwise the first dispatch of each type waits
/// for its compile, and on a fresh node that held the first wave of a fan-out about a
/// second. Logic types run on masters and are left out; a type that fails to load is
/// reported and fails its tasks at dispatch, as before.
async fn warm_up(plugins: &PluginRegistry) {
    let started = std::time::Instant::now();
    let mut loaded = 0;
    for id in plugins.ids() {
        if MASTER_TASK_TYPES
            .iter()
            .any(|t| shoal_model::task::task_type_matches(t, &id))
        {
            continue;
        }
        match plugins.resolve(&id, None).await {
            Ok(_) => loaded += 1,
            Err(e) => tracing::warn!("loading task type `{id}` at start-up: {e}"),
        }
    }
    tracing::info!(
        loaded,
        took_ms = started.elapsed().as_millis() as u64,
        "task types ready"
    );
}
