//! The plugin platform end to end: real components in wasmtime, real child processes,
//! real files, a real HTTP server on 127.0.0.1.

use std::time::{Duration, Instant};

use serde_json::json;
use shoal_model::{OperatorPolicy, TaskState};
use shoal_runtime::RuntimeError;
use shoal_task_engine::TaskEvent;
use shoal_tests::*;
use tokio_util::sync::CancellationToken;

const ALL_CAPS: &str = "process = true\nwork-dir = true\nhttp-hosts = [\"127.0.0.1\"]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_success_streams_output_and_collects_out_params() {
    let h = Harness::new();
    let report = h
        .run(
            "shell",
            json!({
                "command": "echo hello from shell\necho '${setValue(answer=42)}'\necho \"#{setValue(greeting=$GREETING)}\"\npwd",
                "env": {"GREETING": "hi there"}
            }),
        )
        .await;
    assert_state(&report, TaskState::Succeeded);
    assert_eq!(out_param(&report, "answer"), Some("42"));
    assert_eq!(out_param(&report, "greeting"), Some("hi there"));
    let log = log_of(&report);
    assert!(log.contains("[out] hello from shell"), "{log}");
    // The script ran in the task's own work dir, which the sandbox shows at /work.
    assert!(log.contains("[out] /work"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_failure_names_exit_code_and_signal() {
    let h = Harness::new();
    let report = h
        .run("shell", json!({"command": "echo oops >&2; exit 3"}))
        .await;
    assert_state(&report, TaskState::Failed);
    assert_eq!(report.message, "script exited with code 3");
    assert!(log_of(&report).contains("[err] oops"));

    let report = h.run("shell", json!({"rawScript": "kill -9 $$"})).await;
    assert_state(&report, TaskState::Failed);
    assert_eq!(report.message, "script killed by signal 9");

    // A setValue marker on stderr is not an OUT param.
    let report = h
        .run(
            "shell",
            json!({"command": "echo '${setValue(x=1)}' >&2; exit 0"}),
        )
        .await;
    assert_state(&report, TaskState::Succeeded);
    assert!(report.out_params.is_empty(), "{:?}", report.out_params);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_params_are_validated_with_field_names() {
    let h = Harness::new();
    let report = h.run("shell", json!({"script": "echo hi"})).await;
    assert_state(&report, TaskState::Failed);
    assert!(report.message.contains("`command`"), "{}", report.message);
    let report = h.run("shell", json!({"command": "   "})).await;
    assert!(
        report.message.contains("`command`: the script is empty"),
        "{}",
        report.message
    );
    let report = h
        .run("shell", json!({"command": "true", "env": {"A": 1}}))
        .await;
    assert!(report.message.contains("env.A"), "{}", report.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_timeout_kills_the_whole_process_group() {
    let h = Harness::new();
    // Load (compile) first, so the deadline is spent on the script, not on cranelift.
    h.registry().resolve("shell", None).await.unwrap();
    let marker = format!("300.{}", std::process::id() % 1000);
    let mut request = h.request(
        "shell",
        json!({"command": format!("sleep {marker} &\nsleep 300")}),
    );
    request.timeout = Some(Duration::from_millis(1500));
    let started = Instant::now();
    let (report, _) = h.run_request(request).await;
    assert_state(&report, TaskState::Failed);
    assert!(report.message.contains("timed out"), "{}", report.message);
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = log_of(&report);
    // The background child's pid inside the sandbox means nothing here: find it by its
    // command line instead.
    let script = started_pids(&log)[0];
    wait_until_dead(&[script]).await;
    for _ in 0..100 {
        if processes_matching(&format!("sleep {marker}")).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the background child outlived its task");
}

async fn wait_until_dead(pids: &[u32]) {
    for _ in 0..100 {
        if pids.iter().all(|p| !process_alive(*p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "processes still alive: {:?}",
        pids.iter()
            .filter(|p| process_alive(**p))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_stops_a_running_shell_task() {
    let h = Harness::new();
    let request = h.request("shell", json!({"command": "sleep 300"}));
    let (report, events) = h
        .kill_after(request, Duration::from_millis(300), |e| {
            *e == TaskEvent::Running
        })
        .await;
    assert_state(&report, TaskState::Killed);
    wait_until_dead(&started_pids(&log_of(&report))).await;
    assert!(
        matches!(events.first(), Some(TaskEvent::Dispatched { .. })),
        "{events:?}"
    );
    assert_eq!(events[1], TaskEvent::Running);
    assert!(matches!(
        events.last(),
        Some(TaskEvent::Finished {
            state: TaskState::Killed,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_times_out_with_its_children_and_the_host_lives() {
    let h = Harness::new();
    h.install_testkit(ALL_CAPS).await;
    let mut request = h.request(
        "testkit",
        json!({"mode": "spawn-and-loop", "argv": ["sleep", "300"]}),
    );
    request.timeout = Some(Duration::from_millis(1000));
    let started = Instant::now();
    let (report, _) = h.run_request(request).await;
    assert_state(&report, TaskState::Failed);
    assert!(report.message.contains("timed out"), "{}", report.message);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let pids = started_pids(&log_of(&report));
    assert_eq!(pids.len(), 1, "{}", log_of(&report));
    wait_until_dead(&pids).await;

    let mut request = h.request("testkit", json!({"mode": "loop"}));
    request.timeout = Some(Duration::from_millis(300));
    let (report, _) = h.run_request(request).await;
    assert_state(&report, TaskState::Failed);
    assert_state(&h.run("noop", json!({})).await, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_fails_only_its_task() {
    let h = Harness::with_policy("[plugins.testkit]\nmemory-mb = 32\n");
    h.install_testkit(ALL_CAPS).await;
    let report = h.run("testkit", json!({"mode": "bomb"})).await;
    assert_state(&report, TaskState::Failed);
    assert!(
        report.message.contains("memory limit of 32 MiB"),
        "{}",
        report.message
    );
    let report = h
        .run("testkit", json!({"mode": "print", "text": "hi"}))
        .await;
    assert_state(&report, TaskState::Succeeded);
    let log = log_of(&report);
    assert!(log.contains("[stdout] hi (stdout)"), "{log}");
    assert!(log.contains("[stderr] hi (stderr, no newline)"), "{log}");
    let report = h.run("testkit", json!({"mode": "trap"})).await;
    assert_state(&report, TaskState::Failed);
    assert!(report.message.contains("trapped"), "{}", report.message);
    assert_state(
        &h.run("noop", json!({"set": {"k": "v"}})).await,
        TaskState::Succeeded,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_without_grant_is_denied() {
    let h = Harness::new();
    h.install_testkit("process = false\nwork-dir = true").await;
    let report = h
        .run("testkit", json!({"mode": "spawn", "argv": ["true"]}))
        .await;
    assert_state(&report, TaskState::Failed);
    assert!(
        report.message.starts_with("capability denied:"),
        "{}",
        report.message
    );
    assert!(report.message.contains("`process`"), "{}", report.message);

    // The manifest asks, but the operator's policy says no.
    let h = Harness::with_policy("[plugins.testkit]\nprocess = false\n");
    h.install_testkit(ALL_CAPS).await;
    let report = h
        .run("testkit", json!({"mode": "spawn", "argv": ["true"]}))
        .await;
    assert!(
        report.message.starts_with("capability denied:"),
        "{}",
        report.message
    );

    // Granted: it runs, and the child sees only pass-through variables.
    let h = Harness::new();
    h.install_testkit(ALL_CAPS).await;
    let report = h
        .run(
            "testkit",
            json!({"mode": "spawn", "argv": ["sh", "-c", "echo $PATH; env | wc -l"]}),
        )
        .await;
    assert_state(&report, TaskState::Succeeded);
    assert_eq!(out_param(&report, "code"), Some("Some(0)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_outside_the_work_dir_are_unreachable() {
    let h = Harness::new();
    h.install_testkit(ALL_CAPS).await;
    let report = h
        .run(
            "testkit",
            json!({"mode": "write", "path": "/work/note.txt", "content": "kept"}),
        )
        .await;
    assert_state(&report, TaskState::Succeeded);
    assert_eq!(
        std::fs::read_to_string(report.work_dir.join("note.txt")).unwrap(),
        "kept"
    );

    for path in [
        "/etc/hostname",
        "/work/../../../../etc/hostname",
        "../etc/hostname",
        "/tmp",
    ] {
        let report = h
            .run("testkit", json!({"mode": "read", "path": path}))
            .await;
        assert_state(&report, TaskState::Failed);
        assert!(
            report.message.starts_with(&format!("cannot read {path}")),
            "{}",
            report.message
        );
    }
    // A symlink planted in the work dir does not lead out either.
    let report = h
        .run(
            "testkit",
            json!({"mode": "write", "path": "/work/x", "content": ""}),
        )
        .await;
    std::os::unix::fs::symlink("/etc/hostname", report.work_dir.join("link")).unwrap();
    let id = report
        .work_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let mut request = h.request("testkit", json!({"mode": "read", "path": "/work/link"}));
    request.identity.task_instance_id = id;
    let (report, _) = h.run_request(request).await;
    assert_state(&report, TaskState::Failed);

    // Without the work-dir grant there is no file system at all.
    let h = Harness::new();
    h.install_testkit("process = false\nwork-dir = false").await;
    let report = h
        .run(
            "testkit",
            json!({"mode": "write", "path": "/work/x", "content": "no"}),
        )
        .await;
    assert_state(&report, TaskState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_reaches_only_allowed_hosts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app =
        axum::Router::new().route("/hello", axum::routing::get(|| async { "hello over http" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let h = Harness::new();
    h.install_testkit(&format!("http-hosts = [\"127.0.0.1:{port}\"]"))
        .await;
    let report = h
        .run(
            "testkit",
            json!({"mode": "http", "url": format!("http://127.0.0.1:{port}/hello")}),
        )
        .await;
    assert_state(&report, TaskState::Succeeded);
    assert_eq!(out_param(&report, "status"), Some("200"));
    assert_eq!(out_param(&report, "body"), Some("hello over http"));

    // Same host, another port: denied before any connection is made.
    let report = h
        .run(
            "testkit",
            json!({"mode": "http", "url": format!("http://127.0.0.1:{}/", port.wrapping_add(1))}),
        )
        .await;
    assert_state(&report, TaskState::Failed);
    assert!(
        report.message.starts_with("capability denied:"),
        "{}",
        report.message
    );
    assert!(log_of(&report).contains("not on its http-hosts allow-list"));
    let report = h
        .run(
            "testkit",
            json!({"mode": "http", "url": "http://localhost/"}),
        )
        .await;
    assert!(
        report.message.starts_with("capability denied:"),
        "{}",
        report.message
    );

    // No http grant at all.
    let h = Harness::new();
    h.install_testkit("").await;
    let report = h
        .run(
            "testkit",
            json!({"mode": "http", "url": format!("http://127.0.0.1:{port}/hello")}),
        )
        .await;
    assert!(
        report.message.starts_with("capability denied:"),
        "{}",
        report.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_jobs_are_polled_and_can_be_reattached_or_cancelled() {
    let h = Harness::new();
    h.install_testkit(ALL_CAPS).await;
    let (report, events) = h
        .run_request(h.request("testkit", json!({"mode": "external", "polls": 3})))
        .await;
    assert_state(&report, TaskState::Succeeded);
    assert_eq!(report.handle.as_deref(), Some("job:3"));
    assert_eq!(out_param(&report, "polls"), Some("3"));
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            TaskEvent::Dispatched { .. } => "dispatched",
            TaskEvent::Running => "running",
            TaskEvent::HandleAssigned { .. } => "handle",
            TaskEvent::Progress { .. } => "progress",
            TaskEvent::Finished { .. } => "finished",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "dispatched",
            "running",
            "handle",
            "progress",
            "progress",
            "finished"
        ]
    );

    // A restarted host re-attaches from the handle alone: no second start.
    let mut request = h.request("testkit", json!({"mode": "external", "polls": 2}));
    request.attach_to = Some("job:2".into());
    let (report, events) = h.run_request(request).await;
    assert_state(&report, TaskState::Succeeded);
    assert!(log_of(&report).contains("re-attaching to external job `job:2`"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TaskEvent::HandleAssigned { handle } if handle == "job:2"))
    );

    // Killing the task cancels the job through the plugin.
    let request = h.request("testkit", json!({"mode": "external", "polls": 1000000}));
    let (report, _) = h
        .kill_after(request, Duration::from_millis(100), |e| {
            matches!(e, TaskEvent::HandleAssigned { .. })
        })
        .await;
    assert_state(&report, TaskState::Killed);
    assert_eq!(
        std::fs::read_to_string(report.work_dir.join("cancelled")).unwrap(),
        "job:1000000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugins_get_clear_errors_and_the_host_keeps_working() {
    let h = Harness::new();
    let reg = h.registry();

    let dir = plugin_dir(
        h.dir.path(),
        "broken",
        "1.0.0",
        b"\0asm this is not wasm",
        "",
    );
    let err = reg.install(&dir).await.unwrap_err().to_string();
    assert!(
        err.contains("plugin `broken`: not a valid WebAssembly component"),
        "{err}"
    );

    let wasm = std::fs::read(testkit_wasm()).unwrap();
    let dir = plugin_dir(h.dir.path(), "testkit", "2.0.0", &wasm, "");
    let manifest = dir.join("shoal-plugin.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("wit = \"0.1.0\"", "wit = \"0.2.0\"");
    std::fs::write(&manifest, text).unwrap();
    let err = reg.install(&dir).await.unwrap_err().to_string();
    assert!(
        err.contains("field `wit`") && err.contains("0.2.0"),
        "{err}"
    );

    let empty = h.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = reg.install(&empty).await.unwrap_err().to_string();
    assert!(
        err.contains("cannot read manifest") && err.contains("shoal-plugin.toml"),
        "{err}"
    );

    // A manifest naming another task type than the component.
    let dir = plugin_dir(h.dir.path(), "impostor", "1.0.0", &wasm, "");
    let err = reg.install(&dir).await.unwrap_err().to_string();
    assert!(err.contains("calls itself `testkit`"), "{err}");

    // A typo in the manifest names line and field.
    let dir = plugin_dir(h.dir.path(), "testkit", "3.0.0", &wasm, "proces = true");
    let err = reg.install(&dir).await.unwrap_err().to_string();
    assert!(
        err.contains("shoal-plugin.toml") && err.contains("line 7") && err.contains("proces"),
        "{err}"
    );

    // None of that reached the store, and everything else still runs.
    assert!(matches!(
        reg.resolve("broken", None).await,
        Err(RuntimeError::UnknownTaskType { .. })
    ));
    assert_state(&h.run("noop", json!({})).await, TaskState::Succeeded);
    let report = h.run("no-such-type", json!({})).await;
    assert_state(&report, TaskState::Failed);
    assert!(
        report.message.contains("unknown task type `no-such-type`"),
        "{}",
        report.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_load_hits_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = Harness::registry_in(dir.path(), OperatorPolicy::default());
    let plugin = first.resolve("noop", None).await.unwrap();
    assert!(!plugin.load_report.cache_hit);
    let second = Harness::registry_in(dir.path(), OperatorPolicy::default());
    let plugin = second.resolve("NOOP", None).await.unwrap();
    assert!(plugin.load_report.cache_hit);

    // A corrupted entry is recompiled, not fatal.
    for entry in std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .flatten()
    {
        std::fs::write(entry.path(), b"garbage").unwrap();
    }
    let third = Harness::registry_in(dir.path(), OperatorPolicy::default());
    let plugin = third.resolve("noop", None).await.unwrap();
    assert!(!plugin.load_report.cache_hit);

    // A well-formed entry made under another key (someone else's compiled code planted
    // in the cache) is never deserialised: it is recompiled.
    let other = tempfile::tempdir().unwrap();
    Harness::registry_in(other.path(), OperatorPolicy::default())
        .resolve("noop", None)
        .await
        .unwrap();
    for entry in std::fs::read_dir(other.path().join("cache"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(
            entry.path(),
            dir.path().join("cache").join(entry.file_name()),
        )
        .unwrap();
    }
    let fourth = Harness::registry_in(dir.path(), OperatorPolicy::default());
    let plugin = fourth.resolve("noop", None).await.unwrap();
    assert!(!plugin.load_report.cache_hit, "a foreign entry was loaded");
    // The recompiled entry is this host's again.
    let fifth = Harness::registry_in(dir.path(), OperatorPolicy::default());
    assert!(
        fifth
            .resolve("noop", None)
            .await
            .unwrap()
            .load_report
            .cache_hit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_installed_versions_win_and_versions_can_be_pinned() {
    let h = Harness::new();
    let (_, noop) = shoal_builtins::find("noop").unwrap();
    let dir = plugin_dir(h.dir.path(), "noop", "0.2.0", noop, "");
    h.registry().install(&dir).await.unwrap();
    let active = h.registry().resolve("noop", None).await.unwrap();
    assert_eq!(active.manifest.version.to_string(), "0.2.0");
    let pinned = h
        .registry()
        .resolve("noop", Some(&"0.1.0".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(pinned.manifest.version.to_string(), "0.1.0");
    let err = h
        .registry()
        .resolve("noop", Some(&"9.9.9".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("available: 0.2.0, 0.1.0"), "{err}");
    let listing = h.registry().list();
    let active: Vec<_> = listing
        .iter()
        .filter(|p| p.id == "noop" && p.active)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].version.to_string(), "0.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_tasks_wait_for_an_exclusive_slot() {
    let h = std::sync::Arc::new(Harness::with_containers(4, 1));
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut runs = Vec::new();
    for i in 0..2u64 {
        let h = h.clone();
        let order = order.clone();
        let request = h.request("shell", json!({"command": "sleep 0.3"}));
        runs.push(tokio::spawn(async move {
            let id = request.identity.task_instance_id;
            let report = h
                .engine
                .execute(request, CancellationToken::new(), |e| {
                    let kind = match e {
                        TaskEvent::Running => "running",
                        TaskEvent::Finished { .. } => "finished",
                        _ => return,
                    };
                    order.lock().unwrap().push((id, kind));
                })
                .await;
            (i, report)
        }));
    }
    // While one runs, the other is listed as waiting for the exclusive container.
    let containers = h.engine.containers().unwrap().clone();
    let mut saw_waiting = false;
    // Bounded by time, not by the runs: the slot is held for the whole 0.3 s script.
    for _ in 0..2000 {
        let snap = containers.snapshot();
        if snap.waiting.len() == 1 && snap.exclusive.used == 1 {
            saw_waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for run in runs {
        let (_, report) = run.await.unwrap();
        assert_state(&report, TaskState::Succeeded);
    }
    assert!(saw_waiting, "the second task never waited");
    let order = order.lock().unwrap().clone();
    let kinds: Vec<&str> = order.iter().map(|(_, k)| *k).collect();
    // One slot: the second task starts only after the first finished.
    assert_eq!(
        kinds,
        ["running", "finished", "running", "finished"],
        "{order:?}"
    );
    assert_eq!(order[0].0, order[1].0);
    assert_eq!(containers.snapshot().exclusive.used, 0);

    // A task killed while waiting never runs.
    let blocker = h.request("shell", json!({"command": "sleep 1"}));
    let h2 = h.clone();
    let first = tokio::spawn(async move { h2.run_request(blocker).await });
    while containers.snapshot().exclusive.used == 0 {
        tokio::task::yield_now().await;
    }
    let waiting = h.request("shell", json!({"command": "echo never"}));
    let (report, events) = h
        .kill_after(waiting, Duration::from_millis(50), |e| {
            matches!(e, TaskEvent::Dispatched { .. })
        })
        .await;
    assert_state(&report, TaskState::Killed);
    assert_eq!(report.message, "killed while waiting for a slot");
    assert!(!events.contains(&TaskEvent::Running));
    assert_state(&first.await.unwrap().0, TaskState::Succeeded);
}

/// A passed validation is remembered per component and parameters; other parameters are
/// still validated, so a bad one fails even after many good runs of the same type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_validations_never_let_bad_parameters_through() {
    let h = Harness::new();
    let good = serde_json::json!({"set": {"k": "v"}});
    for _ in 0..3 {
        assert_state(&h.run("noop", good.clone()).await, TaskState::Succeeded);
    }
    let bad = h.run("shell", serde_json::json!({"comand": "true"})).await;
    assert_state(&bad, TaskState::Failed);
    assert!(
        bad.message.contains("invalid parameters"),
        "{}",
        bad.message
    );
    assert!(bad.message.contains("comand"), "{}", bad.message);
    let good_shell = h.run("shell", serde_json::json!({"command": "true"})).await;
    assert_state(&good_shell, TaskState::Succeeded);
    let bad_again = h.run("shell", serde_json::json!({"comand": "true"})).await;
    assert_state(&bad_again, TaskState::Failed);
}

/// A component built against `shoal:task@0.1.0`, before 0.1.1 and 0.1.2 added
/// interfaces and the optional `controls` export, still loads and runs: the 0.1 line
/// only grows. Actions on its tasks are refused, naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_wit_0_1_0_still_runs() {
    let h = Harness::new();
    let old = std::fs::read(repo_root().join("tests/e2e/fixtures/wit-0.1.0/noop.wasm")).unwrap();
    let exports = |wasm: &[u8], name: &str| wasm.windows(name.len()).any(|w| w == name.as_bytes());
    assert!(exports(&old, "shoal:task/plugin@0.1.0"));
    assert!(!exports(&old, "shoal:task/plugin@0.1.1"));
    assert!(!exports(&old, "shoal:task/controls"));
    let (_, current) = shoal_builtins::find("noop").unwrap();
    assert!(
        exports(current, "shoal:task/plugin@0.1.2")
            && exports(current, "shoal:task/controls@0.1.2"),
        "the built-ins are built against 0.1.2"
    );
    let dir = plugin_dir(h.dir.path(), "noop", "0.3.0", &old, "");
    h.registry().install(&dir).await.unwrap();
    let active = h.registry().resolve("noop", None).await.unwrap();
    assert_eq!(active.manifest.version.to_string(), "0.3.0");
    let report = h.run("noop", serde_json::json!({})).await;
    assert_eq!(report.state, TaskState::Succeeded, "{}", report.message);
    assert_eq!(report.plugin_version.as_deref(), Some("0.3.0"));
    assert!(active.actions.is_empty());
    let refused = active.action("savepoint").unwrap_err();
    assert!(
        refused.contains("offers no actions") && refused.contains("noop"),
        "{refused}"
    );
}

/// The Flink task types declare their actions through `controls`; anything else is
/// refused by the host before the plugin is called, with the list of what it offers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_a_plugin_does_not_declare_are_refused_by_the_host() {
    let h = Harness::new();
    let flink = h.registry().resolve("flink", None).await.unwrap();
    let names: Vec<&str> = flink.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["savepoint", "stop-with-savepoint"]);
    let refused = flink.action("rescale").unwrap_err();
    assert!(
        refused.contains("no action `rescale`")
            && refused.contains("it offers: savepoint, stop-with-savepoint"),
        "{refused}"
    );
    let env = shoal_runtime::TaskEnv::new(
        Default::default(),
        serde_json::json!({}),
        h.dir.path().to_path_buf(),
    );
    let limits = shoal_runtime::CallLimits::timeout(std::time::Duration::from_secs(10));
    let answer = flink
        .act(&env, &limits, "{}", "rescale", &serde_json::json!({}))
        .await
        .unwrap();
    assert!(answer.unwrap_err().contains("no action `rescale`"));
}
