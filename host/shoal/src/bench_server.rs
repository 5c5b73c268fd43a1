//! `shoal bench server`: a real `shoal server` process measured from outside, over HTTP
//! on 127.0.0.1 — memory when idle, requests/s for starting runs and for listing
//! instances with many stored, and the latency from a cron fire to its first task
//! running.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};
use shoal_api_types::instances::{InstancePage, LiveEvent};
use shoal_store::Write;

use crate::app::{DataDir, open_store};

#[derive(Debug, Serialize)]
struct ServerFigures {
    database: String,
    idle_rss_mb: f64,
    start_runs_per_s: f64,
    start_p50_ms: f64,
    start_p99_ms: f64,
    stored_instances: i64,
    list_per_s: f64,
    list_p50_ms: f64,
    list_p99_ms: f64,
    cron_fires: usize,
    cron_to_task_p50_ms: f64,
    cron_to_task_p99_ms: f64,
}

pub struct ServerBench {
    pub instances: usize,
    pub requests: usize,
    pub concurrency: usize,
    pub fires: usize,
    pub json: bool,
}

const TOKEN: &str = "shoal_bench_token";

/// A benchmark's child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM for a graceful stop; kill if it lingers.
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) async fn wait_for_server(dir: &Path, child: &mut Child) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("server.json"))
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && let Some(url) = v["url"].as_str()
        {
            return Ok(url.to_owned());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the server exited before listening ({status})");
        }
        if Instant::now() > deadline {
            bail!("the server did not start listening within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` requests from `concurrency` workers; returns (req/s, sorted latencies in ms).
pub(crate) async fn hammer<F, Fut>(
    n: usize,
    concurrency: usize,
    make: F,
) -> anyhow::Result<(f64, Vec<f64>)>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                make(i).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await??);
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    Ok((per_s, all))
}

/// `resp` when it succeeded (a stream to read on), else its error as text.
async fn check_status(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if !status.is_success() {
        bail!("HTTP {status}: {}", resp.text().await.unwrap_or_default());
    }
    Ok(resp)
}

