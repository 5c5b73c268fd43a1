//! The parts every Shoal process is built from: operator policy, plugin registry,
//! TaskEngine, store and containers, each opened from the data dir and flags.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use shoal_model::OperatorPolicy;
use shoal_runtime::{CompileCache, EngineConfig, PluginEngine, PluginRegistry};
use shoal_task_engine::{TaskEngine, TaskEngineConfig};

use crate::DataDir;

/// Load the operator policy: `--policy`, else `<data dir>/policy.toml` if present.
/// `shoal server` takes it as it is: without bubblewrap its process tasks fail.
pub fn load_server_policy(data: &DataDir, flag: Option<&Path>) -> anyhow::Result<OperatorPolicy> {
    match flag {
        Some(path) => Ok(OperatorPolicy::load(path)?),
        None if data.policy().is_file() => Ok(OperatorPolicy::load(&data.policy())?),
        None => Ok(OperatorPolicy::default()),
    }
}

/// The policy for running on one's own machine (`shoal run`, `shoal task run`): as the
/// server's, except that where bubblewrap is missing and the policy does not name a
/// sandbox, the user's own workflows run unconfined, said loudly, rather than not at all.
///
/// Returns the policy and, when it had to fall back, the warning to show the user.
pub fn load_policy(
    data: &DataDir,
    flag: Option<&Path>,
) -> anyhow::Result<(OperatorPolicy, Option<String>)> {
    let mut policy = load_server_policy(data, flag)?;
    let mut warning = None;
    if policy.sandbox.is_none() && !shoal_runtime::capabilities::sandbox::bubblewrap_available() {
        warning = Some(
            "bubblewrap (`bwrap`) is not installed, so task processes run without a sandbox, as you; `shoal server` never does this (install bubblewrap, or write `sandbox = \"none\"` in the policy to silence this)".to_owned(),
        );
        policy.sandbox = Some(shoal_model::SandboxKind::None);
    }
    Ok((policy, warning))
}

/// A registry with the built-ins and every installed plugin.
pub fn open_registry(
    data: &DataDir,
    policy: OperatorPolicy,
) -> anyhow::Result<Arc<PluginRegistry>> {
    data.create()
        .with_context(|| format!("creating data dir {}", data.root().display()))?;
    // One pool slot per container slot (plus headroom): tasks never wait for the pool
    // while the containers have room.
    let containers = default_container_config();
    let engine = PluginEngine::new(&EngineConfig::for_tasks(
        containers.shared_slots + containers.exclusive_slots,
    ))?;
    let registry = PluginRegistry::new(
        engine,
        CompileCache::new(data.cache()),
        policy,
        data.plugins(),
    )?;
    for (manifest, wasm) in shoal_builtins::BUILTIN_PLUGINS {
        registry.add_builtin(manifest, wasm)?;
    }
    for problem in registry.scan_store() {
        tracing::warn!("skipping a broken plugin: {problem}");
    }
    Ok(Arc::new(registry))
}

/// A TaskEngine with its own registry.
pub fn open_task_engine(data: &DataDir, policy: OperatorPolicy) -> anyhow::Result<TaskEngine> {
    Ok(task_engine_for(data, open_registry(data, policy)?))
}

/// How often external jobs are polled: `$SHOAL_POLL_MS` milliseconds, default 500.
fn poll_interval() -> Duration {
    let ms = std::env::var("SHOAL_POLL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(500);
    Duration::from_millis(ms)
}

/// A TaskEngine over an already opened registry.
pub fn task_engine_for(data: &DataDir, registry: Arc<PluginRegistry>) -> TaskEngine {
    let mut work_dirs = shoal_task_engine::WorkDirRetention::default();
    if let Some(hours) = registry.policy().keep_failed_work_dirs_h {
        work_dirs.keep_failed_for = Duration::from_secs(hours.saturating_mul(3600));
    }
    TaskEngine::new(
        registry,
        TaskEngineConfig {
            work_root: data.work(),
            datasource_root: data.root().join("datasources"),
            log_root: data.logs(),
            poll_interval: poll_interval(),
            work_dirs,
        },
    )
}

/// The store: `--db URL` (or `$SHOAL_DB`), else `<data dir>/shoal.db` (SQLite).
pub async fn open_store(data: &DataDir, db: Option<&str>) -> anyhow::Result<shoal_store::Store> {
    let store = match db {
        Some(url) => shoal_store::Store::open(url)
            .await
            .with_context(|| format!("opening the store at {url}"))?,
        None => {
            let path = data.root().join("shoal.db");
            shoal_store::Store::open_sqlite(&path)
                .await
                .with_context(|| format!("opening the store at {}", path.display()))?
        }
    };
    Ok(store)
}

/// Containers sized for this machine: blocking tasks get one slot per core and a few
/// more (they mostly wait on child processes), short tasks a larger shared pool.
pub fn default_containers() -> Arc<shoal_task_engine::Containers> {
    shoal_task_engine::Containers::new(default_container_config())
}

pub fn default_container_config() -> shoal_task_engine::ContainerConfig {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    shoal_task_engine::ContainerConfig {
        shared_slots: 64.max(cores * 16),
        exclusive_slots: 8.max(cores * 4),
    }
}
