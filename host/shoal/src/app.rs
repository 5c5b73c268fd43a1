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
pub fn load_policy(data: &DataDir, flag: Option<&Path>) -> anyhow::Result<OperatorPolicy> {
    match flag {
        Some(path) => Ok(OperatorPolicy::load(path)?),
        None if data.policy().is_file() => Ok(OperatorPolicy::load(&data.policy())?),
        None => Ok(OperatorPolicy::default()),
    }
}

/// A registry with the built-ins and every installed plugin.
pub fn open_registry(
    data: &DataDir,
    policy: OperatorPolicy,
) -> anyhow::Result<Arc<PluginRegistry>> {
    std::fs::create_dir_all(data.root())
        .with_context(|| format!("creating data dir {}", data.root().display()))?;
    let engine = PluginEngine::new(&EngineConfig::default())?;
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
    let registry = open_registry(data, policy)?;
    Ok(TaskEngine::new(
        registry,
        TaskEngineConfig {
            work_root: data.work(),
            log_root: data.logs(),
            poll_interval: Duration::from_millis(500),
        },
    ))
}
