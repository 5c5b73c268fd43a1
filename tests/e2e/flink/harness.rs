//! What the Flink tests share: the cluster's address, a small Flink REST client for the
//! checks, a `shoal server` with the operator's Flink settings, and one test at a time
//! on the cluster (its slots are few).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use shoal_tests::server::{Client, Server, eventually};

pub const ADMIN: &str = "flink-admin-token-0123456789";
pub const PROJECT: &str = "streams";

/// One Flink test at a time: the cluster's four slots are shared by the whole run.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The test cluster, as `tests/flink/cluster.sh` exported it.
pub struct FlinkEnv {
    pub url: String,
    pub jobs: PathBuf,
    pub savepoints: PathBuf,
}

/// The cluster, or None (after a loud SKIPPED line) without one; under CI=true a
/// missing cluster fails the test.
pub fn flink_env(test: &str) -> Option<FlinkEnv> {
    match std::env::var("SHOAL_FLINK_URL") {
        Ok(url) if !url.is_empty() => Some(FlinkEnv {
            url,
            jobs: PathBuf::from(std::env::var("SHOAL_FLINK_JOBS").expect("SHOAL_FLINK_JOBS")),
            savepoints: PathBuf::from(
                std::env::var("SHOAL_FLINK_SAVEPOINTS").expect("SHOAL_FLINK_SAVEPOINTS"),
            ),
        }),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: no Flink cluster (SHOAL_FLINK_URL) under CI=true; tests/run.sh starts one"
            );
            eprintln!(
                "!! SKIPPED {test}: no Flink cluster (SHOAL_FLINK_URL unset; tests/run.sh starts one when Java is installed)"
            );
            None
        }
    }
}

impl FlinkEnv {
    /// The operator policy a Shoal node gets: the test cluster as `test` (the default),
    /// the test jars as the resource directory, the stand-in CDC dist jar, savepoints in
    /// the cluster's folder; HTTP to `http_port` on loopback.
    pub fn policy(&self, http_port: Option<u16>) -> String {
        let mut p = format!(
            "[flink]\ndefault-cluster = \"test\"\nresource-dir = {jobs:?}\ncdc-dist-jar = {cdc:?}\nsavepoint-dir = \"file://{sp}\"\n[flink.clusters.test]\nurl = \"{url}\"\nprojects = [\"{PROJECT}\"]\n",
            jobs = self.jobs.display().to_string(),
            cdc = self
                .jobs
                .join("flink-cdc-dist-standin.jar")
                .display()
                .to_string(),
            sp = self.savepoints.display(),
            url = self.url,
        );
        if let Some(port) = http_port {
            p.push_str(&format!(
                "[plugins.http]\nhttp-hosts = [\"127.0.0.1:{port}\"]\n"
            ));
        }
        p
    }

    pub fn rest(&self) -> FlinkRest {
        FlinkRest {
            url: self.url.clone(),
            http: reqwest::Client::new(),
        }
    }
}

/// Flink's own view, for the checks.
pub struct FlinkRest {
    url: String,
    http: reqwest::Client,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub state: String,
}

