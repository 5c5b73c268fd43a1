//! `shoal task run`: one task through the TaskEngine, locally.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Subcommand;
use shoal_model::TaskState;
use shoal_runtime::TaskIdentity;
use shoal_task_engine::{TaskEvent, TaskRequest};
use tokio_util::sync::CancellationToken;

use crate::app::{DataDir, load_policy, open_task_engine};

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
    } = cmd;
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
