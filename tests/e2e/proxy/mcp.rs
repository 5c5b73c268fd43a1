//! MCP driven by a client nobody here wrote: the official Python MCP SDK (PyPI `mcp`,
//! installed by tests/run.sh into target/venv-mcp), over streamable HTTP against a
//! server and a proxy, and over stdio against `shoal mcp`.

use super::*;

/// The venv's python, or None (skipped loudly; a failure under CI=true).
fn python() -> Option<PathBuf> {
    let p = std::env::var_os("SHOAL_MCP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| shoal_tests::repo_root().join("target/venv-mcp/bin/python"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the MCP Python SDK is missing at {} (tests/run.sh installs it)",
            p.display()
        );
    }
    eprintln!(
        "SKIPPED: MCP client tests: no Python MCP SDK at {} (run tests/run.sh, or set SHOAL_MCP_PYTHON)",
        p.display()
    );
    None
}

fn agent(python: &Path, args: &[&str]) -> Value {
    let script = shoal_tests::repo_root().join("tests/mcp/agent.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("running the MCP agent");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "agent {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("agent output is not JSON ({e}): {stdout}"))
}

fn check(seen: &Value, via: &str) {
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "list_projects",
        "list_definitions",
        "show_definition",
        "validate_definition",
        "apply_definition",
        "list_instances",
        "show_instance",
        "start_run",
        "backfill",
        "operate_instance",
        "task_action",
        "read_task_log",
        "list_schedules",
        "set_schedule",
        "show_nodes",
        "show_clusters",
    ] {
        assert!(tools.contains(&t), "{via}: no tool {t}: {tools:?}");
    }
    assert_eq!(seen["schemas_ok"], true, "{via}");
    assert!(
        seen["definition_yaml"]
            .as_str()
            .unwrap()
            .contains("name: hello"),
        "{via}: show_definition gives the YAML it was applied from: {seen}"
    );
    let refused = &seen["unconfirmed"];
    assert_eq!(refused["is_error"], true, "{via}: {refused}");
    assert!(
        refused["text"].as_str().unwrap().contains("confirm"),
        "{via}: {refused}"
    );
    assert_eq!(seen["confirmed"]["is_error"], false, "{via}: {seen}");
    assert_eq!(seen["state"], "succeeded", "{via}: {seen}");
    let log = seen["log"]["text"].as_str().unwrap();
    assert!(log.contains("ran hello agent"), "{via}: {log}");
    let tail = seen["tail"]["text"].as_str().unwrap();
    assert!(tail.contains("task succeeded"), "{via}: {tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mcp_agent_runs_a_workflow_and_reads_its_log() {
    let Some(python) = python() else {
        return;
    };
    let site = Site::start(&[("a", "", 1)], "").await;
    site.project("agents").await;
    let hello = "workflow:\n  name: hello\ntasks:\n  - name: t\n    task_type: Shell\n    command: echo ran hello ${who}\n    local_params:\n      - { prop: who, direct: IN, type: VARCHAR, value: nobody }\n";
    site.apply("agents", hello).await;
    let proxy_mcp = format!("{}/mcp", site.proxy().url);
    let seen = agent(
        &python,
        &["http", &proxy_mcp, PROXY_ADMIN, "agents", "hello"],
    );
    check(&seen, "http via the proxy");
    let server_mcp = format!("{}/mcp", site.cluster("a").url);
    let seen = agent(
        &python,
        &["http", &server_mcp, CLUSTER_TOKEN, "agents", "hello"],
    );
    check(&seen, "http on the server");
    let bin = shoal_bin();
    let seen = agent(
        &python,
        &[
            "stdio",
            "agents",
            "hello",
            "--",
            bin.to_str().unwrap(),
            "--server",
            &site.proxy().url,
            "--token",
            PROXY_ADMIN,
            "mcp",
        ],
    );
    check(&seen, "stdio via the proxy");
    // No token, no MCP; a read-only token sees but cannot run.
    let r = reqwest::Client::new()
        .post(&proxy_mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let a = site.admin();
    a.post("/api/v1/users", json!({"name": "reader", "role": "user"}))
        .await
        .expect(201);
    a.put(
        "/api/v1/projects/agents/permissions/reader",
        json!({"level": "read"}),
    )
    .await
    .expect(204);
    let t = a
        .post("/api/v1/users/reader/tokens", json!({}))
        .await
        .expect(201)
        .json();
    let seen = agent(
        &python,
        &[
            "http",
            &proxy_mcp,
            t["token"].as_str().unwrap(),
            "agents",
            "hello",
        ],
    );
    assert_eq!(seen["confirmed"]["is_error"], true, "{seen}");
    assert!(
        seen["confirmed"]["text"]
            .as_str()
            .unwrap()
            .contains("operate"),
        "{seen}"
    );
}
