//! `shoal bench subworkflow`: how soon a SubWorkflow task ends after its child run does.
//! The child is one Shell task sleeping 20 ms; each parent run is timed from its start
//! to its end, one run after another, on the shipped store settings.

use std::process::ExitCode;
use std::time::Instant;

use serde::Serialize;
use shoal_master::RunRequest;
use shoal_master::state::WorkflowState;

use crate::app::DataDir;
use crate::bench_engine::{BenchMaster, bench_master};
use crate::bench_server::percentile;

#[derive(Debug, Serialize)]
struct SubWorkflowFigures {
    database: String,
    runs: usize,
    /// Parent run start → end.
    parent_median_ms: f64,
    parent_p99_ms: f64,
    /// The child run alone (its stored start → end).
    child_median_ms: f64,
    /// How often the engine polls external jobs (`SHOAL_POLL_MS`), which a child's end
    /// no longer waits for.
    poll_interval_ms: u64,
}

const CHILD: &str = "workflow:\n  name: bench-child\ntasks:\n  - name: nap\n    task_type: Shell\n    command: sleep 0.02\n";
const PARENT: &str = "workflow:\n  name: bench-parent\ntasks:\n  - name: call\n    task_type: SubWorkflow\n    workflow_name: bench-child\n";

pub async fn run(
    runs: usize,
    json: bool,
    home: &DataDir,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let BenchMaster {
        scratch: _scratch,
        store,
        master,
        database,
    } = bench_master(home, db).await?;
    let mut parent_def = (0, 0);
    for yaml in [CHILD, PARENT] {
        let wf = shoal_workflow::load_str(yaml, std::path::Path::new("bench.yaml"))
            .map_err(|d| anyhow::anyhow!("{d}"))?
            .workflow;
        let saved = store
            .save_definition("default", &wf.name, &serde_json::to_value(&wf)?, yaml)
            .await?;
        parent_def = (saved.definition_id, saved.version);
    }
    let mut parent = Vec::with_capacity(runs);
    let mut child = Vec::with_capacity(runs);
    // One warm-up run: the Shell plugin compiles on first use.
    for i in 0..=runs {
        let started = Instant::now();
        let id = master
            .start(RunRequest::new(parent_def.0, parent_def.1))
            .await?;
        let state = master.wait(id).await?;
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            state == WorkflowState::Succeeded,
            "parent run {id} ended {state}"
        );
        let call = store.task_instances(id).await?;
        let child_id: i64 = call
            .first()
            .and_then(|t| t.handle.as_deref())
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("parent run {id} has no child"))?;
        let row = store
            .workflow_instance(child_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("child run {child_id} is not stored"))?;
        if i > 0 {
            parent.push(elapsed);
            child.push(
                (row.ended_at.unwrap_or_default() - row.started_at.unwrap_or_default()) as f64,
            );
        }
    }
    parent.sort_by(|a, b| a.total_cmp(b));
    child.sort_by(|a, b| a.total_cmp(b));
    let figures = SubWorkflowFigures {
        database,
        runs,
        parent_median_ms: percentile(&parent, 0.5),
        parent_p99_ms: percentile(&parent, 0.99),
        child_median_ms: percentile(&child, 0.5),
        poll_interval_ms: std::env::var("SHOAL_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500),
    };
    store.close().await;
    if json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "SubWorkflow benchmark on {}: {} runs of a parent over a 20 ms Shell child",
            figures.database, figures.runs
        );
        println!(
            "  parent run   median {:.1} ms, p99 {:.1} ms",
            figures.parent_median_ms, figures.parent_p99_ms
        );
        println!("  child run    median {:.1} ms", figures.child_median_ms);
        println!(
            "  poll interval {} ms (a child's end does not wait for it)",
            figures.poll_interval_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
