//! A master node: the master's workflow engine with its tasks on remote workers, its
//! registration and lease, the RPC endpoint workers report to, and the cluster loop
//! that watches the registry and runs failovers.
//!
//! Architecture invariant: this master's commands to workers carry the wall-clock end
//! of its proven lease, and workers refuse what arrives after it; a master paused past
//! its lease therefore cannot start an attempt that its instances' new owner may have
//! started elsewhere already. Its store writes are fenced by each instance's ownership
//! term, so once another master adopted an instance, nothing of the old one lands.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use shoal_master::{Master, MasterConfig};
use shoal_protocol::rpc::MasterRef;
use shoal_registry::{
    LeaseState, LeaseUntil, NodeInfo, NodeLease, NodeLoad, NodeRole, NodeRow, NodeState, Registry,
};
use shoal_rpc::{RemoteExecutor, RpcClient, WorkerView};
use shoal_runtime::PluginRegistry;
use shoal_task_engine::LocalExecutor;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ClusterConfig, MASTER_TASK_TYPES, open_cluster_store, probe, serve};
use crate::DataDir;
use crate::assemble::{default_containers, task_engine_for};

/// A running master node.
pub struct MasterNode {
    pub master: Master,
    pub executor: Arc<RemoteExecutor>,
    pub registry: Registry,
    pub lease: NodeLease,
    /// The RPC base URL workers reach this master at.
    pub rpc_address: String,
    lost: watch::Receiver<LeaseState>,
    tasks: Vec<JoinHandle<()>>,
}

/// The last generation seen of each worker, and whether it was alive: updates from an
/// older generation (or from the dead one) are refused.
type Generations = Arc<RwLock<HashMap<String, (i64, bool)>>>;

impl MasterNode {
    /// Register as a master of the cluster and start serving. `plugins` serve the
    /// logic tasks this master runs itself and tell task types' triggers.
    pub async fn start(
        data: &DataDir,
        cluster: &ClusterConfig,
        config: MasterConfig,
        plugins: Arc<PluginRegistry>,
    ) -> anyhow::Result<Self> {
        cluster.check()?;
        let store = open_cluster_store(&cluster.database, cluster.registry.lease).await?;
        let registry = Registry::new(store.clone(), cluster.registry);
        let listener = tokio::net::TcpListener::bind(cluster.rpc_listen)
            .await
            .with_context(|| format!("listening for RPC on {}", cluster.rpc_listen))?;
        let bound = listener.local_addr()?;
        let id = cluster.node_id("master", bound);
        let rpc_address = format!("http://{bound}");
        let lease = registry
            .register(NodeInfo {
                id: id.clone(),
                role: NodeRole::Master,
                address: rpc_address.clone(),
                groups: Vec::new(),
                slots: 0,
                shared_slots: 0,
                exclusive_slots: 0,
            })
            .await?;
        let until = LeaseUntil::default();
        let (heartbeat, lost) = registry.spawn_heartbeat_until(
            lease.clone(),
            || NodeLoad {
                slots_used: 0,
                cpu_load: probe::cpu_load(),
                memory_used: probe::memory_used(),
            },
            until.clone(),
        );

        super::plugins::sync_plugins(&store, &plugins, &data.root().join("uploads"))
            .await
            .context("copying plugins from the store")?;
        let plugin_sync = super::plugins::keep_in_sync(
            store.clone(),
            plugins.clone(),
            data.root().join("uploads"),
        );
        let local_engine = task_engine_for(data, plugins).with_containers(default_containers());
        // Its logic tasks' logs go to the store: another master's API serves them too.
        let local = Arc::new(LocalExecutor::new(local_engine, id.clone()).shipping_logs());
        let me = MasterRef {
            node: id.clone(),
            address: rpc_address.clone(),
            generation: lease.generation as u64,
        };
        let rpc = RpcClient::new(&cluster.rpc()).with_lease(until);
        let executor = Arc::new(RemoteExecutor::new(
            rpc,
            me,
            local,
            MASTER_TASK_TYPES.iter().map(|t| t.to_string()),
        ));
        let master = Master::new(
            store,
            executor.clone(),
            MasterConfig {
                host: id.clone(),
                owner: Some(id.clone()),
                ..config
            },
        );
        let generations = Generations::default();
        let sink = executor
            .sink()
            .context("the master did not connect to its executor")?;
        let check = {
            let generations = generations.clone();
            Arc::new(move |node: &str, generation: u64| {
                let generation = generation as i64;
                match generations
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(node)
                {
                    Some((known, true)) => generation >= *known,
                    Some((known, false)) => generation > *known,
                    // Registered after the last look: a newer generation than any seen.
                    None => true,
                }
            })
        };
        let rpc_server = serve(
            listener,
            shoal_rpc::master::router(sink, &cluster.secret, check),
        );
        // Workers first, so the first placements find them.
        let mut watch = ClusterWatch {
            registry: registry.clone(),
            master: master.clone(),
            executor: executor.clone(),
            generations,
            me: id.clone(),
            seen: HashMap::new(),
        };
        watch.tick().await;
        let cluster_loop = tokio::spawn(watch.run());
        let commands = master.serve_commands();
        tracing::info!(node = %id, generation = lease.generation, %rpc_address, "master registered");
        Ok(Self {
            master,
            executor,
            registry,
            lease,
            rpc_address,
            lost,
            tasks: vec![heartbeat, rpc_server, cluster_loop, commands, plugin_sync],
        })
    }

