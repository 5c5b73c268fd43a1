//! How a Flink task ends: a bounded job's success, a failing job's root exception,
//! and stopping the workflow or killing the task cancelling the job in Flink.

use serde_json::json;

use crate::harness::*;

fn job_task(name: &str, mode: &str, job: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    task_type: Flink\n    program_type: JAVA\n    main_class: shoal.testjob.TestJob\n    main_package: shoal-test-job.jar\n    main_args: --mode {mode} --name {job}\n{extra}"
    )
}

#[tokio::test]
async fn a_failing_job_fails_its_task_with_flinks_root_exception() {
    let Some(env) = flink_env("failing Flink job") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let (_data, server) = server(&env.policy(None)).await;
    let c = &server.admin;
    let job = unique("fails");
    let _cleanup = CancelOnDrop::new(&env, &[&job]);
    let yaml = format!(
        "workflow:\n  name: failing\ntasks:\n{}",
        job_task("boom", "fail", &job, "")
    );
    let id = start(c, &yaml).await;
    let t = task_in(c, id, "boom", "failed").await;
    let message = t["message"].as_str().unwrap();
    assert!(
        message.contains("failed on purpose") || log(c, &t).await.contains("failed on purpose"),
        "the root exception is reported: {message}"
    );
    assert_eq!(env.rest().named(&job).await[0].state, "FAILED");
    // What a session cluster cannot run is refused when the definition is saved,
    // naming its line and field.
    let yaml = "workflow:\n  name: refused\ntasks:\n  - name: py\n    task_type: Flink\n    program_type: PYTHON\n    main_class: x\n    main_package: shoal-test-job.jar\n";
    let refused = c
        .post_yaml(PROJECT, yaml)
        .await
        .error(422, "invalid-definition");
    assert!(
        refused.contains(":4:") && refused.contains("program_type") && refused.contains("PYTHON"),
        "{refused}"
    );
}

#[tokio::test]
async fn stopping_the_workflow_or_killing_the_task_cancels_the_job_in_flink() {
    let Some(env) = flink_env("stop and kill") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let (_data, server) = server(&env.policy(None)).await;
    let c = &server.admin;
    let flink = env.rest();

    let stopped = unique("stopped-by-workflow");
    let killed = unique("killed-task");
    let _cleanup = CancelOnDrop::new(&env, &[&stopped, &killed]);
    let yaml = format!(
        "workflow:\n  name: endless\ntasks:\n{}",
        job_task("forever", "endless", &stopped, "")
    );
    let id = start(c, &yaml).await;
    let t = task_following(c, id, "forever").await;
    // Running in Shoal means the handle is stored; wait for Flink to run it too.
    let job = flink.one_named(&stopped, "RUNNING").await;
    assert_eq!(job_of(&t), job.id);
    c.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "stop"}),
    )
    .await
    .expect(200);
    flink.wait_state(&job.id, "CANCELED").await;
    task_in(c, id, "forever", "killed").await;

    let yaml = format!(
        "workflow:\n  name: endless-kill\ntasks:\n{}",
        job_task("forever", "endless", &killed, "")
    );
    let id = start(c, &yaml).await;
    task_following(c, id, "forever").await;
    let job = flink.one_named(&killed, "RUNNING").await;
    c.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "kill", "task": "forever"}),
    )
    .await
    .expect(200);
    flink.wait_state(&job.id, "CANCELED").await;
    task_in(c, id, "forever", "killed").await;
    assert_eq!(
        flink.named(&killed).await.len(),
        1,
        "one job was ever submitted"
    );
}
