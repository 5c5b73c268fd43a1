//! `shoal bench peers`: Shoal beside Prefect in one run. Prefect's own script
//! (`../shared/bench/prefect.sh`: W1 = 40 sequential tasks, W2 = 1,000 independent tasks,
//! on its ephemeral SQLite server) runs first; Shoal's chain and fan-out benches run right
//! after on the same machine, and the ratios compare Prefect's *best* repetition with
//! Shoal's *median*, so noise never flatters Shoal.
//!
//! Both sides run alike: Prefect's script times each flow in one process against one
//! server, after a warm-up of that flow; Shoal's repetitions of a workload likewise run
//! on one engine (store, master, TaskEngine) after a warm-up run on it. `shoal bench
//! chain` and `fanout` time a fresh engine's first run instead.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use crate::app::DataDir;
use crate::bench_engine::{Shape, bench_master};

#[derive(Debug, clap::Args)]
pub struct PeersBench {
    /// Prefect's benchmark script.
    #[arg(long, default_value = "../shared/bench/prefect.sh")]
    pub prefect: PathBuf,
    /// Repetitions of each workload, for both schedulers.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Workload {
    workload: &'static str,
    tasks: usize,
    /// Prefect's fastest repetition, seconds.
    prefect_best_s: f64,
    /// Every Prefect repetition, seconds.
    prefect_reps_s: Vec<f64>,
    /// Shoal's median repetition, seconds.
    shoal_median_s: f64,
    shoal_reps_s: Vec<f64>,
    /// prefect_best_s / shoal_median_s.
    ratio: f64,
}

/// Prefect's per-repetition lines, `# prefect W1 rep2 total_s=0.812`, for `workload`.
fn prefect_reps(out: &str, workload: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("# ")?;
            let mut words = rest.split_whitespace();
            let (_label, w, rep, total) =
                (words.next()?, words.next()?, words.next()?, words.next()?);
            (w == workload && rep.starts_with("rep"))
                .then(|| total.strip_prefix("total_s=")?.parse().ok())
                .flatten()
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub async fn run(b: PeersBench, home: &DataDir, db: Option<&str>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(b.reps >= 1, "--reps must be at least 1");
    anyhow::ensure!(
        b.prefect.is_file(),
        "{}: no Prefect benchmark script there (give --prefect PATH)",
        b.prefect.display()
    );
    eprintln!("running {} (REPS={}) ...", b.prefect.display(), b.reps);
    let out = tokio::process::Command::new("bash")
        .arg(&b.prefect)
        .env("REPS", b.reps.to_string())
        .output()
        .await
        .with_context(|| format!("running {}", b.prefect.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "{} failed ({}):\n{text}\n{}",
        b.prefect.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let mut rows = Vec::new();
    for (workload, shape, tasks) in [
        ("W1", Shape::Chain { tasks: 40 }, 40),
        ("W2", Shape::Fanout { tasks: 1000 }, 1000),
    ] {
        let prefect = prefect_reps(&text, workload);
        anyhow::ensure!(
            !prefect.is_empty(),
            "no `# prefect {workload} repN total_s=...` lines in Prefect's output:\n{text}"
        );
        // One untimed warm-up, then the repetitions, on one engine: as Prefect's script
        // runs its flows in one process against one server.
        let engine = bench_master(home, db).await?;
        let prepared = engine.prepare(shape).await?;
        engine.run(&prepared).await?;
        let mut shoal = Vec::with_capacity(b.reps);
        for _ in 0..b.reps {
            shoal.push(engine.run(&prepared).await?.total_ms / 1e3);
        }
        engine.store.close().await;
        let best = prefect.iter().copied().fold(f64::INFINITY, f64::min);
        let med = median(&shoal);
        rows.push(Workload {
            workload,
            tasks,
            prefect_best_s: best,
            prefect_reps_s: prefect,
            shoal_median_s: med,
            shoal_reps_s: shoal,
            ratio: best / med,
        });
    }
    if b.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        println!(
            "Shoal beside Prefect, one run ({} repetitions each)",
            b.reps
        );
        println!(
            "  {:<4} {:>6} {:>16} {:>16} {:>10}",
            "", "tasks", "Prefect best", "Shoal median", "ratio"
        );
        for r in &rows {
            println!(
                "  {:<4} {:>6} {:>14.1} ms {:>13.2} ms {:>9.1}×",
                r.workload,
                r.tasks,
                r.prefect_best_s * 1e3,
                r.shoal_median_s * 1e3,
                r.ratio
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prefect_repetitions_and_picks_the_median() {
        let out = "# prefect warmup_s=3.10\n# prefect W1 rep1 total_s=1.250\n# prefect W1 rep2 total_s=0.981\n# prefect W2 rep1 total_s=9.5\nprefect W1 total_s=1.1 per_task_ms=27.5 (median of 2)\n";
        assert_eq!(prefect_reps(out, "W1"), vec![1.25, 0.981]);
        assert_eq!(prefect_reps(out, "W2"), vec![9.5]);
        assert!(prefect_reps(out, "W3").is_empty());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
