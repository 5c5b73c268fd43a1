//! Command-line definitions and dispatch.

mod plugins;
mod task;
mod validate;

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
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data = DataDir::resolve(cli.data_dir);
    let policy = cli.policy;
    match cli.command {
        Command::Plugins(cmd) => plugins::run(cmd, &data, policy.as_deref()).await,
        Command::Task(cmd) => task::run(cmd, &data, policy.as_deref()).await,
        Command::Validate { files } => validate::run(files, &data, policy.as_deref()).await,
        Command::Bench(cmd) => crate::bench::run(cmd, &data).await,
    }
}
