//! Workflows on the embedded engine: `shoal run FILE`, `shoal instances`, `shoal instance
//! show`, `shoal logs`, `shoal resume` and one command per instance operation.
//!
//! In embedded mode the CLI process *is* the engine: it takes `<data dir>/engine.lock`,
//! drives instances on the store, and exits when they settle. An operation given while
//! another process holds the lock is queued in the store's command table for that
//! engine, and the CLI waits for its verdict on the instance's event stream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{Local, NaiveDate, TimeZone};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use shoal_master::state::{TaskInstanceState, WorkflowState};
use shoal_master::{Master, Operation, Progress, RunRequest, StartTasks};
use shoal_store::{Store, TaskInstanceRow, WorkflowInstanceRow};

use super::validate::RegistryCatalog;
use crate::app::{DataDir, EngineLock, load_policy, open_registry, open_store};

/// Options every engine-driving command shares.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Print every task's log lines as they are written.
    #[arg(long, short)]
    pub verbose: bool,
    /// Slots of a task group, e.g. `--task-group etl=2` (repeatable).
    #[arg(long = "task-group", value_name = "NAME=SLOTS")]
    pub task_groups: Vec<String>,
    /// Server mode: process task types run only in projects an admin allowed.
    #[arg(skip)]
    pub server_mode: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The workflow file (YAML or JSON).
    pub file: PathBuf,
    /// Startup parameter `NAME=VALUE`; overrides every other value of NAME (repeatable).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Business date (YYYY-MM-DD) the run computes `$[...]` and `system.biz.*` from
    /// [default: now].
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Start from these tasks and run what follows them (repeatable).
    #[arg(long = "start-from", value_name = "TASK")]
    pub start_from: Vec<String>,
    /// Run only these tasks (repeatable).
    #[arg(long = "only", value_name = "TASK", conflicts_with = "start_from")]
    pub only: Vec<String>,
    /// Print the finished instance as JSON instead of progress lines and a table.
    #[arg(long)]
    pub json: bool,
    /// With --server: print the instance id and return without waiting.
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// One instance: its state and a timing table of its task attempts.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Follow an instance live until it finishes (with --server).
    Watch {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

/// Operations on an instance, each an event through the engine's state machine.
#[derive(Debug, Clone, Subcommand)]
pub enum OperationCommand {
    /// Stop an instance: running tasks are killed.
    Stop { id: i64 },
    /// Pause an instance: running tasks finish, nothing new starts.
    Pause { id: i64 },
    /// Run a finished instance again from scratch.
    Rerun {
        id: i64,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Rerun a failed or stopped instance's failed tasks and what they blocked.
    Recover {
        id: i64,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Mark a failed or killed task successful (then `recover` to run what follows).
    ForceSuccess { id: i64, task: String },
    /// Kill one running task.
    Kill { id: i64, task: String },
}

pub(crate) fn parse_pairs(
    pairs: &[String],
    what: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => bail!("{what} `{p}` is not NAME=VALUE"),
        })
        .collect()
}

/// The plugin registry an engine uses: one already opened, or one to open under a
/// policy file.
pub(crate) enum Registry<'a> {
    Open(std::sync::Arc<shoal_runtime::PluginRegistry>),
    Policy(Option<&'a Path>),
}

/// This process as the engine of the data dir's store (see [`shoal_node::Embedded`]).
pub(crate) type Embedded = shoal_node::Embedded;

pub(crate) async fn become_engine(
    data: &DataDir,
    registry: Registry<'_>,
    db: Option<&str>,
    args: &EngineArgs,
) -> anyhow::Result<Option<Embedded>> {
    let mut task_groups = BTreeMap::new();
    for (name, slots) in parse_pairs(&args.task_groups, "--task-group")? {
        let slots: usize = slots
            .parse()
            .with_context(|| format!("--task-group {name}: `{slots}` is not a number"))?;
        task_groups.insert(name, slots);
    }
    let config = shoal_node::EmbeddedConfig {
        database: db.map(str::to_owned),
        verbose: args.verbose,
        task_groups,
        server_mode: args.server_mode,
    };
    let engine = shoal_node::Embedded::start(data, &config, || match registry {
        Registry::Open(r) => Ok(r),
        Registry::Policy(policy) => open_registry(data, load_policy(data, policy)?),
    })
    .await?;
    if let Some(engine) = &engine
        && !args.server_mode
    {
        // The embedded engine opens the data dir's secrets and datasources as a server
        // does (a server installs its own, with its configured key file).
        let sealer =
            shoal_api::secrets::SecretBox::load_or_create(&data.root().join("secret.key"))?;
        engine.master.set_secret_source(std::sync::Arc::new(
            shoal_api::secrets::StoreSecrets::new(engine.master.store().clone(), sealer),
        ));
    }
    if let Some(engine) = &engine {
        // Another engine took over after this one stalled past its lease: acting on any
        // instance now could run tasks twice.
        let lost = engine.lease_watch();
        tokio::spawn(async move {
            shoal_node::embedded::wait_lost(lost).await;
            eprintln!("error: the engine lease was lost to another engine; stopping");
            std::process::exit(3);
        });
    }
    Ok(engine)
}

/// How this process is named in the engine lease: host and data dir.
pub(crate) fn engine_holder(data: &DataDir) -> String {
    shoal_node::engine_holder(data)
}

fn another_engine(data: &DataDir) -> anyhow::Error {
    anyhow::anyhow!(
        "another shoal process is the engine for {} (it holds engine.lock); wait for it to finish or use another --data-dir",
        data.root().display()
    )
}

/// Print each change of the instances `keep` accepts, as it is stored.
fn print_progress(master: &Master, keep: impl Fn(i64) -> bool + Send + 'static) {
    let mut updates = master.subscribe();
    let started = Instant::now();
    tokio::spawn(async move {
        let mut since: BTreeMap<(i64, String), Instant> = BTreeMap::new();
        loop {
            match updates.recv().await {
                Ok(Progress::Task {
                    instance,
                    task,
                    attempt,
                    state,
                    message,
                    ..
                }) if keep(instance) => {
                    let key = (instance, task.clone());
                    let elapsed = match state {
                        TaskInstanceState::Dispatched => {
                            since.insert(key, Instant::now());
                            String::new()
                        }
                        _ => since
                            .get(&key)
                            .map(|t| format!("{:.1}s", t.elapsed().as_secs_f64()))
                            .unwrap_or_default(),
                    };
                    let note = if message.is_empty() {
                        String::new()
                    } else {
                        format!("  {message}")
                    };
                    eprintln!(
                        "{:>7.1}s  #{instance} {task:<24} {:<14} attempt {attempt} {elapsed:>7}{note}",
                        started.elapsed().as_secs_f64(),
                        state.to_string(),
                    );
                }
                Ok(Progress::Workflow { instance, state }) if keep(instance) => {
                    eprintln!(
                        "{:>7.1}s  #{instance} workflow {state}",
                        started.elapsed().as_secs_f64()
                    );
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("          ({n} updates not shown)");
                }
                Err(_) => return,
            }
        }
    });
}

fn exit_for(state: WorkflowState) -> ExitCode {
    crate::cli::backend::exit_for(&state.to_string())
}

pub async fn run(
    args: RunArgs,
    data: &DataDir,
    policy: Option<&Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let loaded = match shoal_workflow::load_file(&args.file) {
        Ok(l) => l,
        Err(problems) => {
            eprintln!("{problems}");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let registry = open_registry(data, load_policy(data, policy)?)?;
    let catalog = RegistryCatalog::new(registry.clone());
    let problems = shoal_workflow::validate(&loaded, &catalog).await;
    if !problems.is_empty() {
        for p in problems {
            eprintln!("{p}");
        }
        return Ok(ExitCode::from(1));
    }
    let startup = parse_pairs(&args.params, "--param")?;
    let engine = become_engine(data, Registry::Open(registry), db, &args.engine)
        .await?
        .ok_or_else(|| another_engine(data))?;
    let master = engine.master.clone();
    let store = master.store().clone();

    // Workflows referenced with $WORKFLOW{...} are saved too, so SubWorkflow tasks find
    // them by name.
    for (name, (file, def)) in &loaded.referenced {
        let source = std::fs::read_to_string(file).unwrap_or_default();
        save(&store, def, &source)
            .await
            .with_context(|| format!("saving workflow `{name}` from {}", file.display()))?;
    }
    let source = std::fs::read_to_string(&args.file).unwrap_or_default();
    let (definition_id, version) = save(&store, &loaded.workflow, &source).await?;
    let unfinished = store.unfinished_instances().await?.len();
    if unfinished > 0 && !args.json {
        eprintln!(
            "note: {unfinished} unfinished instance(s) from an earlier run are left alone; `shoal resume` continues them"
        );
    }

    let mut run = RunRequest::new(definition_id, version);
    run.startup_params = startup;
    run.schedule_time = args.date.map(|d| {
        Local
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(shoal_store::now_ms)
    });
    run.start_tasks = if !args.start_from.is_empty() {
        StartTasks::WithDownstream(args.start_from.clone())
    } else if !args.only.is_empty() {
        StartTasks::Only(args.only.clone())
    } else {
        StartTasks::All
    };
    if !args.json {
        // Sub-workflow children show too: everything this process runs is ours.
        print_progress(&master, |_| true);
    }
    let id = master.start(run).await?;
    if !args.json {
        eprintln!(
            "workflow `{}` version {version}: instance {id}",
            loaded.workflow.name
        );
    }
    stop_on_ctrl_c(&master, id);
    let state = master.wait(id).await?;
    // Let the last progress lines print before the table.
    tokio::time::sleep(Duration::from_millis(20)).await;
    if args.json {
        print_json(&store, id).await?;
    } else {
        print_instance(&store, id).await?;
    }
    Ok(exit_for(state))
}

async fn save(
    store: &Store,
    def: &shoal_workflow::WorkflowDefinition,
    source: &str,
) -> anyhow::Result<(i64, i64)> {
    let project = def
        .project
        .as_deref()
        .unwrap_or(shoal_master::master::DEFAULT_PROJECT);
    let saved = store
        .save_definition(project, &def.name, &serde_json::to_value(def)?, source)
        .await?;
    Ok((saved.definition_id, saved.version))
}

/// First Ctrl-C stops the instance (its tasks are killed and it is stored as
/// stopped); a second one leaves at once.
fn stop_on_ctrl_c(master: &Master, id: i64) {
    let master = master.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping instance {id} (Ctrl-C again to leave at once)");
            let _ = master.operate(id, Operation::Stop).await;
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}

/// `shoal resume [ID]`: continue every instance a previous process left unfinished,
/// and resume instance ID if it is paused; wait until they settle.
pub async fn resume(
    id: Option<i64>,
    engine_args: &EngineArgs,
    data: &DataDir,
    policy: Option<&Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some(engine) = become_engine(data, Registry::Policy(policy), db, engine_args).await? else {
        return match id {
            Some(id) => queue(data, db, id, Operation::Resume).await,
            None => Err(another_engine(data)),
        };
    };
    let master = engine.master.clone();
    print_progress(&master, |_| true);
    let mut ids = master.recover_unfinished().await?;
    if let Some(id) = id {
        let row = master
            .store()
            .workflow_instance(id)
            .await?
            .with_context(|| format!("there is no workflow instance {id}"))?;
        if row.state == WorkflowState::Paused.to_string() {
            master.operate(id, Operation::Resume).await?;
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        println!("nothing to resume: every instance is finished or paused");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "continuing instance(s) {}",
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut code = ExitCode::SUCCESS;
    for id in ids {
        let state = master.wait(id).await?;
        println!("instance {id}: {state}");
        if exit_for(state) != ExitCode::SUCCESS {
            code = ExitCode::from(1);
        }
    }
    Ok(code)
}

pub async fn operate(
    cmd: OperationCommand,
    data: &DataDir,
    policy: Option<&Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let no_args = EngineArgs {
        verbose: false,
        task_groups: Vec::new(),
        server_mode: false,
    };
    let (id, op, args) = match cmd {
        OperationCommand::Stop { id } => (id, Operation::Stop, no_args),
        OperationCommand::Pause { id } => (id, Operation::Pause, no_args),
        OperationCommand::Rerun { id, engine } => (id, Operation::Rerun, engine),
        OperationCommand::Recover { id, engine } => (id, Operation::Recover, engine),
        OperationCommand::ForceSuccess { id, task } => {
            (id, Operation::ForceSuccess { task }, no_args)
        }
        OperationCommand::Kill { id, task } => (id, Operation::Kill { task }, no_args),
    };
    let Some(engine) = become_engine(data, Registry::Policy(policy), db, &args).await? else {
        return queue(data, db, id, op).await;
    };
    let master = engine.master.clone();
    if master.store().workflow_instance(id).await?.is_none() {
        bail!("there is no workflow instance {id}");
    }
    print_progress(&master, move |i| i == id);
    master
        .operate(id, op.clone())
        .await
        .with_context(|| format!("{op} on instance {id}"))?;
    eprintln!("{op}: done on instance {id}");
    let state = master.wait(id).await?;
    println!("instance {id}: {state}");
    Ok(ExitCode::SUCCESS)
}

/// Hand an operation to the engine process that holds the lock, and wait for its
/// verdict on the instance's event stream.
async fn queue(
    data: &DataDir,
    db: Option<&str>,
    id: i64,
    op: Operation,
) -> anyhow::Result<ExitCode> {
    let store = open_store(data, db).await?;
    if store.workflow_instance(id).await?.is_none() {
        bail!("there is no workflow instance {id}");
    }
    shoal_master::queue_operation(&store, id, &op, Duration::from_secs(60))
        .await
        .with_context(|| format!("{op} on instance {id}"))?;
    println!("{op}: accepted by the running engine");
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(
    data: &DataDir,
    db: Option<&str>,
    task_instance: i64,
) -> anyhow::Result<ExitCode> {
    let store = open_store(data, db).await?;
    let row = store
        .task_instance(task_instance)
        .await?
        .with_context(|| format!("there is no task instance {task_instance}"))?;
    let path = row
        .log_path
        .map(PathBuf::from)
        .unwrap_or_else(|| data.logs().join(format!("{}-{}.log", row.id, row.attempt)));
    let text = shoal_model::log::read_task_log(&path, row.id as u64).with_context(|| {
        format!(
            "task instance {task_instance} (`{}`, {}) has no log at {}",
            row.task_name,
            row.state,
            path.display()
        )
    })?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `shoal status`: what the running engine's containers hold and who waits.
pub async fn status(data: &DataDir) -> anyhow::Result<ExitCode> {
    if EngineLock::try_take(data)?.is_some() {
        println!("no engine is running for {}", data.root().display());
        return Ok(ExitCode::SUCCESS);
    }
    let path = data.root().join("status.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("the engine has not written {} yet", path.display()))?;
    let status: serde_json::Value = serde_json::from_str(&text)?;
    let c = &status["containers"];
    println!("engine pid {}", status["pid"]);
    for kind in ["shared", "exclusive"] {
        println!(
            "{kind:<10} {}/{} slots in use",
            c[kind]["used"], c[kind]["size"]
        );
    }
    for g in c["task_groups"].as_array().into_iter().flatten() {
        println!(
            "group {:<10} {}/{} slots in use",
            g["name"].as_str().unwrap_or(""),
            g["used"],
            g["size"]
        );
    }
    let waiting = c["waiting"].as_array().cloned().unwrap_or_default();
    println!("{} task(s) waiting", waiting.len());
    for w in waiting {
        println!(
            "  task instance {} `{}` ({} container, priority {})",
            w["task_instance_id"],
            w["task_name"].as_str().unwrap_or(""),
            w["container"].as_str().unwrap_or(""),
            w["priority"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn load(
    store: &Store,
    id: i64,
) -> anyhow::Result<(WorkflowInstanceRow, Vec<TaskInstanceRow>)> {
    let instance = store
        .workflow_instance(id)
        .await?
        .with_context(|| format!("there is no workflow instance {id}"))?;
    Ok((instance, store.task_instances(id).await?))
}

async fn print_json(store: &Store, id: i64) -> anyhow::Result<()> {
    let (instance, tasks) = load(store, id).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({"instance": instance, "tasks": tasks}))?
    );
    Ok(())
}

/// The instance and a timing table of its attempts, with a bar per attempt placed on
/// the instance's time line (a small Gantt chart).
async fn print_instance(store: &Store, id: i64) -> anyhow::Result<()> {
    let (instance, tasks) = load(store, id).await?;
    println!(
        "instance {} of `{}` version {}: {}  (business time {}, took {})",
        instance.id,
        instance.name,
        instance.version,
        instance.state,
        clock(instance.schedule_time),
        duration(instance.started_at, instance.ended_at)
    );
    let origin = instance
        .started_at
        .or_else(|| tasks.iter().filter_map(|t| t.started_at).min())
        .unwrap_or(instance.created_at);
    let end = tasks
        .iter()
        .filter_map(|t| t.ended_at.or(t.started_at))
        .chain(instance.ended_at)
        .max()
        .unwrap_or(origin)
        .max(origin + 1);
    const WIDTH: i64 = 30;
    let col = |t: i64| ((t - origin).max(0) * WIDTH / (end - origin)).min(WIDTH - 1);
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_header([
        "task inst",
        "task",
        "attempt",
        "state",
        "start",
        "duration",
        "timeline",
        "message",
    ]);
    for t in &tasks {
        let bar = match t.started_at {
            Some(s) => {
                let (a, b) = (col(s), col(t.ended_at.unwrap_or(end)));
                format!(
                    "{}{}{}",
                    " ".repeat(a as usize),
                    "█".repeat((b - a + 1) as usize),
                    " ".repeat((WIDTH - b - 1).max(0) as usize)
                )
            }
            None => " ".repeat(WIDTH as usize),
        };
        let mut message = t.message.replace('\n', " ");
        if message.chars().count() > 60 {
            message = message.chars().take(57).collect::<String>() + "...";
        }
        table.add_row([
            t.id.to_string(),
            t.task_name.clone(),
            t.attempt.to_string(),
            t.state.clone(),
            t.started_at
                .map(|s| format!("+{:.3}s", (s - origin) as f64 / 1000.0))
                .unwrap_or_default(),
            duration(t.started_at, t.ended_at),
            bar,
            message,
        ]);
    }
    println!("{table}");
    Ok(())
}

fn clock(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn duration(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.3}s", (e - s) as f64 / 1000.0),
        (Some(s), None) => format!("{:.1}s…", (shoal_store::now_ms() - s) as f64 / 1000.0),
        _ => String::new(),
    }
}
