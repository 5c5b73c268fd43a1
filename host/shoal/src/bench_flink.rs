//! `shoal bench flink`: what following a Flink job costs on a real cluster. Times a
//! Flink task from its start to its job fully running (a STREAM task ends there: jar
//! found by digest, handle stored, job submitted by the first poll, polls until every
//! task runs), and one poll of a running job (a fresh plugin instance, one
//! `/jobs/overview` request) against that request made directly.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use shoal_model::{OperatorPolicy, TaskState};
use shoal_runtime::{CallLimits, PollReply, TaskEnv, TaskIdentity};
use shoal_task_engine::TaskRequest;
use tokio_util::sync::CancellationToken;

use crate::app::DataDir;

#[derive(Debug, Args)]
pub struct FlinkBench {
    /// The cluster's REST endpoint (on this machine: 127.0.0.1 only).
    #[arg(long)]
    pub url: String,
    /// A folder holding the test job jar (`tests/flink/cluster.sh` builds it into
    /// target/flink-jobs).
    #[arg(long, default_value = "target/flink-jobs")]
    pub jobs: PathBuf,
    /// Tasks to time from start to RUNNING.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Polls of a running job to time.
    #[arg(long, default_value_t = 200)]
    pub polls: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Figures {
    runs: usize,
    start_to_running_median_ms: f64,
    start_to_running_max_ms: f64,
    polls: usize,
    poll_median_ms: f64,
    poll_p99_ms: f64,
    rest_overview_median_ms: f64,
}

/// Cancel the job a Flink handle names, and wait until its slot is free again.
async fn cancel(http: &reqwest::Client, url: &str, handle: &str) {
    let v: serde_json::Value = serde_json::from_str(handle).unwrap_or_default();
    let job = v["job"].as_str().unwrap_or_default();
    let _ = http
        .patch(format!("{url}/jobs/{job}?mode=cancel"))
        .send()
        .await;
    for _ in 0..100 {
        let state = match http.get(format!("{url}/jobs/overview")).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.unwrap_or_default(),
            Err(_) => return,
        };
        let running = state["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["jid"] == job && j["state"] != "CANCELED");
        if !running {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run(b: FlinkBench, _data: &DataDir) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        b.url.starts_with("http://127.0.0.1:") || b.url.starts_with("http://localhost:"),
        "--url must be a cluster on this machine (http://127.0.0.1:PORT)"
    );
    anyhow::ensure!(
        b.runs >= 1 && b.polls >= 1,
        "--runs and --polls must be at least 1"
    );
    let jobs = b.jobs.canonicalize()?;
    anyhow::ensure!(
        jobs.join("shoal-test-job.jar").is_file(),
        "{} holds no shoal-test-job.jar (tests/flink/cluster.sh builds it)",
        jobs.display()
    );
    let scratch = tempfile::tempdir()?;
    let policy = OperatorPolicy::parse(
        &format!(
            "sandbox = \"none\"\n[flink]\ndefault-cluster = \"bench\"\nresource-dir = {:?}\n[flink.clusters.bench]\nurl = \"{}\"\n",
            jobs.display().to_string(),
            b.url
        ),
        std::path::Path::new("bench-policy.toml"),
    )?;
    let data = DataDir::resolve(Some(scratch.path().to_path_buf()));
    data.create()?;
    let engine = shoal_node::open_task_engine(&data, policy)?;
    let http = reqwest::Client::new();

    let mut started = Vec::with_capacity(b.runs);
    let mut handles = Vec::new();
    for i in 0..b.runs {
        let mut request = TaskRequest::new(
            "flink",
            serde_json::json!({
                "main_class": "shoal.testjob.TestJob",
                "main_package": "shoal-test-job.jar",
                "main_args": format!("--mode endless --name shoal-bench-{i}"),
                "program_type": "JAVA",
                "run_mode": "STREAM",
            }),
        );
        request.identity = TaskIdentity {
            task_name: format!("bench-{i}"),
            attempt: 1,
            ..Default::default()
        };
        let t = Instant::now();
        let report = engine
            .execute(request, CancellationToken::new(), |_| {})
            .await;
        let elapsed = t.elapsed();
        anyhow::ensure!(
            report.state == TaskState::Succeeded,
            "a bench task did not reach RUNNING: {}",
            report.message
        );
        started.push(elapsed);
        let handle = report.handle.unwrap_or_default();
        // The cluster's slots are few: every job but the first (kept for the polls)
        // goes at once.
        if i > 0 {
            cancel(&http, &b.url, &handle).await;
        } else {
            handles.push(handle);
        }
    }

    // One poll of a running job, in a fresh instance each, as the executor does.
    let plugin = engine.registry().resolve("flink", None).await?;
    let env = TaskEnv::new(
        TaskIdentity {
            task_name: "bench-poll".into(),
            attempt: 1,
            ..Default::default()
        },
        serde_json::json!({
            "main_class": "shoal.testjob.TestJob",
            "main_package": "shoal-test-job.jar",
            "run_mode": "BATCH",
        }),
        scratch.path().to_path_buf(),
    );
    // The same job, followed as a batch job: every poll answers "still running".
    let follow: serde_json::Value = serde_json::from_str(&handles[0])?;
    let mut follow = follow;
    follow["mode"] = "BATCH".into();
    let follow = follow.to_string();
    let limits = CallLimits::timeout(Duration::from_secs(600));
    let mut polls = Vec::with_capacity(b.polls);
    for _ in 0..b.polls {
        let t = Instant::now();
        let reply = plugin.poll(&env, &limits, &follow).await?;
        polls.push(t.elapsed());
        anyhow::ensure!(
            matches!(reply, PollReply::Running { .. }),
            "the bench job stopped running"
        );
    }
    let mut direct = Vec::with_capacity(b.polls);
    for _ in 0..b.polls {
        let t = Instant::now();
        http.get(format!("{}/jobs/overview", b.url))
            .send()
            .await?
            .bytes()
            .await?;
        direct.push(t.elapsed());
    }
    for h in &handles {
        cancel(&http, &b.url, h).await;
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        ms(v[((v.len() - 1) as f64 * q).round() as usize])
    };
    let figures = Figures {
        runs: b.runs,
        start_to_running_median_ms: pick(&mut started, 0.5),
        start_to_running_max_ms: pick(&mut started, 1.0),
        polls: b.polls,
        poll_median_ms: pick(&mut polls, 0.5),
        poll_p99_ms: pick(&mut polls, 0.99),
        rest_overview_median_ms: pick(&mut direct, 0.5),
    };
    if b.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!("Flink task benchmark against {}", b.url);
        println!(
            "  task start -> job RUNNING   median {:.1} ms, max {:.1} ms ({} runs)",
            figures.start_to_running_median_ms, figures.start_to_running_max_ms, figures.runs
        );
        println!(
            "  one poll of a running job   median {:.2} ms, p99 {:.2} ms ({} polls)",
            figures.poll_median_ms, figures.poll_p99_ms, figures.polls
        );
        println!(
            "  GET /jobs/overview alone    median {:.2} ms",
            figures.rest_overview_median_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
