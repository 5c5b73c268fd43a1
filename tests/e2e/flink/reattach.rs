//! After the process that followed a job is SIGKILLed, the task re-attaches to the
//! same job from its persisted handle: Flink lists exactly one job, never a second
//! submission. Embedded (`shoal server` restarted) and distributed (another worker
//! takes over from a killed one).

use std::time::Duration;

use serde_json::json;
use shoal_tests::cluster::Cluster;
use shoal_tests::server::{Server, eventually};

use crate::harness::*;

/// Start a pipeline named `job` through `c` and wait until Flink runs it: the instance,
/// the task (following its job) and the job.
async fn start_pipeline(
    env: &FlinkEnv,
    c: &shoal_tests::server::Client,
    workflow: &str,
    job: &str,
) -> (i64, serde_json::Value, Job) {
    c.put(
        &format!("/api/v1/projects/{PROJECT}/secrets/MYSQL_PW"),
        json!({"value": "pw"}),
    )
    .await
    .expect(204);
    let id = start(c, &cdc_workflow(workflow, job)).await;
    let following = task_following(c, id, "sync").await;
    let running = env.rest().one_named(job, "RUNNING").await;
    assert_eq!(
        job_of(&following),
        running.id,
        "the handle names the job Flink runs"
    );
    (id, following, running)
}

fn cdc_workflow(name: &str, job: &str) -> String {
    format!(
        "workflow:\n  name: {name}\ntasks:\n  - name: sync\n    task_type: FlinkCdc\n    pipeline_yaml: |\n{}",
        indent(&pipeline(job), 6)
    )
}

#[tokio::test]
async fn a_killed_server_reattaches_to_the_same_job() {
    let Some(env) = flink_env("re-attach after SIGKILL") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let (data, mut server) = server(&env.policy(None)).await;
    let c = server.admin.clone();
    let job_name = unique("reattach");
    let _cleanup = CancelOnDrop::new(&env, &[&job_name]);
    let (id, _, job) = start_pipeline(&env, &c, "reattach", &job_name).await;
    let flink = env.rest();

    server.kill();
    // The job runs on while nobody follows it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(flink.state(&job.id).await, "RUNNING");
    let server = Server::start(data.path(), None, ADMIN).await;
    let c = server.admin.clone();
    // Recovery follows the job again from its handle: the same attempt or a
    // failover attempt, with the same job.
    let after = eventually(
        "the task to follow its job again",
        Duration::from_secs(60),
        async || {
            let t = task(&c, id, "sync").await;
            (t["state"] == "running" && t["handle"].is_string()).then_some(t)
        },
    )
    .await;
    assert_eq!(
        job_of(&after),
        job.id,
        "the same job, from the stored handle"
    );
    // Give a wrong resubmission time to show up, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let jobs = flink.named(&job_name).await;
    assert_eq!(jobs.len(), 1, "exactly one job: {jobs:?}");
    assert_eq!(jobs[0].state, "RUNNING");
    let log = log(&c, &after).await;
    assert!(log.contains("re-attaching"), "{log}");

    c.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "stop"}),
    )
    .await
    .expect(200);
    flink.wait_state(&job.id, "CANCELED").await;
    drop(server);
}

#[tokio::test]
async fn another_worker_reattaches_when_the_one_following_the_job_dies() {
    let Some(env) = flink_env("re-attach in distributed mode") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let Some(mut cluster) = Cluster::new().await else {
        return;
    };
    cluster.policy = Some(env.policy(None));
    cluster.add_master("m1").await;
    cluster.add_worker("w1", &["default"], 4, "").await;
    cluster.add_worker("w2", &["default"], 4, "").await;
    let c = cluster.api("m1");
    setup_project(&c).await;
    let job_name = unique("worker-failover");
    let _cleanup = CancelOnDrop::new(&env, &[&job_name]);
    let (id, first, job) = start_pipeline(&env, &c, "failover", &job_name).await;
    let flink = env.rest();
    let host = first["host"].as_str().unwrap().to_owned();
    cluster.kill(&host);

    let after = eventually(
        "another worker to follow the job",
        Duration::from_secs(60),
        async || {
            let t = task(&c, id, "sync").await;
            (t["state"] == "running"
                && t["host"].as_str().is_some_and(|h| h != host)
                && t["handle"].is_string())
            .then_some(t)
        },
    )
    .await;
    assert_eq!(
        job_of(&after),
        job.id,
        "the same job, followed from its handle"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let jobs = flink.named(&job_name).await;
    assert_eq!(
        jobs.len(),
        1,
        "exactly one job: {jobs:?}\n{}",
        cluster.logs()
    );
    assert_eq!(jobs[0].state, "RUNNING");

    c.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "stop"}),
    )
    .await
    .expect(200);
    flink.wait_state(&job.id, "CANCELED").await;
}
