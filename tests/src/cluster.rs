//! A real cluster for the distributed-mode tests: `shoal master` and `shoal worker`
//! processes on 127.0.0.1 sharing a fresh PostgreSQL database, each with its own data
//! dir, that a test kills (SIGKILL), pauses (SIGSTOP / SIGCONT) and restarts; plus a
//! [`Recorder`], the HTTP endpoint tasks report each run to, whose file is the proof
//! that a task ran exactly once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::Client;
use crate::shoal_bin;

/// Heartbeat and lease of every test node: short, so failovers take seconds. Not
/// shorter: on a loaded 2-core machine PostgreSQL stalled a commit for 2.1 s, every
/// master of the cluster lost a 2 s lease at once, and nothing was left to finish the
/// test's workflow (a lost lease ends the process; no supervisor restarts it here).
pub const HEARTBEAT_MS: u64 = 200;
pub const LEASE_MS: u64 = 3_000;
const SECRET: &str = "cluster-test-secret-0123456789";
const ADMIN: &str = "cluster-admin-token-0123456789";
const START_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Worker,
}

/// One node process.
pub struct Node {
    pub name: String,
    pub role: Role,
    pub data: PathBuf,
    rpc_port: u16,
    /// Worker: `--group` values and `--slots`.
    groups: Vec<String>,
    slots: usize,
    child: Option<Child>,
    /// Master: its API URL while it runs.
    pub api: Option<String>,
}

/// A cluster on a fresh database. Dropping it kills every node and drops the database.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub db: String,
    db_name: String,
    pub nodes: BTreeMap<String, Node>,
    pub recorder: Recorder,
    testkit: PathBuf,
    /// The operator policy (TOML) every node started from now on gets as policy.toml.
    pub policy: Option<String>,
}

impl Cluster {
    /// None (and a loud SKIPPED line) without PostgreSQL, except under CI=true.
    pub async fn new() -> Option<Cluster> {
        let (db, db_name) = shoal_store::testing::fresh_pg().await?;
        let root = tempfile::tempdir().unwrap();
        let recorder = Recorder::start(root.path().join("ran.txt")).await;
        let testkit = testkit_source(root.path(), recorder.port);
        Some(Cluster {
            root,
            db,
            db_name,
            nodes: BTreeMap::new(),
            recorder,
            testkit,
            policy: None,
        })
    }

