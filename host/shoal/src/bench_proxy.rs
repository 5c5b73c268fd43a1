//! `shoal bench proxy`: three real `shoal server` clusters behind a real `shoal proxy`,
//! all child processes on 127.0.0.1, measured from outside in one run: the latency the
//! proxy adds to a request (against a cluster directly, interleaved), aggregated
//! instance listings over three clusters holding many instances each, and the time from
//! a cluster's loss to the first run rerouted.

use std::io::BufRead as _;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::{DataDir, open_store};
use crate::bench_server::{Running, check, hammer, percentile, wait_for_server};

#[derive(Debug, clap::Args)]
pub struct ProxyBench {
    /// Instances stored on each cluster before timing the listings.
    #[arg(long, default_value_t = 100_000)]
    pub instances: usize,
    /// Requests per timed phase.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The proxy's health interval, ms (the reroute time is bounded by it).
    #[arg(long, default_value_t = 1000)]
    pub health_ms: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct ProxyFigures {
    direct_p50_ms: f64,
    direct_p99_ms: f64,
    proxied_p50_ms: f64,
    proxied_p99_ms: f64,
    added_p50_ms: f64,
    added_p99_ms: f64,
    instances_per_cluster: i64,
    direct_list_per_s: f64,
    proxied_list_per_s: f64,
    proxied_list_p50_ms: f64,
    proxied_list_p99_ms: f64,
    reroute_ms: f64,
    health_interval_ms: u64,
}

const TOKEN: &str = "shoal_bench_cluster_token";
const ADMIN: &str = "shoal_bench_proxy_token";

pub async fn run(b: ProxyBench, home: &DataDir) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(home.root())?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-proxy-")
        .tempdir_in(home.root())?;
    let dir = scratch.path().to_path_buf();
    let exe = std::env::current_exe().context("finding the shoal binary")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency.max(4))
        .build()?;

    // Three clusters.
    let mut clusters = Vec::new();
    for i in 1..=3 {
        let data = dir.join(format!("c{i}"));
        std::fs::create_dir_all(&data)?;
        let mut child = std::process::Command::new(&exe)
            .arg("--data-dir")
            .arg(&data)
            .args(["server", "--port", "0"])
            .env("SHOAL_ADMIN_TOKEN", TOKEN)
            .env_remove("SHOAL_SERVER")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting shoal server")?;
        let url = wait_for_server(&data, &mut child).await?;
        clusters.push((format!("c{i}"), data, url, Some(Running(child))));
    }

    // The proxy, with c2 pinned for project `fail` (failover c3) to time a reroute.
    let proxy_dir = dir.join("proxy");
    std::fs::create_dir_all(&proxy_dir)?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut toml = format!(
        "port = {port}\nadmin-token = \"{ADMIN}\"\nhealth-interval-ms = {}\ndata-dir = \"{}\"\n",
        b.health_ms,
        proxy_dir.display()
    );
    for (name, _, url, _) in &clusters {
        let sealed = shoal_proxy::seal_token(&proxy_dir, name, TOKEN)?;
        toml.push_str(&format!(
            "[[clusters]]\nname = \"{name}\"\nurl = \"{url}\"\ntoken = \"{sealed}\"\n"
        ));
    }
    toml.push_str("[[routes]]\nproject = \"fail\"\npolicy = \"pinned\"\ncluster = \"c2\"\nfailover = [\"c3\"]\n");
    let config = proxy_dir.join("proxy.toml");
    std::fs::write(&config, toml)?;
    let mut child = std::process::Command::new(&exe)
        .args(["proxy", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting shoal proxy")?;
    let stdout = child.stdout.take().context("the proxy's stdout")?;
    let proxy_url = tokio::task::spawn_blocking(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.ok()?;
            if let Some(url) = line.strip_prefix("shoal proxy listening on ") {
                return Some(url.to_owned());
            }
        }
        None
    })
    .await?
    .context("the proxy did not start")?;
    let _proxy = Running(child);
    let proxy = format!("{proxy_url}/api/v1");
    let admin = format!("Bearer {ADMIN}");

    // Projects and a one-noop workflow, through the proxy (copied to every cluster).
    for project in ["bench", "fail"] {
        check(
            http.post(format!("{proxy}/projects"))
                .header("authorization", &admin)
                .json(&json!({"name": project}))
                .send()
                .await?,
        )
        .await?;
        check(
            http.post(format!("{proxy}/projects/{project}/definitions"))
                .header("authorization", &admin)
                .header("content-type", "application/yaml")
                .body("workflow:\n  name: one-noop\ntasks:\n  - name: a\n    task_type: noop\n")
                .send()
                .await?,
        )
        .await?;
        check(
            http.post(format!(
                "{proxy}/projects/{project}/definitions/one-noop/online"
            ))
            .header("authorization", &admin)
            .send()
            .await?,
        )
        .await?;
    }

    // 1. The latency the proxy adds: one instance read directly and through the proxy,
    // alternately, so both see the same machine at the same moment.
    let c1 = format!("{}/api/v1", clusters[0].2);
    let cluster_auth = format!("Bearer {TOKEN}");
    let launch = check(
        http.post(format!("{c1}/projects/bench/definitions/one-noop/runs"))
            .header("authorization", &cluster_auth)
            .json(&json!({}))
            .send()
            .await?,
    )
    .await?;
    let local = launch["instance"].as_i64().context("an instance id")?;
    let global = 1_000_000_000_000 + local;
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..b.requests {
        let t = Instant::now();
        check(
            http.get(format!("{c1}/instances/{local}"))
                .header("authorization", &cluster_auth)
                .send()
                .await?,
        )
        .await?;
        direct.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        check(
            http.get(format!("{proxy}/instances/{global}"))
                .header("authorization", &admin)
                .send()
                .await?,
        )
        .await?;
        proxied.push(t.elapsed().as_secs_f64() * 1e3);
    }
    direct.sort_by(|a, b| a.total_cmp(b));
    proxied.sort_by(|a, b| a.total_cmp(b));

    // 2. Many instances on every cluster, written straight into each store.
    let mut per_cluster = 0;
    for (_, data, _, _) in &clusters {
        let store = open_store(&DataDir::resolve(Some(data.clone())), None).await?;
        let def = store
            .definition_row("bench", "one-noop")
            .await?
            .context("the bench definition on a cluster")?;
        crate::bench_server::seed_instances(&store, &def, b.instances).await?;
        store.analyze().await?;
        per_cluster = store
            .instance_counts_by_state()
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum();
        store.close().await;
    }
    let list = |base: String, auth: String, global: bool| {
        let http = http.clone();
        move |i: usize| {
            let (http, base, auth) = (http.clone(), base.clone(), auth.clone());
            async move {
                let query = match i % 3 {
                    0 => "project=bench&limit=50".to_owned(),
                    1 => format!("project=bench&limit=50&offset={}", (i * 37) % 900),
                    _ => "project=bench&workflow=one-noop&state=failed&limit=50".to_owned(),
                };
                let v: Value = check(
                    http.get(format!("{base}/instances?{query}"))
                        .header("authorization", &auth)
                        .send()
                        .await?,
                )
                .await?;
                anyhow::ensure!(
                    !global || v.get("missing").is_none(),
                    "a cluster was missing from a listing: {}",
                    v["missing"]
                );
                Ok(())
            }
        }
    };
    let (direct_list_per_s, _) = hammer(
        b.requests,
        b.concurrency,
        list(c1.clone(), cluster_auth.clone(), false),
    )
    .await?;
    let (proxied_list_per_s, proxied_list) = hammer(
        b.requests,
        b.concurrency,
        list(proxy.clone(), admin.clone(), true),
    )
    .await?;

    // 3. c2 dies; how long until a run of its pinned project lands on c3.
    if let Some(mut r) = clusters[1].3.take() {
        let _ = r.0.kill();
        let _ = r.0.wait();
        // Reaped already: its drop must not signal a pid that may be reused.
        std::mem::forget(r);
    }
    let lost = Instant::now();
    let reroute_ms = loop {
        let v = check(
            http.post(format!("{proxy}/projects/fail/definitions/one-noop/runs"))
                .header("authorization", &admin)
                .json(&json!({}))
                .send()
                .await?,
        )
        .await?;
        let cluster = match (v["cluster"].as_str(), v["run"].as_str()) {
            (Some(c), _) if v["instance"].is_i64() => Some(c.to_owned()),
            (_, Some(key)) => {
                let mut placed = None;
                for _ in 0..200 {
                    let r = check(
                        http.get(format!("{proxy}/proxy-runs/{key}"))
                            .header("authorization", &admin)
                            .send()
                            .await?,
                    )
                    .await?;
                    if r["state"] == "placed" {
                        placed = r["cluster"].as_str().map(str::to_owned);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                placed
            }
            _ => None,
        };
        if cluster.as_deref() == Some("c3") {
            break lost.elapsed().as_secs_f64() * 1e3;
        }
        anyhow::ensure!(
            lost.elapsed() < Duration::from_secs(60),
            "no run was rerouted"
        );
    };

    let figures = ProxyFigures {
        direct_p50_ms: percentile(&direct, 0.5),
        direct_p99_ms: percentile(&direct, 0.99),
        proxied_p50_ms: percentile(&proxied, 0.5),
        proxied_p99_ms: percentile(&proxied, 0.99),
        added_p50_ms: percentile(&proxied, 0.5) - percentile(&direct, 0.5),
        added_p99_ms: percentile(&proxied, 0.99) - percentile(&direct, 0.99),
        instances_per_cluster: per_cluster,
        direct_list_per_s,
        proxied_list_per_s,
        proxied_list_p50_ms: percentile(&proxied_list, 0.5),
        proxied_list_p99_ms: percentile(&proxied_list, 0.99),
        reroute_ms,
        health_interval_ms: b.health_ms,
    };
    if b.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "proxy over 3 clusters ({} requests per phase, concurrency {})",
            b.requests, b.concurrency
        );
        println!(
            "  one instance read     direct p50 {:.2} ms p99 {:.2} ms; via proxy p50 {:.2} ms p99 {:.2} ms; added p50 {:.2} ms p99 {:.2} ms",
            figures.direct_p50_ms,
            figures.direct_p99_ms,
            figures.proxied_p50_ms,
            figures.proxied_p99_ms,
            figures.added_p50_ms,
            figures.added_p99_ms
        );
        println!(
            "  instance listings     {} per cluster: one cluster directly {:.0} req/s; 3 clusters via proxy {:.0} req/s (p50 {:.1} ms, p99 {:.1} ms)",
            figures.instances_per_cluster,
            figures.direct_list_per_s,
            figures.proxied_list_per_s,
            figures.proxied_list_p50_ms,
            figures.proxied_list_p99_ms
        );
        println!(
            "  cluster lost -> first run rerouted: {:.0} ms (health interval {} ms)",
            figures.reroute_ms, figures.health_interval_ms
        );
    }
    drop(clusters);
    Ok(ExitCode::SUCCESS)
}
