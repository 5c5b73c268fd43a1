//! Assembling a TaskEngine from a data directory: engine, compile cache, policy,
//! plugin registry (built-ins plus the local plugin store).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use shoal_model::OperatorPolicy;
use shoal_runtime::{CompileCache, EngineConfig, PluginEngine, PluginRegistry};
use shoal_task_engine::{TaskEngine, TaskEngineConfig};

/// The data directory and what lives in it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// `--data-dir`, else `$SHOAL_HOME`, else `~/.shoal`.
    pub fn resolve(flag: Option<PathBuf>) -> Self {
        let root = flag
            .or_else(|| std::env::var_os("SHOAL_HOME").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".shoal")))
            .unwrap_or_else(|| PathBuf::from(".shoal"));
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the data dir (and its parents) private to this user: it holds the store,
    /// the secret key and every task's log. An existing one is narrowed to 0700 too.
    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)?;
        let mode = std::fs::metadata(&self.root)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    pub fn plugins(&self) -> PathBuf {
        self.root.join("plugins")
    }
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn policy(&self) -> PathBuf {
        self.root.join("policy.toml")
    }
}

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
pub fn load_policy(data: &DataDir, flag: Option<&Path>) -> anyhow::Result<OperatorPolicy> {
    let mut policy = load_server_policy(data, flag)?;
    if policy.sandbox.is_none() && !shoal_runtime::capabilities::sandbox::bubblewrap_available() {
        eprintln!(
            "warning: bubblewrap (`bwrap`) is not installed, so task processes run without a sandbox, as you; `shoal server` never does this (install bubblewrap, or write `sandbox = \"none\"` in the policy to silence this)"
        );
        policy.sandbox = Some(shoal_model::SandboxKind::None);
    }
    Ok(policy)
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
        eprintln!("warning: skipping a broken plugin: {problem}");
    }
    Ok(Arc::new(registry))
}

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

fn default_container_config() -> shoal_task_engine::ContainerConfig {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    shoal_task_engine::ContainerConfig {
        shared_slots: 64.max(cores * 16),
        exclusive_slots: 8.max(cores * 4),
    }
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