pub(crate) async fn check(resp: reqwest::Response) -> anyhow::Result<Value> {
    let text = check_status(resp).await?.text().await?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Store `count` finished instances of `definition` (one a minute over the past, every
/// tenth failed), straight into the store, as history would be.
pub(crate) async fn seed_instances(
    store: &shoal_store::Store,
    definition: &shoal_store::DefinitionRow,
    count: usize,
) -> anyhow::Result<()> {
    let base = shoal_store::now_ms() - 86_400_000 * 400;
    for chunk in (0..count).collect::<Vec<_>>().chunks(2000) {
        let writes = chunk
            .iter()
            .map(|i| Write::InsertWorkflowInstance {
                definition_id: definition.id,
                version: definition.current_version,
                name: definition.name.clone(),
                state: if i % 10 == 0 { "failed" } else { "succeeded" }.to_owned(),
                schedule_time: base + *i as i64 * 60_000,
                startup_params: json!({}),
                start_tasks: json!({"mode": "all"}),
                parent_task_instance_id: None,
                owner: None,
                owner_gen: 0,
                idempotency_key: None,
            })
            .collect();
        store.write(writes).await?;
    }
    Ok(())
}

pub async fn run(b: ServerBench, home: &DataDir, db: Option<&str>) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(home.root())?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-server-")
        .tempdir_in(home.root())?;
    let dir = scratch.path().to_path_buf();
    // Keep the data dir for a look afterwards (query plans, logs).
    let _scratch = if std::env::var_os("SHOAL_BENCH_KEEP").is_some() {
        eprintln!("keeping {}", dir.display());
        let _ = scratch.keep();
        None
    } else {
        Some(scratch)
    };
    let exe = std::env::current_exe().context("finding the shoal binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--data-dir").arg(&dir);
    if let Some(url) = db {
        cmd.arg("--db").arg(url);
    }
    let mut child = cmd
        .args(["server", "--port", "0"])
        .env("SHOAL_ADMIN_TOKEN", TOKEN)
        .env_remove("SHOAL_SERVER")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting shoal server")?;
    let url = wait_for_server(&dir, &mut child).await?;
    let pid = child.id();
    let _server = Running(child);
    let api = format!("{url}/api/v1");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency)
        .build()?;
    let auth = format!("Bearer {TOKEN}");

    // Idle: started, recovered, nothing to do.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss_mb = rss_mb(pid);

    check(
        http.post(format!("{api}/projects"))
            .header("authorization", &auth)
            .json(&json!({"name": "bench"}))
            .send()
            .await?,
    )
    .await?;
    let yaml = "workflow:\n  name: one-noop\ntasks:\n  - name: a\n    task_type: noop\n";
    check(
        http.post(format!("{api}/projects/bench/definitions"))
            .header("authorization", &auth)
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await?,
    )
    .await?;
    check(
        http.post(format!("{api}/projects/bench/definitions/one-noop/online"))
            .header("authorization", &auth)
            .send()
            .await?,
    )
    .await?;

    // Starting runs.
    let (start_runs_per_s, start_lat) = {
        let (http, api, auth) = (http.clone(), api.clone(), auth.clone());
        hammer(b.requests, b.concurrency, move |_| {
            let (http, api, auth) = (http.clone(), api.clone(), auth.clone());
            async move {
                check(
                    http.post(format!("{api}/projects/bench/definitions/one-noop/runs"))
                        .header("authorization", &auth)
                        .json(&json!({}))
                        .send()
                        .await?,
                )
                .await
                .map(|_| ())
            }
        })
        .await?
    };

    // Many stored instances, written straight into the store (as history would be).
    let store = open_store(&DataDir::resolve(Some(dir.clone())), db).await?;
    let definition = store
        .definition_row("bench", "one-noop")
        .await?
        .context("the bench definition")?;
    let already: i64 = store
        .instance_counts_by_state()
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let to_add = b.instances.saturating_sub(already as usize);
    seed_instances(&store, &definition, to_add).await?;
    // Fresh statistics after a bulk load, as autovacuum (PostgreSQL) would gather and an
    // operator would after an import; the planner needs them to pick the indexes.
    store.analyze().await?;
    let stored_instances: i64 = store
        .instance_counts_by_state()
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let newest = store
        .find_instances(&Default::default(), 1, 0)
        .await?
        .rows
        .first()
        .map_or(0, |r| r.id + 1);
    store.close().await;

    let (list_per_s, list_lat) = {
        let (http, api, auth) = (http.clone(), api.clone(), auth.clone());
        hammer(b.requests, b.concurrency, move |i| {
            let (http, api, auth) = (http.clone(), api.clone(), auth.clone());
            async move {
                // Alternate the first page, a deep page and a state filter.
                let query = match i % 3 {
                    0 => "project=bench&limit=50".to_owned(),
                    // A deep page by keyset: what a client following `next_before`
                    // asks for, anywhere in the newest 50,000.
                    1 => format!(
                        "project=bench&limit=50&before={}",
                        newest - ((i * 97) % 50_000) as i64
                    ),
                    _ => "project=bench&workflow=one-noop&state=failed&limit=50".to_owned(),
                };
                check(
                    http.get(format!("{api}/instances?{query}"))
                        .header("authorization", &auth)
                        .send()
                        .await?,
                )
                .await
                .map(|_| ())
            }
        })
        .await?
    };

    // Cron fire → first task running, as a client sees it: the time the task's
    // `running` event arrives on the live stream (sent once that state is stored),
    // minus the fire's nominal time.
    let running_seen = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<i64, i64>::new()));
    let mut stream = check_status(
        http.get(format!("{api}/events?project=bench"))
            .header("authorization", &auth)
            .send()
            .await?,
    )
    .await?;
    let watcher = tokio::spawn({
        let seen = running_seen.clone();
        async move {
            let mut pending = String::new();
            while let Ok(Some(chunk)) = stream.chunk().await {
                let at = shoal_store::now_ms();
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    if let Ok(LiveEvent::Task {
                        instance, state, ..
                    }) = serde_json::from_str(data.trim())
                        && state == "running"
                    {
                        seen.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(instance)
                            .or_insert(at);
                    }
                }
            }
        }
    });
    check(
        http.put(format!(
            "{api}/projects/bench/definitions/one-noop/schedule"
        ))
        .header("authorization", &auth)
        .json(&json!({"cron": "* * * * * ?"}))
        .send()
        .await?,
    )
    .await?;
    let since = shoal_store::now_ms();
    tokio::time::sleep(Duration::from_millis(1000 * b.fires as u64 + 1500)).await;
    check(
        http.post(format!(
            "{api}/projects/bench/definitions/one-noop/schedule/offline"
        ))
        .header("authorization", &auth)
        .send()
        .await?,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    watcher.abort();
    let page: InstancePage = serde_json::from_value(
        check(
            http.get(format!(
                "{api}/instances?project=bench&from={since}&limit=1000"
            ))
            .header("authorization", &auth)
            .send()
            .await?,
        )
        .await?,
    )?;
    let seen = running_seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut cron_lat: Vec<f64> = page
        .items
        .iter()
        .filter_map(|run| Some((seen.get(&run.id)? - run.schedule_time) as f64))
        .collect();
    cron_lat.sort_by(|a, b| a.total_cmp(b));

    let figures = ServerFigures {
        database: match db {
            Some(url) => url.split('@').next_back().unwrap_or(url).to_owned(),
            None => "sqlite (WAL, synchronous=NORMAL)".into(),
        },
        idle_rss_mb,
        start_runs_per_s,
        start_p50_ms: percentile(&start_lat, 0.5),
        start_p99_ms: percentile(&start_lat, 0.99),
        stored_instances,
        list_per_s,
        list_p50_ms: percentile(&list_lat, 0.5),
        list_p99_ms: percentile(&list_lat, 0.99),
        cron_fires: cron_lat.len(),
        cron_to_task_p50_ms: percentile(&cron_lat, 0.5),
        cron_to_task_p99_ms: percentile(&cron_lat, 0.99),
    };
    if b.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        let f = &figures;
        println!(
            "server benchmark on {} ({} concurrent clients)",
            f.database, b.concurrency
        );
        println!("  idle RSS                 {:.1} MiB", f.idle_rss_mb);
        println!(
            "  start runs               {:.0} req/s (p50 {:.1} ms, p99 {:.1} ms)",
            f.start_runs_per_s, f.start_p50_ms, f.start_p99_ms
        );
        println!(
            "  list instances ({} stored) {:.0} req/s (p50 {:.1} ms, p99 {:.1} ms)",
            f.stored_instances, f.list_per_s, f.list_p50_ms, f.list_p99_ms
        );
        println!(
            "  cron fire → task running p50 {:.0} ms, p99 {:.0} ms ({} fires)",
            f.cron_to_task_p50_ms, f.cron_to_task_p99_ms, f.cron_fires
        );
    }
    Ok(ExitCode::SUCCESS)
}
