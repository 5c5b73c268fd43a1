//! `examples/orders-sync.yaml` as a user runs it: applied to a server whose policy
//! names the test cluster, started with the cluster's address, its Http task checking
//! Flink and its pipeline running there until stopped.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn the_orders_sync_example_runs_on_the_cluster() {
    let Some(env) = flink_env("examples/orders-sync.yaml") else {
        return;
    };
    let _one = SERIAL.lock().await;
    let job_name = "Sync orders to the warehouse";
    let _cleanup = CancelOnDrop::new(&env, &[job_name]);
    let port: u16 = env.url.rsplit(':').next().unwrap().parse().unwrap();
    let (_data, server) = server(&env.policy(Some(port))).await;
    let c = &server.admin;
    c.put(
        &format!("/api/v1/projects/{PROJECT}/secrets/ORDERS_DB_PASSWORD"),
        json!({"value": "example-password"}),
    )
    .await
    .expect(204);
    let yaml = std::fs::read_to_string(shoal_tests::repo_root().join("examples/orders-sync.yaml"))
        .unwrap();
    let saved = c.post_yaml(PROJECT, &yaml).await.expect(201).json();
    assert!(
        saved["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "{saved}"
    );
    c.post_empty(&format!(
        "/api/v1/projects/{PROJECT}/definitions/orders-sync/online"
    ))
    .await
    .expect(200);
    let run = c
        .post(
            &format!("/api/v1/projects/{PROJECT}/definitions/orders-sync/runs"),
            json!({"params": {"flink_rest": env.url}}),
        )
        .await
        .expect(201)
        .json();
    let id = run["instance"].as_i64().unwrap();
    let up = task_in(c, id, "flink_up", "succeeded").await;
    let free: u64 = up["out_params"]["free_slots"]
        .as_str()
        .unwrap()
        .parse()
        .expect("free slots as a number");
    assert!(free <= 4, "{up}");
    let sync = task_following(c, id, "sync_orders").await;
    let flink = env.rest();
    let job = flink.one_named(job_name, "RUNNING").await;
    assert_eq!(job_of(&sync), job.id);
    c.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "stop"}),
    )
    .await
    .expect(200);
    flink.wait_state(&job.id, "CANCELED").await;
}
