//! `shoal bench chain|fanout|instances`: the workflow engine end to end, on the store's
//! shipped durability settings (SQLite WAL with `synchronous = NORMAL`, PostgreSQL with
//! `synchronous_commit` on), with real `noop` plugin tasks through the TaskEngine.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use shoal_master::state::WorkflowState;
use shoal_master::{Master, MasterConfig, RunRequest};
use shoal_model::OperatorPolicy;
use shoal_workflow::{TaskDefinition, WorkflowDefinition};

use crate::app::{DataDir, default_containers, open_registry, open_store, task_engine_for};

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct EngineFigures {
    pub bench: &'static str,
    pub database: String,
    pub tasks: usize,
    pub instances: usize,
    pub total_ms: f64,
    pub tasks_per_s: f64,
    pub peak_rss_mb: f64,
    /// Store batches of the timed run, and how many were stored while the instance
    /// worker decided the next one.
    pub batches: u64,
    pub batches_overlapped: u64,
}

/// The shape of workflow a benchmark runs.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// `tasks` noop tasks, each depending on the one before.
    Chain { tasks: usize },
    /// `tasks` independent noop tasks in one workflow.
    Fanout { tasks: usize },
    /// `count` concurrent instances of a three-task workflow (a; b and c after a).
    Instances { count: usize },
}

fn noop(name: String, deps: Vec<String>) -> TaskDefinition {
    serde_json::from_value(serde_json::json!({"name": name, "task_type": "noop", "deps": deps}))
        .expect("a noop task definition")
}

fn workflow(name: &str, tasks: Vec<TaskDefinition>) -> WorkflowDefinition {
    let mut wf: WorkflowDefinition =
        serde_json::from_value(serde_json::json!({"name": name, "tasks": []}))
            .expect("a workflow definition");
    wf.tasks = tasks;
    wf
}

