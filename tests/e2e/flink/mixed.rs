//! Shell, Http, Flink (batch and stream) and Flink CDC side by side in one workflow on
//! the real cluster; savepoints and stops through the CLI and the API, each recorded as
//! an event; a recover resuming the pipeline from its last savepoint; refusals that say
//! why.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn shell_http_flink_and_flink_cdc_run_side_by_side_and_are_controlled() {
    let Some(env) = flink_env("mixed workflow") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let app = Router::new().route("/ready", get(|| async { "{\"ready\": true}" }));
        axum::serve(listener, app).await.unwrap()
    });
    let (_data, server) = server(&env.policy(Some(port))).await;
    let c = &server.admin;
    let secret = "pw-Zq8-never-in-clear";
    c.put(
        &format!("/api/v1/projects/{PROJECT}/secrets/MYSQL_PW"),
        json!({"value": secret}),
    )
    .await
    .expect(204);
    let batch = unique("mixed-batch");
    let stream = unique("mixed-stream");
    let cdc = unique("mixed-cdc");
    let _cleanup = CancelOnDrop::new(&env, &[&batch, &stream, &cdc]);
    let yaml = format!(
        r#"
workflow:
  name: mixed
tasks:
  - name: prepare
    task_type: Shell
    command: echo preparing
  - name: ping
    task_type: Http
    deps: [prepare]
    url: http://127.0.0.1:{port}/ready
    http_check_condition: BODY_CONTAINS
    condition: ready
  - name: batch
    task_type: Flink
    deps: [ping]
    program_type: JAVA
    main_class: shoal.testjob.TestJob
    main_package: shoal-test-job.jar
    main_args: --mode bounded --count 200 --name {batch}
    parallelism: 1
  - name: stream
    task_type: Flink
    deps: [batch]
    program_type: JAVA
    main_class: shoal.testjob.TestJob
    main_package: shoal-test-job.jar
    main_args: --mode endless --name {stream}
    run_mode: STREAM
  - name: cdc
    task_type: FlinkCdc
    deps: [batch]
    restore_last_savepoint: true
    pipeline_yaml: |
{pipeline}
"#,
        pipeline = indent(&pipeline(&cdc), 6)
    );
    let id = start(c, &yaml).await;

    // The stream task succeeds once its job runs; the pipeline's task runs with it.
    let stream_task = task_in(c, id, "stream", "succeeded").await;
    let flink = env.rest();
    let stream_job = job_of(&stream_task);
    flink.wait_state(&stream_job, "RUNNING").await;
    assert_eq!(flink.named(&stream).await.len(), 1);
    let cdc_task = task_following(c, id, "cdc").await;
    let cdc_job = flink.one_named(&cdc, "RUNNING").await;
    assert_eq!(
        job_of(&cdc_task),
        cdc_job.id,
        "the handle names the job Flink runs"
    );
    for name in ["prepare", "ping", "batch"] {
        assert_eq!(task(c, id, name).await["state"], "succeeded", "{name}");
    }
    assert_eq!(flink.named(&batch).await[0].state, "FINISHED");

    // The secret went into the pipeline, never into what Shoal stores or shows.
    let detail = shoal_tests::server::instance(c, id).await.to_string();
    assert!(!detail.contains(secret));
    let cdc_log = log(c, &cdc_task).await;
    assert!(!cdc_log.contains(secret), "{cdc_log}");

    // A savepoint through the CLI, then through the API: the task keeps running.
    let cdc_id = cdc_task["id"].as_i64().unwrap().to_string();
    let out = cli(&server, &["task", "savepoint", &cdc_id]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("savepoint of job") && said.contains("file:"),
        "{said}"
    );
    let location = said
        .split_whitespace()
        .find(|w| w.starts_with("file:"))
        .unwrap()
        .trim_start_matches("file:")
        .to_owned();
    assert!(
        std::path::Path::new(&location).exists(),
        "the savepoint is on disk at {location}"
    );
    assert_eq!(task(c, id, "cdc").await["state"], "running");
    let with_action = log(c, &cdc_task).await;
    assert!(
        with_action.contains("action `savepoint`: savepoint of job"),
        "the outcome is in the task's log: {with_action}"
    );
    let stream_id = stream_task["id"].as_i64().unwrap();
    let done = c
        .post(
            &format!("/api/v1/tasks/{stream_id}/actions"),
            json!({"action": "savepoint"}),
        )
        .await
        .expect(200)
        .json();
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .contains("savepoint of job"),
        "{done}"
    );

    // What a task type does not offer, and a task without a job, are refused plainly.
    let refused = c
        .post(
            &format!("/api/v1/tasks/{stream_id}/actions"),
            json!({"action": "rescale"}),
        )
        .await
        .error(409, "conflict");
    assert!(
        refused.contains("no action `rescale`")
            && refused.contains("savepoint, stop-with-savepoint"),
        "{refused}"
    );
    let shell_id = task(c, id, "prepare").await["id"].as_i64().unwrap();
    let refused = c
        .post(
            &format!("/api/v1/tasks/{shell_id}/actions"),
            json!({"action": "savepoint"}),
        )
        .await
        .error(409, "conflict");
    assert!(refused.contains("has no external job"), "{refused}");

    // Every job Shoal follows is listed, the stream job's with a succeeded task.
    let out = cli(&server, &["task", "jobs"]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    assert!(
        listing.contains(&cdc_job.id) && listing.contains(&stream_job),
        "{listing}"
    );

    // Stop the pipeline with a savepoint: the job finishes in Flink, the task ends as
    // killed, and the handle keeps where the savepoint went.
    let out = cli(&server, &["task", "stop", &cdc_id, "--savepoint"]);
    assert!(out.status.success(), "{}", text(&out));
    flink.wait_state(&cdc_job.id, "FINISHED").await;
    let stopped = task_in(c, id, "cdc", "killed").await;
    let handle: serde_json::Value =
        serde_json::from_str(stopped["handle"].as_str().unwrap()).unwrap();
    let last = handle["savepoint"].as_str().unwrap().to_owned();
    assert!(last.starts_with("file:"), "{handle}");

    // Every action is on the instance's event stream, asked and answered.
    let store = shoal_store::Store::open_sqlite(&server.data.join("shoal.db"))
        .await
        .unwrap();
    let actions: Vec<serde_json::Value> = store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "task-action")
        .map(|e| e.payload)
        .collect();
    let phases = |action: &str, phase: &str| {
        actions
            .iter()
            .filter(|p| p["action"] == action && p["phase"] == phase)
            .count()
    };
    assert_eq!(phases("savepoint", "requested"), 2, "{actions:?}");
    assert_eq!(phases("savepoint", "done"), 2, "{actions:?}");
    assert_eq!(phases("stop-with-savepoint", "done"), 1, "{actions:?}");
    assert!(
        actions
            .iter()
            .any(|p| p["action"] == "rescale" && p["ok"] == false),
        "a refused action is recorded too: {actions:?}"
    );

    // Cancel the stream job through its succeeded task: gone from Flink.
    let out = cli(&server, &["task", "stop", &stream_id.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    flink.wait_state(&stream_job, "CANCELED").await;
    assert_eq!(task(c, id, "stream").await["state"], "succeeded");

    // The instance settles (the pipeline was stopped); recover restarts the pipeline
    // from the savepoint it was stopped with.
    let settled = shoal_tests::server::settle(c, id).await;
    assert_ne!(settled["state"], "running");
    c.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "recover"}),
    )
    .await
    .expect(200);
    let resumed = eventually_new_attempt(c, id, stopped["id"].as_i64().unwrap()).await;
    let new_job = job_of(&resumed);
    assert_ne!(new_job, cdc_job.id);
    flink.wait_state(&new_job, "RUNNING").await;
    assert_eq!(
        flink.restored_from(&new_job).await.as_deref(),
        Some(last.as_str()),
        "the new job started from the last savepoint"
    );
    // The poll that submitted it says so once the submission returned.
    shoal_tests::server::eventually(
        "the log to say where the job started from",
        Duration::from_secs(10),
        async || {
            log(c, &resumed)
                .await
                .contains("starting from savepoint")
                .then_some(())
        },
    )
    .await;

    // Stopping the workflow cancels the job.
    c.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "stop"}),
    )
    .await
    .expect(200);
    flink.wait_state(&new_job, "CANCELED").await;
    flink.cancel_all(&[&batch, &stream, &cdc]).await;
    let running: Vec<_> = flink
        .named(&cdc)
        .await
        .into_iter()
        .filter(|j| !is_final(&j.state))
        .collect();
    assert!(running.is_empty(), "{running:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The cdc task's attempt after `before` (its row id), once it runs.
async fn eventually_new_attempt(
    c: &shoal_tests::server::Client,
    id: i64,
    before: i64,
) -> serde_json::Value {
    shoal_tests::server::eventually(
        "a new attempt of `cdc` to run with a handle",
        Duration::from_secs(90),
        async || {
            let t = task(c, id, "cdc").await;
            (t["id"].as_i64() != Some(before) && t["state"] == "running" && t["handle"].is_string())
                .then_some(t)
        },
    )
    .await
}
