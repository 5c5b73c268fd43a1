//! The embedded engine: this process drives the data dir's store alone (`shoal run`,
//! `shoal resume`, the all-in-one `shoal server`), fenced by `engine.lock` on the data dir
//! and by a renewed lease row in the database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use shoal_master::{Master, MasterConfig};
use shoal_runtime::PluginRegistry;
use shoal_task_engine::{Containers, LocalExecutor};
use tokio::sync::watch;

use crate::DataDir;
use crate::assemble::{default_containers, open_store, task_engine_for};

/// How an embedded engine is set up.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedConfig {
    /// `--db URL`; none is `<data dir>/shoal.db`.
    pub database: Option<String>,
    /// Echo every task's log lines to stderr.
    pub verbose: bool,
    /// Task groups and their slots (DolphinScheduler's task groups).
    pub task_groups: BTreeMap<String, usize>,
    /// Server mode: projects need an admin's allowance for process task types.
    pub server_mode: bool,
}

/// This process as the engine of the data dir's store.
pub struct Embedded {
    pub master: Master,
    pub containers: Arc<Containers>,
    lease: watch::Receiver<bool>,
    holder: String,
    _lock: EngineLock,
}

/// How long the engine lease lasts without renewal, and how often it is renewed.
const LEASE_TTL_MS: i64 = 30_000;
const LEASE_RENEW: Duration = Duration::from_secs(10);

impl Embedded {
    /// Become the engine, or `None` when another process on this data dir is.
    /// `registry` is opened only once the lock is held (compiling plugins is wasted on
    /// a process that cannot be the engine).
    pub async fn start(
        data: &DataDir,
        config: &EmbeddedConfig,
        registry: impl FnOnce() -> anyhow::Result<Arc<PluginRegistry>>,
    ) -> anyhow::Result<Option<Self>> {
        let Some(lock) = EngineLock::try_take(data)? else {
            return Ok(None);
        };
        let registry = registry()?;
        let store = open_store(data, config.database.as_deref()).await?;
        let holder = engine_holder(data);
        let lease = hold_engine_lease(&store, &holder).await?;
        let containers = default_containers();
        for (name, slots) in &config.task_groups {
            containers.set_task_group(name, *slots);
        }
        let tasks = task_engine_for(data, registry).with_containers(containers.clone());
        let master_config = MasterConfig {
            echo_task_logs: config.verbose,
            project_process_gate: config.server_mode,
            ..Default::default()
        };
        let executor = Arc::new(LocalExecutor::new(tasks, master_config.host.clone()));
        let master = Master::new(store, executor, master_config);
        master.serve_commands();
        write_status(data, containers.clone());
        Ok(Some(Self {
            master,
            containers,
            lease,
            holder,
            _lock: lock,
        }))
    }

    /// Resolves when another engine took the lease over after this one stalled past
    /// it: acting on any instance from then on could run tasks twice, so the caller
    /// must stop.
    pub async fn lease_lost(&self) {
        wait_lost(self.lease_watch()).await
    }

    /// The lease flag itself, for a watcher that outlives this borrow.
    pub fn lease_watch(&self) -> watch::Receiver<bool> {
        self.lease.clone()
    }

    /// Give the lease up (a clean shutdown), so the next engine need not wait for it.
    pub async fn release(self) -> anyhow::Result<()> {
        self.master
            .store()
            .release_lease("engine", &self.holder)
            .await?;
        Ok(())
    }
}

/// Make this process the store's one engine: the lease excludes engines of other data
/// dirs (or hosts) sharing the database. The holder is named by host and data dir, so
/// the next engine of the same data dir takes over at once; anyone else waits until the
/// lease expires. The returned flag turns false when the lease is lost.
async fn hold_engine_lease(
    store: &shoal_store::Store,
    holder: &str,
) -> anyhow::Result<watch::Receiver<bool>> {
    if !store.acquire_lease("engine", holder, LEASE_TTL_MS).await? {
        let (other, until) = store.lease_holder("engine").await?.unwrap_or_default();
        bail!(
            "another engine ({other}) is driving this database until {} unless it renews; wait for it to finish or use another --db",
            clock(until)
        );
    }
    let (held, lease) = watch::channel(true);
    let store = store.clone();
    let holder = holder.to_owned();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEASE_RENEW).await;
            match store.acquire_lease("engine", &holder, LEASE_TTL_MS).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!("the engine lease was lost to another engine");
                    let _ = held.send(false);
                    return;
                }
                Err(e) => tracing::warn!("renewing the engine lease failed: {e}"),
            }
        }
    });
    Ok(lease)
}

/// Resolves once `lease` says the lease is gone.
pub async fn wait_lost(mut lease: watch::Receiver<bool>) {
    let _ = lease.wait_for(|held| !held).await;
}

fn clock(ms: i64) -> String {
    let secs = (ms - shoal_store::now_ms()).max(0) / 1000;
    format!("{secs}s from now")
}

/// How this process is named in the engine lease: host and data dir.
pub fn engine_holder(data: &DataDir) -> String {
    let root = std::fs::canonicalize(data.root()).unwrap_or_else(|_| data.root().to_path_buf());
    format!("{}:{}", MasterConfig::default().host, root.display())
}

/// Keep `<data dir>/status.json` (container occupancy and waiting tasks) current for
/// `shoal status` while this process is the engine.
fn write_status(data: &DataDir, containers: Arc<Containers>) {
    let path = data.root().join("status.json");
    tokio::spawn(async move {
        loop {
            let status = serde_json::json!({
                "pid": std::process::id(),
                "at": shoal_store::now_ms(),
                "containers": containers.snapshot(),
            });
            let tmp = path.with_extension("json.tmp");
            if std::fs::write(&tmp, status.to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

/// The one engine allowed to drive a data dir's store: holding `<data dir>/engine.lock`
/// makes this process the engine; recovery of unfinished instances is its job alone.
pub struct EngineLock {
    _file: std::fs::File,
}

impl EngineLock {
    /// Take the lock, or None when another process holds it.
    pub fn try_take(data: &DataDir) -> anyhow::Result<Option<Self>> {
        data.create()?;
        let path = data.root().join("engine.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}