/// Peak resident set of this process so far, in MiB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub async fn run(
    shape: Shape,
    home: &DataDir,
    db: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let figures = measure(shape, home, db).await?;
    if json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "{} benchmark on {}: {} tasks in {} instance(s)",
            figures.bench, figures.database, figures.tasks, figures.instances
        );
        println!("  total        {:.1} ms", figures.total_ms);
        println!("  throughput   {:.0} tasks/s", figures.tasks_per_s);
        println!("  peak RSS     {:.1} MiB", figures.peak_rss_mb);
        println!(
            "  batches      {} ({} stored while the next was decided)",
            figures.batches, figures.batches_overlapped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One timed run of `shape` on a fresh scratch store inside `home`.
pub(crate) async fn measure(
    shape: Shape,
    home: &DataDir,
    db: Option<&str>,
) -> anyhow::Result<EngineFigures> {
    let bench = bench_master(home, db).await?;
    let workload = bench.prepare(shape).await?;
    let figures = bench.run(&workload).await;
    bench.store.close().await;
    figures
}

/// A shape's definition, saved in a [`BenchMaster`]'s store and ready to run.
pub(crate) struct Workload {
    name: &'static str,
    definition_id: i64,
    version: i64,
    instances: usize,
    task_count: usize,
}

impl BenchMaster {
    /// Save `shape`'s definition (before any clock starts).
    pub(crate) async fn prepare(&self, shape: Shape) -> anyhow::Result<Workload> {
        let (name, definition, instances) = match shape {
            Shape::Chain { tasks } => {
                let list = (0..tasks)
                    .map(|i| {
                        let deps = if i == 0 {
                            vec![]
                        } else {
                            vec![format!("t{}", i - 1)]
                        };
                        noop(format!("t{i}"), deps)
                    })
                    .collect();
                ("chain", workflow("bench-chain", list), 1)
            }
            Shape::Fanout { tasks } => {
                let list = (0..tasks).map(|i| noop(format!("t{i}"), vec![])).collect();
                ("fanout", workflow("bench-fanout", list), 1)
            }
            Shape::Instances { count } => {
                let list = vec![
                    noop("a".into(), vec![]),
                    noop("b".into(), vec!["a".into()]),
                    noop("c".into(), vec!["a".into()]),
                ];
                ("instances", workflow("bench-instances", list), count)
            }
        };
        let saved = self
            .store
            .save_definition(
                "bench",
                &format!("{}-{}", definition.name, shoal_store::now_ms()),
                &serde_json::to_value(&definition)?,
                "",
            )
            .await?;
        Ok(Workload {
            name,
            definition_id: saved.definition_id,
            version: saved.version,
            instances,
            task_count: definition.tasks.len() * instances,
        })
    }

    /// Run `workload` once on this master, timed from the first start to the last end.
    pub(crate) async fn run(&self, workload: &Workload) -> anyhow::Result<EngineFigures> {
        let counted = self.master.batch_counts();
        let started = Instant::now();
        let mut ids = Vec::with_capacity(workload.instances);
        let starts = (0..workload.instances).map(|_| {
            let master = self.master.clone();
            let run = RunRequest {
                startup_params: BTreeMap::new(),
                ..RunRequest::new(workload.definition_id, workload.version)
            };
            async move { master.start(run).await }
        });
        for id in futures_join(starts).await {
            ids.push(id?);
        }
        for id in &ids {
            let state = self.master.wait(*id).await?;
            anyhow::ensure!(
                state == WorkflowState::Succeeded,
                "instance {id} ended {state}"
            );
        }
        let elapsed = started.elapsed();
        let batches = self.master.batch_counts();
        Ok(EngineFigures {
            batches: batches.stored - counted.stored,
            batches_overlapped: batches.overlapped - counted.overlapped,
            bench: workload.name,
            database: self.database.clone(),
            tasks: workload.task_count,
            instances: workload.instances,
            total_ms: elapsed.as_secs_f64() * 1e3,
            tasks_per_s: workload.task_count as f64 / elapsed.as_secs_f64(),
            peak_rss_mb: peak_rss_mb(),
        })
    }
}

/// A master over a scratch store, running tasks in-process with the default containers.
pub(crate) struct BenchMaster {
    /// Removed on drop.
    pub scratch: tempfile::TempDir,
    pub store: shoal_store::Store,
    pub master: Master,
    /// How the figures name the database.
    pub database: String,
}

/// A [`BenchMaster`] in a scratch data dir inside `home` (on `db` when given), with
/// `noop` compiled before any clock starts.
pub(crate) async fn bench_master(home: &DataDir, db: Option<&str>) -> anyhow::Result<BenchMaster> {
    // A scratch data dir inside the real one, so task logs land on the file system the
    // engine would use: plugins compile into its cache, SQLite lives in it unless `--db`
    // names another database. Removed afterwards.
    std::fs::create_dir_all(home.root())?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir_in(home.root())?;
    let data = DataDir::resolve(Some(scratch.path().to_path_buf()));
    let store = open_store(&data, db).await?;
    let database = match db {
        Some(url) => url.split('@').next_back().unwrap_or(url).to_owned(),
        None => "sqlite (WAL, synchronous=NORMAL)".to_owned(),
    };
    let registry = open_registry(&data, OperatorPolicy::default())?;
    // Compile noop before the clock starts: the figure is the engine, not cranelift.
    registry
        .resolve("noop", None)
        .await
        .context("loading the noop plugin")?;
    let tasks = task_engine_for(&data, registry).with_containers(default_containers());
    let config = MasterConfig::default();
    let executor = std::sync::Arc::new(shoal_task_engine::LocalExecutor::new(
        tasks,
        config.host.clone(),
    ));
    let master = Master::new(store.clone(), executor, config);
    Ok(BenchMaster {
        scratch,
        store,
        master,
        database,
    })
}

/// Start every run concurrently (they are independent) and collect the results in order.
async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("a benchmark run panicked"));
    }
    out
}