impl FlinkRest {
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// Every job the cluster knows (running and finished).
    pub async fn jobs(&self) -> Vec<Job> {
        let v = self.get("/jobs/overview").await;
        v["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|j| Job {
                id: j["jid"].as_str().unwrap_or_default().to_owned(),
                name: j["name"].as_str().unwrap_or_default().to_owned(),
                state: j["state"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// The jobs named `name`.
    pub async fn named(&self, name: &str) -> Vec<Job> {
        self.jobs()
            .await
            .into_iter()
            .filter(|j| j.name == name)
            .collect()
    }

    pub async fn state(&self, job: &str) -> String {
        self.get(&format!("/jobs/{job}")).await["state"]
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_owned()
    }

    /// Wait until job `job` is in `state`.
    pub async fn wait_state(&self, job: &str, state: &str) {
        eventually(
            &format!("Flink job {job} to be {state}"),
            Duration::from_secs(60),
            async || (self.state(job).await == state).then_some(()),
        )
        .await
    }

    /// The one job named `name` in `state`, once there is one.
    pub async fn one_named(&self, name: &str, state: &str) -> Job {
        eventually(
            &format!("a Flink job `{name}` in {state}"),
            Duration::from_secs(60),
            async || {
                self.named(name)
                    .await
                    .into_iter()
                    .find(|j| j.state == state)
            },
        )
        .await
    }

    /// The savepoint a job was started from, as Flink's checkpoint statistics say.
    pub async fn restored_from(&self, job: &str) -> Option<String> {
        let v = self.get(&format!("/jobs/{job}/checkpoints")).await;
        v["latest"]["restored"]["external_path"]
            .as_str()
            .map(str::to_owned)
    }

    /// Cancel whatever the test left running, so the next test has the slots.
    pub async fn cancel_all(&self, names: &[&str]) {
        for j in self.jobs().await {
            if names.contains(&j.name.as_str()) && !is_final(&j.state) {
                let _ = self
                    .http
                    .patch(format!("{}/jobs/{}?mode=cancel", self.url, j.id))
                    .send()
                    .await;
            }
        }
    }
}

pub fn is_final(state: &str) -> bool {
    matches!(state, "FINISHED" | "FAILED" | "CANCELED" | "SUSPENDED")
}

/// Cancels, when dropped (also when the test panics), every job of the names it was
/// given that still runs: a failed test must not keep the cluster's few slots from the
/// tests after it.
pub struct CancelOnDrop {
    url: String,
    names: Vec<String>,
}

impl CancelOnDrop {
    pub fn new(env: &FlinkEnv, names: &[&str]) -> Self {
        Self {
            url: env.url.clone(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(overview) = blocking_http(&self.url, "GET", "/jobs/overview") else {
            return;
        };
        let jobs: Value = serde_json::from_str(&overview).unwrap_or(Value::Null);
        for j in jobs["jobs"].as_array().into_iter().flatten() {
            let name = j["name"].as_str().unwrap_or_default();
            let state = j["state"].as_str().unwrap_or_default();
            if self.names.iter().any(|n| n == name) && !is_final(state) {
                let path = format!(
                    "/jobs/{}?mode=cancel",
                    j["jid"].as_str().unwrap_or_default()
                );
                blocking_http(&self.url, "PATCH", &path);
            }
        }
    }
}

/// One HTTP/1.0 request without a runtime (for `Drop`); the body of the answer.
fn blocking_http(base: &str, method: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let authority = base.strip_prefix("http://")?.trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// A unique job name for this test run.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// A `shoal server` over a fresh data dir with `policy`, and project [`PROJECT`] that
/// may run processes.
pub async fn server(policy: &str) -> (tempfile::TempDir, Server) {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("policy.toml"), policy).unwrap();
    let server = Server::start(data.path(), None, ADMIN).await;
    setup_project(&server.admin).await;
    (data, server)
}

pub async fn setup_project(admin: &Client) {
    admin
        .post("/api/v1/projects", json!({"name": PROJECT}))
        .await
        .expect(201);
    admin
        .send(
            admin
                .request(
                    reqwest::Method::PATCH,
                    &format!("/api/v1/projects/{PROJECT}/tenancy"),
                )
                .json(&json!({"allow_process": true})),
        )
        .await
        .expect(200);
}

/// Save `yaml` in the project, put it online and start a run; the instance id.
pub async fn start(c: &Client, yaml: &str) -> i64 {
    let saved = c.post_yaml(PROJECT, yaml).await.expect(201).json();
    let name = saved["name"].as_str().unwrap().to_owned();
    c.post_empty(&format!(
        "/api/v1/projects/{PROJECT}/definitions/{name}/online"
    ))
    .await
    .expect(200);
    let run = c
        .post(
            &format!("/api/v1/projects/{PROJECT}/definitions/{name}/runs"),
            json!({}),
        )
        .await
        .expect(201)
        .json();
    run["instance"].as_i64().unwrap()
}

/// The instance's task named `name` (its latest attempt).
pub async fn task(c: &Client, instance: i64, name: &str) -> Value {
    let d = shoal_tests::server::instance(c, instance).await;
    d["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["task_name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Wait until task `name` of `instance` is in `state`; returns it.
pub async fn task_in(c: &Client, instance: i64, name: &str, state: &str) -> Value {
    eventually(
        &format!("task `{name}` of instance {instance} to be {state}"),
        Duration::from_secs(90),
        async || {
            let t = task(c, instance, name).await;
            (t["state"] == state).then_some(t)
        },
    )
    .await
}

/// Wait until task `name` of `instance` runs with its job's handle stored.
pub async fn task_following(c: &Client, instance: i64, name: &str) -> Value {
    eventually(
        &format!("task `{name}` of instance {instance} to follow its job"),
        Duration::from_secs(90),
        async || {
            let t = task(c, instance, name).await;
            (t["state"] == "running" && t["handle"].is_string()).then_some(t)
        },
    )
    .await
}

/// The Flink job id in a task's handle.
pub fn job_of(task: &Value) -> String {
    let handle: Value = serde_json::from_str(task["handle"].as_str().expect("a handle")).unwrap();
    handle["job"].as_str().unwrap().to_owned()
}

/// A task's log as the API serves it.
pub async fn log(c: &Client, task: &Value) -> String {
    c.get(&format!("/api/v1/tasks/{}/log", task["id"]))
        .await
        .expect(200)
        .body
}

/// `shoal --server URL --token T ARGS...` (the CLI as an operator runs it).
pub fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(shoal_tests::shoal_bin())
        .args([
            "--server",
            &server.url,
            "--token",
            ADMIN,
            "--project",
            PROJECT,
        ])
        .args(args)
        .output()
        .unwrap()
}

pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A CDC pipeline whose stand-in job is named `name`.
pub fn pipeline(name: &str) -> String {
    format!(
        "source:\n  type: mysql\n  hostname: 127.0.0.1\n  username: cdc\n  password: ${{secret.MYSQL_PW}}\n  tables: app.\\.*\nsink:\n  type: values\nroute:\n  - source-table: app.orders\n    sink-table: ods.orders\npipeline:\n  name: {name}\n  parallelism: 1\n"
    )
}

/// Indent `text` by `n` spaces, for a YAML block scalar.
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}