    /// Resolves when this master must stop acting: its heartbeat was refused (it was
    /// declared dead) or none reached the store for a whole lease. Every instance is
    /// let go by then; the binary should exit, and a restart registers a new generation.
    pub fn lease_lost(
        &self,
    ) -> impl std::future::Future<Output = shoal_registry::LeaseLoss> + Send + 'static {
        let mut lost = self.lost.clone();
        let master = self.master.clone();
        async move {
            let state = lost
                .wait_for(|s| matches!(s, LeaseState::Lost(_)))
                .await
                .map(|s| *s);
            master.let_go_all();
            match state {
                Ok(LeaseState::Lost(loss)) => loss,
                _ => shoal_registry::LeaseLoss::Expired,
            }
        }
    }

    /// Whether the lease is lost (see [`MasterNode::lease_lost`]).
    pub fn lease_is_lost(&self) -> bool {
        matches!(*self.lost.borrow(), LeaseState::Lost(_))
    }

    /// A clean shutdown: stop acting on every instance, leave the registry (another
    /// master adopts them at once) and stop heartbeats, RPC and the cluster loop.
    pub async fn shutdown(&self) {
        self.stop();
        self.master.let_go_all();
        if let Err(e) = self.registry.leave(&self.lease).await {
            tracing::warn!("leaving the registry failed: {e}; peers wait for the lease instead");
        }
    }

    /// Stop heartbeats, the RPC endpoint and the cluster loop.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for MasterNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Watches the registry every heartbeat: feeds the live workers to placement, tells
/// instances which workers were lost, declares silent nodes dead and runs the
/// failovers that are pending.
struct ClusterWatch {
    registry: Registry,
    master: Master,
    executor: Arc<RemoteExecutor>,
    generations: Generations,
    me: String,
    /// Each worker's (generation, alive) at the last look.
    seen: HashMap<String, (i64, bool)>,
}

impl ClusterWatch {
    async fn run(mut self) {
        let every = self.registry.config().heartbeat;
        loop {
            tokio::time::sleep(every).await;
            self.tick().await;
        }
    }

    async fn tick(&mut self) {
        let seen_at = std::time::Instant::now();
        let nodes = match self.registry.nodes().await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!("reading the registry failed: {e}");
                return;
            }
        };
        let lease_ms = self.registry.config().lease.as_millis() as i64;
        let fresh = |n: &NodeRow| n.state == NodeState::Alive && n.heartbeat_age_ms() <= lease_ms;
        self.executor.set_workers(
            nodes
                .iter()
                .filter(|n| n.role == NodeRole::Worker && fresh(n))
                .map(view)
                .collect(),
        );

        // A worker whose generation moved (declared dead, or back as a new one) no
        // longer holds what its old generation ran: the instances ask after it.
        let mut lost = Vec::new();
        for n in nodes.iter().filter(|n| n.role == NodeRole::Worker) {
            let now = (n.generation, n.state == NodeState::Alive);
            if let Some(before) = self.seen.insert(n.id.clone(), now)
                && before != now
            {
                lost.push(n.id.clone());
            }
        }
        *self.generations.write().unwrap_or_else(|p| p.into_inner()) = self.seen.clone();
        if !lost.is_empty() {
            tracing::warn!(workers = ?lost, "workers lost; failing over what they ran");
            self.master.hosts_lost(lost, seen_at);
        }

        for n in nodes
            .iter()
            .filter(|n| n.state == NodeState::Alive && n.heartbeat_age_ms() > lease_ms)
            .filter(|n| n.id != self.me)
        {
            if let Err(e) = self.registry.declare_dead(n).await {
                tracing::warn!(node = %n.id, "declaring it dead failed: {e}");
            }
        }
        // Declarations of this tick are read back on the next one; pending failovers
        // (this master's or one a master that died meanwhile left) run here.
        for n in nodes.iter().filter(|n| n.failover_pending) {
            self.fail_over(n).await;
        }
    }

    async fn fail_over(&self, node: &NodeRow) {
        match node.role {
            NodeRole::Master => match self.master.adopt_instances_of(&node.id).await {
                Ok(ids) => {
                    if !ids.is_empty() {
                        tracing::warn!(
                            dead = %node.id,
                            instances = ids.len(),
                            "adopted the instances of a dead master"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(dead = %node.id, "adopting its instances failed: {e}");
                    return;
                }
            },
            // Each master fails its own instances' attempts over when it sees the
            // worker's generation move (above), and a master that starts later asks
            // every worker about every attempt when it loads its instances.
            NodeRole::Worker => {}
        }
        match self
            .registry
            .failover_done(&node.id, node.failover_gen)
            .await
        {
            Ok(_) => {}
            Err(e) => tracing::warn!(node = %node.id, "recording its failover failed: {e}"),
        }
    }
}

fn view(n: &NodeRow) -> WorkerView {
    WorkerView {
        id: n.id.clone(),
        address: n.address.clone(),
        groups: n.groups.clone(),
        slots: n.slots.max(0) as u32,
        slots_used: n.slots_used.max(0) as u32,
        cpu_load: n.cpu_load,
        memory_used: n.memory_used,
        generation: n.generation.max(0) as u64,
        heartbeat_at: n.heartbeat_at,
    }
}
