//! Command-line definitions and dispatch.

mod plugins;
mod task;
mod validate;
pub(crate) mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::DataDir;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A workflow scheduler whose task types are WebAssembly components"
)]
pub struct Cli {
    /// Data directory (plugin store, compile cache, logs, work dirs) [env: SHOAL_HOME]
    /// [default: ~/.shoal]
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Operator policy file narrowing plugin grants [default: <data dir>/policy.toml]
    #[arg(long, global = true, env = "SHOAL_POLICY")]
    pub policy: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://...` [default: <data dir>/shoal.db]
    #[arg(long, global = true, env = "SHOAL_DB")]
    pub db: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage task-type plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Run single tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Check workflow definition files; every problem is printed with file, line and
    /// field. Exits 1 if any file has a problem.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a workflow file to its end on the embedded engine, with live progress; exits
    /// 0 when it succeeds, 1 when it fails.
    Run(workflow::RunArgs),
    /// List workflow instances, newest first.
    Instances {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Only instances in this state (repeatable): running, succeeded, failed, ...
        #[arg(long)]
        state: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Inspect one workflow instance.
    #[command(subcommand)]
    Instance(workflow::InstanceCommand),
    /// Print a task instance's log.
    Logs { task_instance: i64 },
    /// Continue every instance left unfinished (after a crash), and resume instance ID if
    /// it is paused; waits until they settle.
    Resume {
        id: Option<i64>,
        #[command(flatten)]
        engine: workflow::EngineArgs,
    },
    /// Container occupancy and waiting tasks of the running engine.
    Status,
    #[command(flatten)]
    Operation(workflow::OperationCommand),
    /// Run the server: engine, scheduler and the HTTP API (/api/v1) in one process.
    Server(crate::server::config::ServerArgs),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data = DataDir::resolve(cli.data_dir);
    let policy = cli.policy;
    let db = cli.db.as_deref();
    match cli.command {
        Command::Plugins(cmd) => plugins::run(cmd, &data, policy.as_deref()).await,
        Command::Task(cmd) => task::run(cmd, &data, policy.as_deref()).await,
        Command::Validate { files } => validate::run(files, &data, policy.as_deref()).await,
        Command::Bench(cmd) => crate::bench::run(cmd, &data, db).await,
        Command::Server(args) => crate::server::run(args, &data, policy.as_deref(), db).await,
        Command::Run(args) => workflow::run(args, &data, policy.as_deref(), db).await,
        Command::Instances { limit, state, json } => {
            workflow::instances(&data, db, limit, &state, json).await
        }
        Command::Instance(cmd) => workflow::show(&data, db, cmd).await,
        Command::Logs { task_instance } => workflow::logs(&data, db, task_instance).await,
        Command::Resume { id, engine } => {
            workflow::resume(id, &engine, &data, policy.as_deref(), db).await
        }
        Command::Status => workflow::status(&data).await,
        Command::Operation(cmd) => workflow::operate(cmd, &data, policy.as_deref(), db).await,
    }
}
