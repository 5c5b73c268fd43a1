//! Hostile definitions and parameters against a real `shoal server`, on SQLite and on a
//! fresh PostgreSQL database: nesting and substitution limits are a 4xx at upload or a
//! failed task at dispatch, never a crashed server, and a restart recovers an instance with
//! such a task without crashing again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shoal_tests::server::{Client, Server, on_both_databases};

const ADMIN: &str = "shoal-admin-token-for-hostile-params";

async fn healthy(c: &Client) {
    c.get("/api/v1/health").await.expect(200);
}

async fn instance(c: &Client, id: i64) -> Value {
    c.get(&format!("/api/v1/instances/{id}"))
        .await
        .expect(200)
        .json()
}

/// Wait until instance `id` has finished; returns its detail.
async fn settle(c: &Client, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = instance(c, id).await;
        if ["succeeded", "failed", "stopped"].contains(&d["state"].as_str().unwrap_or_default()) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "instance {id} never finished: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn task<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task_name"] == name)
        .max_by_key(|t| t["id"].as_i64())
        .unwrap_or_else(|| panic!("no task `{name}` in {detail}"))
}

/// Startup parameters `a0` .. `a{links}` where each doubles the one before: forty links
/// would expand to a terabyte.
fn doubling(links: usize) -> BTreeMap<String, String> {
    let mut params = BTreeMap::from([("a0".to_string(), "x".to_string())]);
    for i in 1..=links {
        params.insert(format!("a{i}"), format!("${{a{0}}}${{a{0}}}", i - 1));
    }
    params
}

