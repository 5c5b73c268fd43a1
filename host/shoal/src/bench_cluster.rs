//! `shoal bench cluster`: one workflow of independent noop tasks through real
//! processes on 127.0.0.1 and one PostgreSQL database — first an embedded `shoal
//! server`, then one `shoal master` with one, two and three `shoal worker`s — timed from
//! the run's start to its end, with the CPU every process used.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::DataDir;
use crate::bench_server::Running as Proc;

pub struct ClusterBench {
    pub tasks: usize,
    pub workers: Vec<usize>,
    pub slots: usize,
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Figure {
    setup: String,
    workers: usize,
    tasks: usize,
    seconds: f64,
    tasks_per_s: f64,
    /// Of `seconds`, how long the start request took (the instance and its task rows
    /// are stored before it answers).
    launch_s: f64,
    /// CPU time of every process of the setup (user + system) per task.
    cpu_ms_per_task: f64,
}

const TOKEN: &str = "shoal_bench_cluster_token";
const SECRET: &str = "shoal-bench-cluster-secret-0123456789";

/// User + system CPU of `pid` so far, in ms (clock ticks of 10 ms, as on Linux).
fn cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; here 11 and 12 (0-based, after ')').
    (ticks(11) + ticks(12)) * 10.0
}

fn spawn(exe: &Path, data: &Path, db: &str, args: &[String]) -> anyhow::Result<Proc> {
    std::fs::create_dir_all(data)?;
    let child = std::process::Command::new(exe)
        .arg("--data-dir")
        .arg(data)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("SHOAL_ADMIN_TOKEN", TOKEN)
        .env("SHOAL_CLUSTER_SECRET", SECRET)
        .env_remove("SHOAL_SERVER")
        .env_remove("SHOAL_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting shoal {}", args.join(" ")))?;
    Ok(Proc(child))
}

