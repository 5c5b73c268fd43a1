//! Shared harness for the end-to-end tests: a throw-away data dir, a registry with the
//! built-ins, the `testkit` component (built from `tests/plugins/testkit` on first use)
//! installed with whatever manifest a test needs, and the `shoal` binary.

pub mod browser;
pub mod cluster;
pub mod flow;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use shoal_model::{OperatorPolicy, TaskState};
use shoal_runtime::{CompileCache, EngineConfig, PluginEngine, PluginRegistry, TaskIdentity};
use shoal_task_engine::{
    TaskEngine, TaskEngineConfig, TaskEvent, TaskReport, TaskRequest, WorkDirRetention,
};
use tokio_util::sync::CancellationToken;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The compiled `testkit` component, built once per test process.
pub fn testkit_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = repo_root();
        let target = root.join("target").join("wasm");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root.join("plugins"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "testkit",
                "--target-dir",
            ])
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("running cargo to build the testkit plugin");
        assert!(status.success(), "building the testkit plugin failed");
        target.join("wasm32-wasip2/release/testkit.wasm")
    })
}

/// `wasm` with a custom section appended: the same component, different bytes.
pub fn with_custom_section(wasm: &[u8], note: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"shoal-test-note";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// Write a plugin directory holding `wasm` and a manifest with the given
/// `[capabilities]` body.
pub fn plugin_dir(
    parent: &Path,
    id: &str,
    version: &str,
    wasm: &[u8],
    capabilities: &str,
) -> PathBuf {
    let dir = parent.join(format!("{id}-{version}-src"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{id}.wasm")), wasm).unwrap();
    std::fs::write(
        dir.join("shoal-plugin.toml"),
        format!(
            "id = \"{id}\"\nversion = \"{version}\"\nwit = \"0.1.0\"\ncomponent = \"{id}.wasm\"\n\n[capabilities]\n{capabilities}\n"
        ),
    )
    .unwrap();
    dir
}

/// A TaskEngine over a fresh data dir.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub engine: TaskEngine,
    next_id: std::sync::atomic::AtomicU64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_policy("")
    }

    pub fn with_policy(policy: &str) -> Self {
        Self::with_poll_interval(policy, Duration::from_millis(20))
    }

    /// A harness whose TaskEngine polls external jobs every `poll_interval`.
    pub fn with_poll_interval(policy: &str, poll_interval: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = OperatorPolicy::parse(policy, Path::new("test-policy.toml")).unwrap();
        let registry = Self::registry_in(dir.path(), policy);
        let engine = TaskEngine::new(
            registry,
            TaskEngineConfig {
                work_root: dir.path().join("work"),
                datasource_root: dir.path().join("datasources"),
                log_root: dir.path().join("logs"),
                poll_interval,
                // The tests look into finished tasks' work dirs.
                work_dirs: WorkDirRetention {
                    keep_succeeded: true,
                    ..Default::default()
                },
            },
        );
        Self {
            dir,
            engine,
            next_id: 1.into(),
        }
    }

    /// A harness whose TaskEngine runs tasks in containers of the given sizes.
    pub fn with_containers(shared: usize, exclusive: usize) -> Self {
        let mut h = Self::new();
        h.engine = h
            .engine
            .clone()
            .with_containers(shoal_task_engine::Containers::new(
                shoal_task_engine::ContainerConfig {
                    shared_slots: shared,
                    exclusive_slots: exclusive,
                },
            ));
        h
    }

    /// A registry with the built-ins, its store and cache under `root`.
    pub fn registry_in(root: &Path, policy: OperatorPolicy) -> Arc<PluginRegistry> {
        let engine = PluginEngine::new(&EngineConfig::default()).unwrap();
        let registry = PluginRegistry::new(
            engine,
            CompileCache::new(root.join("cache")),
            policy,
            root.join("plugins"),
        )
        .unwrap();
        for (manifest, wasm) in shoal_builtins::BUILTIN_PLUGINS {
            registry.add_builtin(manifest, wasm).unwrap();
        }
        registry.scan_store();
        Arc::new(registry)
    }

    pub fn registry(&self) -> &Arc<PluginRegistry> {
        self.engine.registry()
    }

    /// Install `testkit` with the given `[capabilities]` body.
    pub async fn install_testkit(&self, capabilities: &str) {
        let wasm = std::fs::read(testkit_wasm()).unwrap();
        let src = plugin_dir(self.dir.path(), "testkit", "0.1.0", &wasm, capabilities);
        self.registry()
            .install(&src)
            .await
            .expect("installing testkit");
    }

    pub fn request(&self, task_type: &str, params: serde_json::Value) -> TaskRequest {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TaskRequest {
            identity: TaskIdentity {
                workflow_instance_id: 0,
                task_instance_id: id,
                task_name: format!("t{id}"),
                attempt: 1,
            },
            ..TaskRequest::new(task_type, params)
        }
    }

    pub async fn run(&self, task_type: &str, params: serde_json::Value) -> TaskReport {
        self.run_request(self.request(task_type, params)).await.0
    }

    pub async fn run_request(&self, request: TaskRequest) -> (TaskReport, Vec<TaskEvent>) {
        self.run_with_cancel(request, CancellationToken::new())
            .await
    }

    pub async fn run_with_cancel(
        &self,
        request: TaskRequest,
        cancel: CancellationToken,
    ) -> (TaskReport, Vec<TaskEvent>) {
        let mut events = Vec::new();
        let report = self
            .engine
            .execute(request, cancel, |e| events.push(e.clone()))
            .await;
        (report, events)
    }
}

impl Harness {
    /// The in-process TaskExecutorClient over this harness's engine, for a master.
    pub fn in_process(&self) -> Arc<shoal_task_engine::LocalExecutor> {
        Arc::new(shoal_task_engine::LocalExecutor::new(
            self.engine.clone(),
            shoal_master::MasterConfig::default().host,
        ))
    }

    /// Run `request` and kill it `delay` after the first event that matches `when`
    /// (so the kill lands in the phase under test, however slow the machine is).
    pub async fn kill_after(
        &self,
        request: TaskRequest,
        delay: Duration,
        when: impl Fn(&TaskEvent) -> bool + Send + Sync,
    ) -> (TaskReport, Vec<TaskEvent>) {
        let cancel = CancellationToken::new();
        let killer = cancel.clone();
        let mut events = Vec::new();
        let report = self
            .engine
            .execute(request, cancel, |e| {
                if when(e) {
                    let killer = killer.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        killer.cancel();
                    });
                }
                events.push(e.clone());
            })
            .await;
        (report, events)
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

pub fn log_of(report: &TaskReport) -> String {
    std::fs::read_to_string(&report.log_path).unwrap_or_default()
}

pub fn out_param<'a>(report: &'a TaskReport, key: &str) -> Option<&'a str> {
    report
        .out_params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub fn assert_state(report: &TaskReport, state: TaskState) {
    assert_eq!(
        report.state,
        state,
        "message: {}\nlog:\n{}",
        report.message,
        log_of(report)
    );
}

/// Whether a process is still alive (a zombie awaiting its reaper counts as dead).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
    }
}

/// Host pids of live processes whose command line contains `needle`.
pub fn processes_matching(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| {
                            String::from_utf8_lossy(&c)
                                .replace('\0', " ")
                                .contains(needle)
                        })
                        .unwrap_or(false)
                        && process_alive(*pid)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every pid the host logged as started (`started `...` (pid N)`).
pub fn started_pids(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.split("(pid ").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The `shoal` binary of this build.
pub fn shoal_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/shoal
    let bin = exe.parent().unwrap().parent().unwrap().join("shoal");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p shoal`",
        bin.display()
    );
    bin
}