    fn node_dir(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn prepare(&self, data: &Path, extra_toml: &str) {
        if let Some(policy) = &self.policy {
            std::fs::write(data.join("policy.toml"), policy).unwrap();
        }
        // Every master seals and opens secrets and datasource passwords with one key,
        // as the README tells operators: whichever master owns a run must open them.
        let key = self.root.path().join("sealing.key");
        std::fs::write(
            data.join("server.toml"),
            format!(
                "secret_key_file = {key:?}\n[cluster]\nheartbeat_ms = {HEARTBEAT_MS}\nlease_ms = {LEASE_MS}\nrpc_timeout_ms = 2000\n{extra_toml}",
                key = key.display().to_string()
            ),
        )
        .unwrap();
        // Until workers fetch plugins from the store, every node has the testkit.
        let out = Command::new(shoal_bin())
            .arg("--data-dir")
            .arg(data)
            .args(["plugins", "install"])
            .arg(&self.testkit)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "installing the testkit in {}: {}",
            data.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start a master named `name`.
    pub async fn add_master(&mut self, name: &str) {
        let data = self.node_dir(name);
        self.prepare(&data, "");
        self.nodes.insert(
            name.to_owned(),
            Node {
                name: name.to_owned(),
                role: Role::Master,
                data,
                rpc_port: free_port(),
                groups: Vec::new(),
                slots: 0,
                child: None,
                api: None,
            },
        );
        self.start(name).await;
    }

    /// Start a worker named `name` serving `groups` with `slots`; `task_groups` sets
    /// task group sizes on it.
    pub async fn add_worker(
        &mut self,
        name: &str,
        groups: &[&str],
        slots: usize,
        task_groups: &str,
    ) {
        let data = self.node_dir(name);
        let extra = if task_groups.is_empty() {
            String::new()
        } else {
            format!("[task_groups]\n{task_groups}\n")
        };
        self.prepare(&data, &extra);
        self.nodes.insert(
            name.to_owned(),
            Node {
                name: name.to_owned(),
                role: Role::Worker,
                data,
                rpc_port: free_port(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                slots,
                child: None,
                api: None,
            },
        );
        self.start(name).await;
    }

    /// (Re)start node `name` under its name, data dir and RPC port.
    pub async fn start(&mut self, name: &str) {
        let db = self.db.clone();
        let node = self.nodes.get_mut(name).expect("a node of this cluster");
        assert!(node.child.is_none(), "{name} runs already");
        let status_file = node.data.join(match node.role {
            Role::Master => "server.json",
            Role::Worker => "worker.json",
        });
        let _ = std::fs::remove_file(&status_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.data.join("node.log"))
            .unwrap();
        let mut cmd = Command::new(shoal_bin());
        cmd.arg("--data-dir").arg(&node.data).arg("--db").arg(&db);
        let rpc = format!("127.0.0.1:{}", node.rpc_port);
        match node.role {
            Role::Master => {
                cmd.args([
                    "master",
                    "--port",
                    "0",
                    "--rpc-listen",
                    &rpc,
                    "--node-id",
                    name,
                ]);
            }
            Role::Worker => {
                cmd.args(["worker", "--rpc-listen", &rpc, "--node-id", name]);
                cmd.arg("--slots").arg(node.slots.to_string());
                for g in &node.groups {
                    cmd.arg("--group").arg(g);
                }
            }
        }
        cmd.env("SHOAL_CLUSTER_SECRET", SECRET)
            .env("SHOAL_ADMIN_TOKEN", ADMIN)
            .env("SHOAL_POLL_MS", "50")
            .env("RUST_LOG", "warn")
            .env_remove("SHOAL_CONFIG")
            .env_remove("SHOAL_PORT")
            .env_remove("SHOAL_SERVER")
            .env_remove("SHOAL_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd.spawn().expect("starting a shoal node");
        let pid = child.id();
        let deadline = Instant::now() + START_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{name} exited during start-up ({status}):\n{}",
                    tail(&node.log())
                );
            }
            if let Ok(text) = std::fs::read_to_string(&status_file)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["pid"].as_u64() == Some(pid as u64)
            {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not come up in time:\n{}",
                tail(&node.log())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        node.api = status["url"].as_str().map(str::to_owned);
        node.child = Some(child);
    }

    /// SIGKILL node `name` and reap it.
    pub fn kill(&mut self, name: &str) {
        let node = self.nodes.get_mut(name).expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.api = None;
    }

    /// Send `sig` (SIGSTOP, SIGCONT, ...) to node `name`.
    pub fn signal(&self, name: &str, sig: libc::c_int) {
        let node = &self.nodes[name];
        let pid = node.child.as_ref().expect("running").id();
        // SAFETY: kill(2) on a child we started and have not reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }

    /// Whether node `name`'s process has exited (reaping it if so); its exit code.
    pub fn exited(&mut self, name: &str) -> Option<Option<i32>> {
        let node = self.nodes.get_mut(name).expect("a node of this cluster");
        let child = node.child.as_mut()?;
        match child.try_wait().unwrap() {
            Some(status) => {
                node.child = None;
                node.api = None;
                Some(status.code())
            }
            None => None,
        }
    }

    /// An admin client of master `name`.
    pub fn api(&self, name: &str) -> Client {
        let url = self.nodes[name]
            .api
            .as_deref()
            .unwrap_or_else(|| panic!("master {name} is not running"));
        Client::new(url, Some(ADMIN))
    }

    /// The store, for what only it can tell (hosts, failover flags, owners).
    /// Instance `id` and its task attempts, one line each: short enough that a CI report,
    /// which keeps only part of a failure's output, still shows which task is stuck.
    pub async fn summary(&self, id: i64) -> String {
        let store = self.store().await;
        let mut out = match store.workflow_instance(id).await.unwrap() {
            Some(w) => format!(
                "instance {id} `{}` {} owner {:?} gen {} (parent task {:?})\n",
                w.name, w.state, w.owner, w.owner_gen, w.parent_task_instance_id
            ),
            None => format!("instance {id}: not stored\n"),
        };
        let tasks = store.task_instances(id).await.unwrap();
        for t in &tasks {
            out.push_str(&format!(
                "  task {} {}#{} {} on {:?} handle {:?} failover {}: {}\n",
                t.id, t.task_name, t.attempt, t.state, t.host, t.handle, t.failover, t.message
            ));
        }
        let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
        for child in store.child_instances(&ids).await.unwrap() {
            out.push_str(&format!(
                "  child instance {} {} owner {:?} gen {}\n",
                child.id, child.state, child.owner, child.owner_gen
            ));
        }
        let events = store.events(id).await.unwrap();
        for e in &events[events.len().saturating_sub(20)..] {
            out.push_str(&format!("  event {} {} {}\n", e.seq, e.kind, e.payload));
        }
        out
    }

    pub async fn store(&self) -> shoal_store::Store {
        shoal_store::Store::open(&self.db).await.unwrap()
    }

    /// Every node's log, for a failing test.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in self.nodes.values() {
            out.push_str(&format!("---- {} ----\n{}\n", node.name, tail(&node.log())));
        }
        out
    }

    /// The shell command that reports run `tag` to the recorder, after `sleep_s`.
    pub fn report(&self, tag: &str, sleep_s: f64) -> String {
        format!(
            "echo start {tag}; sleep {sleep_s}; curl -fsS -X POST {}/ran/{tag} >/dev/null; echo done {tag}",
            self.recorder.base()
        )
    }
}

impl Node {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("node.log")).unwrap_or_default()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for name in names {
            if self.nodes[&name].running() {
                self.signal(&name, libc::SIGCONT);
            }
            self.kill(&name);
        }
        let name = self.db_name.clone();
        // Dropped from a thread of its own: this may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(shoal_store::testing::drop_pg(&name));
        })
        .join();
    }
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(8_000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A port free right now on 127.0.0.1 (nodes keep theirs across restarts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The testkit, with a manifest that may reach the recorder.
fn testkit_source(root: &Path, recorder_port: u16) -> PathBuf {
    let wasm = std::fs::read(crate::testkit_wasm()).unwrap();
    crate::plugin_dir(
        root,
        "testkit",
        "0.1.0",
        &wasm,
        &format!("work-dir = true\nhttp-hosts = [\"127.0.0.1:{recorder_port}\"]"),
    )
}

/// An HTTP endpoint on 127.0.0.1 that appends the tag of every `/ran/TAG` request to a
/// file, one line per request: what tasks did, independent of what the store says.
pub struct Recorder {
    pub port: u16,
    file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(file: PathBuf) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        std::fs::write(&file, "").unwrap();
        let path = file.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    continue;
                };
                let path = path.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    if let Some(tag) = target.strip_prefix("/ran/") {
                        use std::io::Write as _;
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .open(&path)
                            .unwrap();
                        f.write_all(format!("{tag}\n").as_bytes()).unwrap();
                    }
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        Recorder { port, file, task }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many times each tag was reported.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for line in std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
        {
            *counts.entry(line.to_owned()).or_default() += 1;
        }
        counts
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
