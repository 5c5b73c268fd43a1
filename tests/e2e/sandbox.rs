//! The process sandbox and the output caps, through the real `shell` plugin: real
//! bubblewrap, real child processes, a real data dir whose files the task must not see.
//!
//! The tenant and pids-cgroup checks need root (a laptop user keeps their own user and
//! gets no cgroup); they say loudly when they skip, and fail under CI=true.

use std::time::{Duration, Instant};

use serde_json::json;
use shoal_model::TaskState;
use shoal_tests::*;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a check that needs root can run; under CI it must.
fn needs_root(what: &str) -> bool {
    if root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} needs root, and CI runs as root"
    );
    eprintln!("!! SKIPPING {what}: not running as root");
    false
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_sees_its_work_dir_and_the_system_but_not_the_data_dir() {
    let h = Harness::new();
    let data = h.dir.path().canonicalize().unwrap();
    std::fs::write(data.join("secret.key"), "the-sealing-key").unwrap();
    std::fs::write(data.join("shoal.db"), "precious").unwrap();
    let script = format!(
        "pwd; echo made > mine.txt; ls -a /\n\
         cat {d}/secret.key || echo NO-KEY\n\
         cat ../../secret.key 2>/dev/null || echo NO-RELATIVE-KEY\n\
         cp /dev/null {d}/shoal.db || echo NO-DB\n\
         ls {d}/cache 2>/dev/null || echo NO-CACHE\n\
         ls /work/.. | tr '\\n' ' '; echo\n\
         test -r /etc/passwd && echo SYSTEM-OK\n\
         echo HOME=$HOME",
        d = data.display()
    );
    let report = h.run("shell", json!({ "command": script })).await;
    assert_state(&report, TaskState::Succeeded);
    let log = log_of(&report);
    assert!(log.contains("[out] /work"), "{log}");
    for marker in [
        "NO-KEY",
        "NO-RELATIVE-KEY",
        "NO-DB",
        "NO-CACHE",
        "SYSTEM-OK",
        "HOME=/work",
    ] {
        assert!(log.contains(marker), "{marker} missing:\n{log}");
    }
    assert!(!log.contains("the-sealing-key"), "{log}");
    assert!(log.contains("sandboxed (bubblewrap"), "{log}");
    assert_eq!(
        std::fs::read_to_string(data.join("shoal.db")).unwrap(),
        "precious"
    );
    // What it wrote is in its own work dir on the host, and that dir is private.
    assert_eq!(
        std::fs::read_to_string(report.work_dir.join("mine.txt")).unwrap(),
        "made\n"
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&report.work_dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    if needs_root("running as the tenant user") {
        let tenant = shoal_runtime::capabilities::sandbox::lookup_user("shoal-tenant")
            .expect("the default tenant was created");
        assert_ne!(tenant.uid, 0);
        assert_eq!(meta.uid(), tenant.uid);
        let written = std::fs::metadata(report.work_dir.join("mine.txt")).unwrap();
        assert_eq!(
            written.uid(),
            tenant.uid,
            "files are the tenant's, not root's"
        );
        let report = h
            .run(
                "shell",
                json!({"command": "id -u; cat /etc/shadow >/dev/null 2>&1 || echo NO-SHADOW"}),
            )
            .await;
        let log = log_of(&report);
        assert!(log.contains(&format!("[out] {}", tenant.uid)), "{log}");
        assert!(log.contains("NO-SHADOW"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setsid_and_double_forked_children_die_with_the_task() {
    let h = Harness::new();
    let marker = format!("31{}", std::process::id() % 1000);
    let script = format!(
        "setsid sleep {marker}.1 & (sleep {marker}.2 &) ; nohup sleep {marker}.3 >/dev/null 2>&1 &\necho started; exit 0"
    );
    let report = h.run("shell", json!({ "command": script })).await;
    assert_state(&report, TaskState::Succeeded);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_matching(&format!("sleep {marker}."));
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes outlived their task: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_limits_come_from_the_policy() {
    let h = Harness::with_policy(
        "[process-limits]\nopen-files = 77\ncpu-seconds = 5\nfile-size-mb = 1\nprocesses = 24\n",
    );
    let report = h
        .run(
            "shell",
            json!({"command": "ulimit -n; ulimit -t\nhead -c 3000000 /dev/zero > big || echo FILE-TOO-BIG\nls -l big | awk '{print \"size\", $5}'"}),
        )
        .await;
    let log = log_of(&report);
    assert!(log.contains("[out] 77"), "{log}");
    assert!(log.contains("[out] 5"), "{log}");
    assert!(
        log.contains("FILE-TOO-BIG") || log.contains("signal 25"),
        "{log}"
    );
    assert!(log.contains("[out] size 1048576"), "{log}");

    // A CPU spinner is stopped by its CPU-time limit, not by the host's patience.
    let started = Instant::now();
    let report = h
        .run(
            "shell",
            json!({"command": "while :; do :; done", "shell": "sh"}),
        )
        .await;
    assert_state(&report, TaskState::Failed);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(report.message.contains("signal"), "{}", report.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_fails_its_own_task_only() {
    if !needs_root("the fork bomb test (a pids cgroup or a tenant's process limit)") {
        return;
    }
    let h = Harness::with_policy("[process-limits]\nprocesses = 32\n");
    let mut bomb = h.request(
        "shell",
        json!({"command": "b() { b | b & }; b; sleep 2; echo survived", "shell": "sh"}),
    );
    bomb.timeout = Some(Duration::from_secs(8));
    let quiet = h.request("shell", json!({"command": "sleep 1; echo unaffected"}));
    let (bombed, neighbour) = tokio::join!(h.run_request(bomb), h.run_request(quiet));
    let log = log_of(&bombed.0);
    assert!(log.contains("at most 32 processes"), "{log}");
    assert!(
        log.contains("fork")
            || log.contains("Cannot fork")
            || bombed.0.state != TaskState::Succeeded,
        "{log}"
    );
    assert_state(&neighbour.0, TaskState::Succeeded);
    assert!(log_of(&neighbour.0).contains("unaffected"));
    // The host can still start processes.
    let after = h
        .run("shell", json!({"command": "echo still-forking"}))
        .await;
    assert_state(&after, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_costs_the_host_a_bounded_amount() {
    let h = Harness::new();
    let before = rss_kib();
    // 200 MB on one line.
    let report = h
        .run(
            "shell",
            json!({"command": "yes | tr -d '\\n' | head -c 200000000; echo; echo after"}),
        )
        .await;
    assert_state(&report, TaskState::Succeeded);
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 100 * 1024, "the host grew by {grown} KiB");
    let log = log_of(&report);
    assert!(log.len() < 1 << 20, "log is {} bytes", log.len());
    assert!(
        log.contains("[line cut: "),
        "{}",
        &log[..log.len().min(2000)]
    );
    assert!(log.contains("[out] after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_flood_truncates_the_log_at_its_budget() {
    let h = Harness::with_policy("[task-limits]\nlog-bytes = 1000000\n");
    let report = h
        .run(
            "shell",
            json!({"command": "yes 'flood flood flood' | head -n 3000000"}),
        )
        .await;
    assert_state(&report, TaskState::Succeeded);
    let size = std::fs::metadata(&report.log_path).unwrap().len();
    assert!(size < 1_100_000, "log is {size} bytes");
    let log = log_of(&report);
    assert!(log.contains("log truncated"), "no truncation note");
    assert!(
        log.contains("task succeeded"),
        "the verdict is still logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_out_params_fail_the_task() {
    let h = Harness::with_policy("[task-limits]\nout-params = 10\nout-param-bytes = 4096\n");
    let report = h
        .run(
            "shell",
            json!({"command": "for i in $(seq 1 20); do echo \"\\${setValue(k$i=v)}\"; done"}),
        )
        .await;
    assert_state(&report, TaskState::Failed);
    assert!(
        report.message.contains("20 OUT parameters"),
        "{}",
        report.message
    );
    let report = h
        .run(
            "shell",
            json!({"command": "echo \"\\${setValue(big=$(head -c 8000 /dev/zero | tr '\\0' x))}\""}),
        )
        .await;
    assert_state(&report, TaskState::Failed);
    assert!(
        report.message.contains("out-param-bytes"),
        "{}",
        report.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_without_process_allowance_cannot_run_shell() {
    let h = Harness::new();
    let mut request = h.request("shell", json!({"command": "echo should not run > ran"}));
    request.process_allowed = false;
    let (report, _) = h.run_request(request).await;
    assert_state(&report, TaskState::Failed);
    assert!(
        report.message.contains("allow-process") && report.message.contains("process"),
        "{}",
        report.message
    );
    assert!(!report.work_dir.join("ran").exists());
    // Logic tasks need no process and still run.
    let mut request = h.request("noop", json!({}));
    request.process_allowed = false;
    assert_state(&h.run_request(request).await.0, TaskState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_none_is_only_what_the_policy_says() {
    let h = Harness::with_policy("sandbox = \"none\"\n");
    let report = h.run("shell", json!({"command": "pwd"})).await;
    assert_state(&report, TaskState::Succeeded);
    let log = log_of(&report);
    assert!(
        log.contains("no sandbox (policy says `sandbox = \"none\"`)"),
        "{log}"
    );
    let work = report.work_dir.canonicalize().unwrap();
    assert!(log.contains(&format!("[out] {}", work.display())), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_masked_in_messages_out_params_and_across_lines() {
    let h = Harness::new();
    let key = "-----BEGIN TEST KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n-----END TEST KEY-----";
    let mut request = h.request(
        "shell",
        json!({"command": format!("printf '%s\\n' '{key}'\necho \"\\${{setValue(leak=token-s3cr3t-value)}}\"\nexit 4")}),
    );
    request.redact = vec![key.to_owned(), "token-s3cr3t-value".to_owned()];
    let (report, _) = h.run_request(request).await;
    assert_state(&report, TaskState::Failed);
    let log = log_of(&report);
    assert!(!log.contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"), "{log}");
    assert!(!log.contains("BEGIN TEST KEY"), "{log}");
    assert_eq!(out_param(&report, "leak"), Some("******"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_dirs_go_when_tasks_succeed_and_stay_a_while_when_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Harness::registry_in(dir.path(), Default::default());
    let engine = shoal_task_engine::TaskEngine::new(
        registry,
        shoal_task_engine::TaskEngineConfig {
            work_root: dir.path().join("work"),
            datasource_root: dir.path().join("datasources"),
            log_root: dir.path().join("logs"),
            poll_interval: Duration::from_millis(20),
            work_dirs: Default::default(),
        },
    );
    let run = |id: u64, command: &str| {
        let mut r = shoal_task_engine::TaskRequest::new("shell", json!({ "command": command }));
        r.identity.task_instance_id = id;
        engine.execute(r, Default::default(), |_| {})
    };
    let ok = run(1, "echo secret-ish > f").await;
    assert_state(&ok, TaskState::Succeeded);
    assert!(
        !ok.work_dir.exists(),
        "a succeeded task's work dir is removed"
    );
    let failed = run(2, "echo evidence > f; exit 1").await;
    assert_state(&failed, TaskState::Failed);
    assert!(
        failed.work_dir.join("f").exists(),
        "a failed task's is kept"
    );
    assert!(log_of(&failed).contains("kept for 24h for debugging"));
}
