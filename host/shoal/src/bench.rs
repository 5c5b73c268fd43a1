//! `shoal bench ...`: benchmarks that print figures (never timed tests).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Subcommand;
use serde::Serialize;
use shoal_model::{OperatorPolicy, PluginManifest};
use shoal_runtime::{
    CallLimits, CompileCache, EngineConfig, LoadedPlugin, PluginEngine, PluginRegistry, StartReply,
    TaskEnv, TaskIdentity,
};

use crate::app::DataDir;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Plugin runtime: compile time, cached load, noop instantiate+run latency, tasks/s.
    Plugins {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// noop tasks to time.
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Engine latency: a sequential chain of noop tasks, end to end (key `total_ms`).
    Chain {
        #[arg(long, default_value_t = 40)]
        tasks: usize,
        #[arg(long)]
        json: bool,
    },
    /// Engine throughput: one workflow of independent noop tasks (key `tasks_per_s`).
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        #[arg(long)]
        json: bool,
    },
    /// A SubWorkflow over a 20 ms Shell child, run after run: how soon the parent ends
    /// after its child (keys `parent_median_ms`, `parent_p99_ms`).
    Subworkflow {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Concurrent small workflow instances (three noop tasks each; key `total_ms`).
    Instances {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
    /// Distributed mode: a fan-out of noop tasks through real processes on one
    /// PostgreSQL database (--db), an embedded `shoal server` against one `shoal
    /// master` with 1, 2, 3 `shoal worker`s: tasks/s and CPU ms per task.
    Cluster {
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        /// Worker counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3])]
        workers: Vec<usize>,
        /// Slots of each worker.
        #[arg(long, default_value_t = 256)]
        slots: usize,
        #[arg(long)]
        json: bool,
    },
    /// A real Flink cluster: a Flink task's start to its job RUNNING, and the cost of one
    /// poll of a running job.
    Flink(crate::bench_flink::FlinkBench),
    /// Three real clusters behind a real `shoal proxy`: the latency the proxy adds,
    /// aggregated instance listings, the time from a cluster's loss to a rerouted run.
    Proxy(crate::bench_proxy::ProxyBench),
    /// Shoal beside Prefect in one run: Prefect's W1/W2 script, then Shoal's 40-task
    /// chain and 1,000-task fan-out; ratios of Prefect's best to Shoal's median.
    Peers(crate::bench_peers::PeersBench),
    /// A real `shoal server` over HTTP: idle memory, start-run and list-instances
    /// requests/s, cron fire → first task latency.
    Server {
        /// Instances stored before timing the list requests.
        #[arg(long, default_value_t = 100_000)]
        instances: usize,
        /// Requests per timed phase.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Cron fires (one a second) to time; the p99 of fewer than 100 is their worst.
        #[arg(long, default_value_t = 60)]
        fires: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct PluginFigures {
    compile_ms: f64,
    cached_load_ms: f64,
    noop_median_us: f64,
    noop_p99_us: f64,
    tasks_per_s: f64,
    iterations: usize,
    pooling_allocator: bool,
}

pub async fn run(cmd: BenchCommand, data: &DataDir, db: Option<&str>) -> anyhow::Result<ExitCode> {
    use crate::bench_engine::{Shape, run as engine};
    let (json, iterations) = match cmd {
        BenchCommand::Plugins { json, iterations } => (json, iterations),
        BenchCommand::Chain { tasks, json } => {
            anyhow::ensure!(tasks >= 1, "--tasks must be at least 1");
            return engine(Shape::Chain { tasks }, data, db, json).await;
        }
        BenchCommand::Fanout { tasks, json } => {
            anyhow::ensure!(tasks >= 1, "--tasks must be at least 1");
            return engine(Shape::Fanout { tasks }, data, db, json).await;
        }
        BenchCommand::Cluster {
            tasks,
            workers,
            slots,
            json,
        } => {
            anyhow::ensure!(
                tasks >= 1 && slots >= 1,
                "--tasks and --slots must be at least 1"
            );
            return crate::bench_cluster::run(
                crate::bench_cluster::ClusterBench {
                    tasks,
                    workers,
                    slots,
                    json,
                },
                data,
                db,
            )
            .await;
        }
        BenchCommand::Server {
            instances,
            requests,
            concurrency,
            fires,
            json,
        } => {
            anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
            let b = crate::bench_server::ServerBench {
                instances,
                requests,
                concurrency,
                fires,
                json,
            };
            return crate::bench_server::run(b, data, db).await;
        }
        BenchCommand::Flink(b) => return crate::bench_flink::run(b, data).await,
        BenchCommand::Peers(b) => return crate::bench_peers::run(b, data, db).await,
        BenchCommand::Proxy(b) => {
            anyhow::ensure!(b.concurrency >= 1, "--concurrency must be at least 1");
            return crate::bench_proxy::run(b, data).await;
        }
        BenchCommand::Subworkflow { runs, json } => {
            anyhow::ensure!(runs >= 1, "--runs must be at least 1");
            return crate::bench_subworkflow::run(runs, json, data, db).await;
        }
        BenchCommand::Instances { count, json } => {
            anyhow::ensure!(count >= 1, "--count must be at least 1");
            return engine(Shape::Instances { count }, data, db, json).await;
        }
    };
    anyhow::ensure!(iterations >= 100, "--iterations must be at least 100");
    let figures = tokio::task::spawn_blocking(move || bench_plugins(iterations)).await??;
    if json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "plugin runtime benchmark ({} noop tasks)",
            figures.iterations
        );
        println!("  pooling allocator      {}", figures.pooling_allocator);
        println!("  compile (cranelift)    {:.2} ms", figures.compile_ms);
        println!("  cached load            {:.3} ms", figures.cached_load_ms);
        println!(
            "  noop instantiate+run   median {:.1} µs, p99 {:.1} µs",
            figures.noop_median_us, figures.noop_p99_us
        );
        println!(
            "  throughput (one core)  {:.0} tasks/s",
            figures.tasks_per_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

fn bench_plugins(iterations: usize) -> anyhow::Result<PluginFigures> {
    // One thread drives everything: the figure is per core.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = PluginEngine::new(&EngineConfig::default())?;
    let (manifest_text, wasm) =
        shoal_builtins::find("noop").context("the noop plugin is not built in")?;
    PluginManifest::parse(manifest_text, Path::new("<built-in noop>"))?;
    let hash = shoal_runtime::cache::content_hash(wasm);

    let compile = (0..5)
        .map(|_| {
            CompileCache::disabled()
                .load(&engine, wasm, &hash)
                .map(|(_, r)| r.elapsed)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let scratch = tempfile::tempdir()?;
    let cache = CompileCache::new(scratch.path().join("cache"));
    cache
        .load(&engine, wasm, &hash)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cached = (0..50)
        .map(|_| cache.load(&engine, wasm, &hash).map(|(_, r)| r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        cached.iter().all(|r| r.cache_hit),
        "cached loads missed the cache"
    );
    let cached = cached.into_iter().map(|r| r.elapsed).collect();

    let registry = PluginRegistry::new(
        engine.clone(),
        cache,
        OperatorPolicy::default(),
        scratch.path().join("plugins"),
    )?;
    registry.add_builtin(manifest_text, wasm)?;
    let plugin: Arc<LoadedPlugin> = rt.block_on(registry.resolve("noop", None))?;
    let env = TaskEnv::new(
        TaskIdentity {
            task_name: "bench".into(),
            attempt: 1,
            ..Default::default()
        },
        serde_json::json!({}),
        scratch.path().to_path_buf(),
    );
    let limits = CallLimits::default();
    let mut samples = Vec::with_capacity(iterations);
    let total = rt.block_on(async {
        for _ in 0..iterations.min(1000) {
            plugin.start(&env, &limits).await?;
        }
        let started = Instant::now();
        for _ in 0..iterations {
            let t = Instant::now();
            let reply = plugin.start(&env, &limits).await?;
            samples.push(t.elapsed());
            anyhow::ensure!(
                matches!(reply, StartReply::Finished(_)),
                "noop did not finish"
            );
        }
        Ok::<_, anyhow::Error>(started.elapsed())
    })?;
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(PluginFigures {
        compile_ms: median_ms(compile),
        cached_load_ms: median_ms(cached),
        noop_median_us: us(samples[samples.len() / 2]),
        noop_p99_us: us(samples[samples.len() * 99 / 100]),
        tasks_per_s: iterations as f64 / total.as_secs_f64(),
        iterations,
        pooling_allocator: engine.is_pooling(),
    })
}