/// Wait until the node writes `file` (server.json / worker.json) naming its pid.
async fn ready(data: &Path, file: &str, proc: &mut Proc) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(data.join(file))
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && v["pid"].as_u64() == Some(u64::from(proc.0.id()))
        {
            return Ok(v);
        }
        if let Some(status) = proc.0.try_wait()? {
            bail!("a node exited during start-up ({status})");
        }
        if Instant::now() > deadline {
            bail!("a node did not start within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() && status.as_u16() != 409 {
            bail!("HTTP {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }
}

/// Run the fan-out once on the server at `base`; `pids` are every process of the setup.
async fn measure(
    base: &str,
    pids: &[u32],
    setup: &str,
    workers: usize,
    tasks: usize,
) -> anyhow::Result<Figure> {
    let api = Api {
        http: reqwest::Client::new(),
        base: base.to_owned(),
    };
    api.call(
        api.http
            .post(api.url("/projects"))
            .json(&json!({"name": "bench"})),
    )
    .await?;
    let name = format!("fanout-{setup}-{}", shoal_store::now_ms());
    let mut yaml = format!("workflow:\n  name: {name}\ntasks:\n");
    for i in 0..tasks {
        yaml.push_str(&format!("  - name: t{i}\n    task_type: noop\n"));
    }
    api.call(
        api.http
            .post(api.url("/projects/bench/definitions"))
            .header("content-type", "application/yaml")
            .body(yaml),
    )
    .await?;
    api.call(
        api.http
            .post(api.url(&format!("/projects/bench/definitions/{name}/online"))),
    )
    .await?;
    let cpu_before: f64 = pids.iter().map(|p| cpu_ms(*p)).sum();
    let started = Instant::now();
    let launch = api
        .call(
            api.http
                .post(api.url(&format!("/projects/bench/definitions/{name}/runs")))
                .json(&json!({})),
        )
        .await?;
    let launch_s = started.elapsed().as_secs_f64();
    let id = launch["instance"]
        .as_i64()
        .with_context(|| format!("the run did not start: {launch}"))?;
    // The instance list, not the instance's detail: the detail carries every task row
    // (10,000 here), and reading it ten times a second would load the node under test
    // as much as the run does.
    let poll = format!("/instances?project=bench&workflow={name}&limit=1");
    loop {
        let page = api.call(api.http.get(api.url(&poll))).await?;
        let d = &page["items"][0];
        if d["id"].as_i64() != Some(id) {
            bail!("the run {id} is not the newest of {name}: {page}");
        }
        match d["state"].as_str().unwrap_or_default() {
            "succeeded" => break,
            "failed" | "stopped" | "paused" => bail!("the fan-out ended {}", d["state"]),
            _ => {}
        }
        // Often enough that the poll adds little to a run of a couple of seconds; the
        // list query is cheap.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu: f64 = pids.iter().map(|p| cpu_ms(*p)).sum::<f64>() - cpu_before;
    Ok(Figure {
        setup: setup.to_owned(),
        workers,
        tasks,
        seconds,
        tasks_per_s: tasks as f64 / seconds,
        launch_s,
        cpu_ms_per_task: cpu / tasks as f64,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn run(b: ClusterBench, home: &DataDir, db: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(db) = db.filter(|u| u.starts_with("postgres")) else {
        bail!("`shoal bench cluster` needs --db postgres://... (a cluster shares PostgreSQL)");
    };
    std::fs::create_dir_all(home.root())?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-cluster-")
        .tempdir_in(home.root())?;
    let root: PathBuf = scratch.path().to_path_buf();
    let exe = std::env::current_exe().context("finding the shoal binary")?;
    let mut figures = Vec::new();

    {
        let data = root.join("embedded");
        let mut server = spawn(
            &exe,
            &data,
            db,
            &["server".into(), "--port".into(), "0".into()],
        )?;
        let info = ready(&data, "server.json", &mut server).await?;
        let url = info["url"].as_str().unwrap_or_default().to_owned();
        figures.push(measure(&url, &[server.0.id()], "embedded", 0, b.tasks).await?);
    }
    for &k in &b.workers {
        let setup = format!("cluster-{k}");
        let mdata = root.join(format!("{setup}-master"));
        let rpc = format!("127.0.0.1:{}", free_port()?);
        let mut master = spawn(
            &exe,
            &mdata,
            db,
            &[
                "master".into(),
                "--port".into(),
                "0".into(),
                "--rpc-listen".into(),
                rpc,
                "--node-id".into(),
                format!("bench-master-{k}"),
            ],
        )?;
        let info = ready(&mdata, "server.json", &mut master).await?;
        let url = info["url"].as_str().unwrap_or_default().to_owned();
        let mut nodes = vec![master];
        for w in 0..k {
            let wdata = root.join(format!("{setup}-worker-{w}"));
            let rpc = format!("127.0.0.1:{}", free_port()?);
            let mut worker = spawn(
                &exe,
                &wdata,
                db,
                &[
                    "worker".into(),
                    "--rpc-listen".into(),
                    rpc,
                    "--node-id".into(),
                    format!("bench-worker-{k}-{w}"),
                    "--slots".into(),
                    b.slots.to_string(),
                ],
            )?;
            ready(&wdata, "worker.json", &mut worker).await?;
            nodes.push(worker);
        }
        // The master places tasks on workers it has seen in the registry.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pids: Vec<u32> = nodes.iter().map(|n| n.0.id()).collect();
        figures.push(measure(&url, &pids, &setup, k, b.tasks).await?);
        drop(nodes);
        // The next setup's master must not see these workers as live.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    if b.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "fan-out of {} noop tasks on {} (workers with {} slots)",
            b.tasks,
            db.split('@').next_back().unwrap_or(db),
            b.slots
        );
        for f in &figures {
            println!(
                "  {:<10} {:>8.0} tasks/s  {:>6.2} s (start {:.2} s)  {:>6.3} CPU ms/task",
                f.setup, f.tasks_per_s, f.seconds, f.launch_s, f.cpu_ms_per_task
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