async fn start_run(
    c: &Client,
    project: &str,
    name: &str,
    params: &BTreeMap<String, String>,
) -> i64 {
    let l = c
        .post(
            &format!("/api/v1/projects/{project}/definitions/{name}/runs"),
            json!({ "params": params }),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(l["outcome"], "started", "{l}");
    l["instance"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_nesting_and_parameters_leave_the_server_serving() {
    on_both_databases(|data, db| async move {
        // No grace at shutdown: a run still going is left for recovery after the restart.
        std::fs::write(data.path().join("server.toml"), "shutdown_grace_s = 0\n").unwrap();
        let mut server = Server::start(data.path(), db.as_deref(), ADMIN).await;
        let project = "hostile";
        server
            .post("/api/v1/projects", json!({ "name": project }))
            .await
            .expect(201);

        // (a) Refused at upload, naming field or line; the server keeps serving.
        let deep_expr = format!(
            "workflow:\n  name: deep-expr\ntasks:\n  - name: main\n    task_type: noop\n    \
             set: {{day: \"$[yyyyMMdd+{}1]\"}}\n",
            "(".repeat(100_000)
        );
        let reply = server.post_yaml(project, &deep_expr).await;
        assert!((400..500).contains(&reply.status), "{reply:?}");
        assert!(
            reply.body.contains("tasks[0] `main`.set.day")
                && reply
                    .body
                    .contains("nests parentheses deeper than 64 levels"),
            "{}",
            reply.body
        );
        assert!(
            reply.body.len() < 2000,
            "the error quotes all of the input: {}",
            reply.body.len()
        );
        healthy(&server).await;

        let deep_yaml = format!(
            "workflow:\n  name: deep-yaml\ntasks:\n  - name: main\n    task_type: noop\n    \
             set:\n      x:\n        {}1\n",
            "- ".repeat(100_000)
        );
        let reply = server.post_yaml(project, &deep_yaml).await;
        assert!((400..500).contains(&reply.status), "{reply:?}");
        assert!(
            reply
                .body
                .contains("body.yaml:8: lists and mappings nest deeper than 64 levels"),
            "{}",
            reply.body
        );
        healthy(&server).await;

        let deep_json = format!(
            "{{\"workflow\": {{\"name\": \"deep-json\"}}, \"tasks\": {}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let reply = server
            .send_raw(
                reqwest::Method::POST,
                &format!("/api/v1/projects/{project}/definitions"),
                "application/json",
                deep_json,
            )
            .await;
        assert!((400..500).contains(&reply.status), "{reply:?}");
        assert!(reply.body.contains("body.json:1:"), "{}", reply.body);
        healthy(&server).await;

        let cycle = "workflow:\n  name: cycle\n  param: {a: '${b}', b: '${a}'}\ntasks:\n  - name: \
                     main\n    task_type: noop\n    set: {x: '${a}'}\n";
        let reply = server.post_yaml(project, cycle).await;
        assert!((400..500).contains(&reply.status), "{reply:?}");
        assert!(
            reply.body.contains(
                "field `workflow.param.a`: parameters refer to each other in a cycle: `a` -> \
                 `b` -> `a`"
            ),
            "{}",
            reply.body
        );

        // (b) A definition that is fine until its run's parameters double forty times: the
        // task fails with a message naming the field, the task beside it succeeds.
        let yaml = "workflow:\n  name: doubling\n  failure_strategy: continue\ntasks:\n  - name: \
                    boom\n    task_type: noop\n    set: {out: '${a40}'}\n  - name: fine\n    \
                    task_type: noop\n    set: {out: ok}\n";
        server.post_yaml(project, yaml).await.expect(201);
        server
            .post_empty(&format!(
                "/api/v1/projects/{project}/definitions/doubling/online"
            ))
            .await
            .expect(200);
        let params = doubling(40);
        let id = start_run(&server, project, "doubling", &params).await;
        let detail = settle(&server, id).await;
        assert_eq!(detail["state"], "failed", "{detail}");
        let boom = task(&detail, "boom");
        assert_eq!(boom["state"], "failed", "{boom}");
        let message = boom["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("field `set.out`")
                && message.contains("would be larger than 1048576 bytes after substitution"),
            "{boom}"
        );
        assert!(message.len() < 2000, "{message}");
        assert_eq!(task(&detail, "fine")["state"], "succeeded", "{detail}");
        healthy(&server).await;

        // A run stopped by a restart while its hostile task waits to be dispatched: the
        // server comes back, recovery dispatches it, it fails the same way, and the server
        // stays up rather than crash-looping.
        let yaml = "workflow:\n  name: later\ntasks:\n  - name: boom\n    task_type: noop\n    \
                    delay_time: 6s\n    set: {out: '${a40}'}\n";
        server.post_yaml(project, yaml).await.expect(201);
        server
            .post_empty(&format!(
                "/api/v1/projects/{project}/definitions/later/online"
            ))
            .await
            .expect(200);
        let waiting = start_run(&server, project, "later", &params).await;
        let before = instance(&server, waiting).await;
        assert!(
            ["submitted", "running"].contains(&before["state"].as_str().unwrap_or_default()),
            "{before}"
        );
        let status = server.terminate(Duration::from_secs(30));
        assert!(status.success(), "{status}\n{}", server.log());
        let server = Server::start(data.path(), db.as_deref(), ADMIN).await;
        // Unfinished when the server stopped, so recovery dispatches it now.
        assert_ne!(
            instance(&server, waiting).await["state"],
            "failed",
            "the run finished before the restart, so recovery was not tested"
        );
        let detail = settle(&server, waiting).await;
        assert_eq!(detail["state"], "failed", "{detail}");
        let boom = task(&detail, "boom");
        assert!(
            boom["message"]
                .as_str()
                .is_some_and(|m| m.contains("would be larger than 1048576 bytes")),
            "{boom}"
        );
        // Still serving a while later, and the first run's result survived the restart.
        tokio::time::sleep(Duration::from_millis(500)).await;
        healthy(&server).await;
        assert_eq!(instance(&server, id).await["state"], "failed");
        assert!(!server.log().contains("stack overflow"), "{}", server.log());
    })
    .await;
}
