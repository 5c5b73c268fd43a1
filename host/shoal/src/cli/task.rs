//! `shoal task`: run one task through the TaskEngine locally, and act on the external
//! jobs of workflow tasks (savepoint, stop, other actions, the job list), on the
//! embedded engine or, with `--server`, through the API.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;
use shoal_model::TaskState;
use shoal_runtime::TaskIdentity;
use shoal_task_engine::{TaskEvent, TaskRequest};
use tokio_util::sync::CancellationToken;

use serde_json::json;
use shoal_master::{Operation, queue_operation_for_message};
use shoal_protocol::CANCEL_ACTION;

use crate::app::{DataDir, load_policy, open_store, open_task_engine};

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one task and print its state, OUT parameters and log.
    Run {
        /// Task type, e.g. `shell` (case-insensitive).
        #[arg(long = "type")]
        task_type: String,
        /// Parameters as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Pin a plugin version.
        #[arg(long)]
        plugin_version: Option<semver::Version>,
        /// Fail the task after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// Task name shown in logs.
        #[arg(long, default_value = "task")]
        name: String,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take a savepoint of a task's running job (Flink, Flink CDC).
    Savepoint {
        /// Task instance id (`shoal instance show ID` lists them).
        task_instance: i64,
        /// Where Flink writes it (`file:///...`); default: the operator's Flink
        /// savepoint dir, else the cluster's own `state.savepoints.dir`.
        #[arg(long)]
        dir: Option<String>,
    },
    /// Stop a task's job: cancel it, or with --savepoint stop it with a savepoint first
    /// (a later restart can resume from it). A running task ends as killed.
    Stop {
        task_instance: i64,
        #[arg(long)]
        savepoint: bool,
        /// Where the savepoint goes (with --savepoint).
        #[arg(long, requires = "savepoint")]
        dir: Option<String>,
        /// Let the job drain its sources first (with --savepoint; Flink's `drain`).
        #[arg(long, requires = "savepoint")]
        drain: bool,
    },
    /// Carry out another action the task's type offers on its job.
    Action {
        task_instance: i64,
        action: String,
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
    },
    /// The project's tasks that hold an external job (newest first), including stream
    /// jobs whose task succeeded once they ran.
    Jobs {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

impl TaskCommand {
    /// The action and its options, for the commands that act on a job.
    pub fn action(&self) -> Option<(i64, String, serde_json::Value)> {
        let mut args = serde_json::Map::new();
        let action = match self {
            Self::Savepoint { task_instance, dir } => {
                if let Some(d) = dir {
                    args.insert("target-directory".into(), d.clone().into());
                }
                (*task_instance, "savepoint")
            }
            Self::Stop {
                task_instance,
                savepoint,
                dir,
                drain,
            } => {
                if !savepoint {
                    return Some((*task_instance, CANCEL_ACTION.into(), json!({})));
                }
                if let Some(d) = dir {
                    args.insert("target-directory".into(), d.clone().into());
                }
                if *drain {
                    args.insert("drain".into(), true.into());
                }
                (*task_instance, "stop-with-savepoint")
            }
            Self::Action {
                task_instance,
                action,
                args: pairs,
            } => {
                for (k, v) in crate::cli::workflow::parse_pairs(pairs, "--arg").ok()? {
                    args.insert(k, v.into());
                }
                (*task_instance, action.as_str())
            }
            Self::Run { .. } | Self::Jobs { .. } => return None,
        };
        Some((
            action.0,
            action.1.to_owned(),
            serde_json::Value::Object(args),
        ))
    }
}

/// Act on a task's job on the embedded engine: this process becomes the engine, or
/// hands the action to the one that is.
pub async fn act(
    task_instance: i64,
    action: &str,
    args: serde_json::Value,
    data: &DataDir,
    policy: Option<&Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let store = open_store(data, db).await?;
    let row = store
        .task_instance(task_instance)
        .await?
        .with_context(|| format!("there is no task instance {task_instance}"))?;
    let instance = row.workflow_instance_id;
    let engine_args = crate::cli::workflow::EngineArgs {
        verbose: false,
        task_groups: Vec::new(),
        server_mode: false,
    };
    let registry = crate::cli::workflow::Registry::Policy(policy);
    let message =
        match crate::cli::workflow::become_engine(data, registry, db, &engine_args).await? {
            Some(engine) => {
                engine
                    .master
                    .control(instance, &row.task_name, action, args)
                    .await
            }
            None => {
                let op = Operation::Control {
                    task: row.task_name.clone(),
                    action: action.to_owned(),
                    args,
                };
                queue_operation_for_message(&store, instance, &op, Duration::from_secs(660)).await
            }
        }
        .with_context(|| {
            format!(
                "{action} on task `{}` (task instance {task_instance})",
                row.task_name
            )
        })?;
    println!("{action}: {message}");
    Ok(ExitCode::SUCCESS)
}

/// The embedded store's external jobs of `project`.
pub async fn jobs(
    data: &DataDir,
    db: Option<&str>,
    project: &str,
    limit: i64,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(data, db).await?;
    let rows = store.external_jobs(project, limit).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_jobs(rows.into_iter().map(|r| {
        (
            r.id,
            r.workflow_instance_id,
            r.task_name,
            r.task_type,
            r.state,
            r.handle.unwrap_or_default(),
        )
    }));
    Ok(ExitCode::SUCCESS)
}

/// One line per job: task instance, workflow instance, task, type, state, handle.
pub fn print_jobs(rows: impl Iterator<Item = (i64, i64, String, String, String, String)>) {
    println!(
        "{:>8}  {:>8}  {:<20}  {:<10}  {:<10}  HANDLE",
        "TASK", "INSTANCE", "NAME", "TYPE", "STATE"
    );
    for (id, instance, name, task_type, state, handle) in rows {
        println!("{id:>8}  {instance:>8}  {name:<20}  {task_type:<10}  {state:<10}  {handle}");
    }
}

pub async fn run(
    cmd: TaskCommand,
    data: &DataDir,
    policy: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let TaskCommand::Run {
        task_type,
        params,
        plugin_version,
        timeout,
        name,
        json,
    } = cmd
    else {
        unreachable!("only `task run` is handled here");
    };
    let params: serde_json::Value = serde_json::from_str(&params)
        .with_context(|| format!("--params is not valid JSON: {params}"))?;
    anyhow::ensure!(
        params.is_object(),
        "--params must be a JSON object, got {params}"
    );
    let timeout = match timeout {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            anyhow::bail!("--timeout must be a positive number of seconds")
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let engine = open_task_engine(data, load_policy(data, policy)?)?;
    // Standalone tasks are numbered by start time; workflow tasks get store ids.
    let id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default();
    let request = TaskRequest {
        identity: TaskIdentity {
            workflow_instance_id: 0,
            task_instance_id: id,
            task_name: name,
            attempt: 1,
        },
        plugin_version,
        timeout,
        echo_log: !json,
        ..TaskRequest::new(task_type, params)
    };
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    let report = engine
        .execute(request, cancel, |event| {
            if !json && let TaskEvent::HandleAssigned { handle } = event {
                eprintln!("external job handle: {handle}");
            }
        })
        .await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("state: {}", report.state);
        if !report.message.is_empty() {
            println!("message: {}", report.message);
        }
        if let Some(v) = &report.plugin_version {
            println!("plugin version: {v}");
        }
        println!("elapsed: {} ms", report.elapsed.as_millis());
        if !report.out_params.is_empty() {
            println!("out-params:");
            for (k, v) in &report.out_params {
                println!("  {k} = {v}");
            }
        }
        println!("log: {}", report.log_path.display());
    }
    Ok(if report.state == TaskState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
