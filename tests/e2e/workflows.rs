//! Workflows through the `shoal` binary on the embedded engine: `shoal run`, the
//! inspection commands, operations from a second process, and a SIGKILL in the middle of
//! a run followed by `shoal resume`, on SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use shoal_store::Store;
use shoal_tests::{plugin_dir, shoal_bin, testkit_wasm};

/// A data dir and, optionally, a database URL other than the data dir's SQLite file.
struct Site {
    data: tempfile::TempDir,
    db: Option<String>,
}

impl Site {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(shoal_bin());
        cmd.arg("--data-dir").arg(self.data.path());
        if let Some(db) = &self.db {
            cmd.arg("--db").arg(db);
        }
        cmd.args(args).env("SHOAL_POLL_MS", "50");
        cmd
    }

    fn shoal(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running shoal")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting shoal")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.data.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn store(&self) -> Store {
        match &self.db {
            Some(url) => Store::open(url).await.unwrap(),
            None => Store::open_sqlite(&self.data.path().join("shoal.db"))
                .await
                .unwrap(),
        }
    }
}

/// Run `test` with the embedded SQLite store, then with a fresh PostgreSQL database.
async fn on_both_databases<F, Fut>(test: F)
where
    F: Fn(Site) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(Site {
        data: tempfile::tempdir().unwrap(),
        db: None,
    })
    .await;
    if let Some((url, name)) = shoal_store::testing::fresh_pg().await {
        test(Site {
            data: tempfile::tempdir().unwrap(),
            db: Some(url),
        })
        .await;
        shoal_store::testing::drop_pg(&name).await;
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn show_json(site: &Site, id: i64) -> serde_json::Value {
    let out = site.shoal(&["instance", "show", &id.to_string(), "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

const PASSING: &str = r##"
workflow:
  name: cli-demo
  param:
    n: "4"
tasks:
  - name: count
    task_type: Shell
    command: echo "#{setValue(rows=${n})}"
  - name: decide
    task_type: Switch
    deps: [count]
    condition:
      - task: many
        condition: "${rows} > 3"
      - task: few
  - name: many
    task_type: Shell
    deps: [decide]
    command: 'echo "many rows: ${rows}"'
  - name: few
    task_type: Shell
    deps: [decide]
    command: echo "few rows"
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_then_inspect_on_both_databases() {
    on_both_databases(|site| async move {
        let file = site.write("demo.yaml", PASSING);
        let out = site.shoal(&["run", file.to_str().unwrap()]);
        let all = text(&out);
        assert!(out.status.success(), "{all}");
        // Live progress lines, then the timing table.
        assert!(all.contains("count") && all.contains("running"), "{all}");
        assert!(all.contains("workflow succeeded"), "{all}");
        assert!(all.contains("timeline"), "{all}");

        let out = site.shoal(&["instances"]);
        assert!(text(&out).contains("cli-demo") && text(&out).contains("succeeded"));
        let shown = show_json(&site, 1);
        let tasks = shown["tasks"].as_array().unwrap();
        let state = |name: &str| {
            tasks
                .iter()
                .find(|t| t["task_name"] == name)
                .map(|t| t["state"].as_str().unwrap().to_owned())
        };
        assert_eq!(state("many").as_deref(), Some("succeeded"));
        assert_eq!(state("few").as_deref(), Some("skipped"));
        let many = tasks.iter().find(|t| t["task_name"] == "many").unwrap();
        let out = site.shoal(&["logs", &many["id"].to_string()]);
        assert!(text(&out).contains("many rows: 4"), "{}", text(&out));

        // A failing run exits 1 and says which task failed.
        let file = site.write(
            "broken.yaml",
            "workflow:\n  name: broken\ntasks:\n  - name: boom\n    task_type: Shell\n    command: exit 7\n",
        );
        let out = site.shoal(&["run", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("boom") && text(&out).contains("failed"));

        // An invalid file is refused before anything runs, naming file, line and field.
        let file = site.write(
            "invalid.yaml",
            "workflow:\n  name: invalid\ntasks:\n  - name: a\n    task_type: Shell\n    deps: [ghost]\n    command: 'true'\n",
        );
        let out = site.shoal(&["run", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out).contains("invalid.yaml:4: field `tasks[0] `a`.deps[0]`"), "{}", text(&out));
        assert!(text(&out).contains("ghost"), "{}", text(&out));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_from_a_second_process_reach_the_running_engine() {
    on_both_databases(|site| async move {
        let file = site.write(
            "long.yaml",
            "workflow:\n  name: long\ntasks:\n  - name: wait\n    task_type: Shell\n    command: sleep 60\n  - name: after\n    task_type: Noop\n    deps: [wait]\n",
        );
        let run = site.spawn(&["run", file.to_str().unwrap()]);
        let store = site.store().await;
        wait_for(&store, 1, |rows| state_of(rows, "wait") == Some("running")).await;
        // The engine's containers: the shell task holds an exclusive slot. The status
        // file is rewritten every half second, so wait for one that shows it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = site.shoal(&["status"]);
            let status = text(&out);
            assert!(out.status.success(), "{status}");
            if status.contains("exclusive  1/") {
                assert!(status.contains("0 task(s) waiting"), "{status}");
                break;
            }
            assert!(Instant::now() < deadline, "status never showed the running task: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let out = site.shoal(&["pause", "1"]);
        assert!(out.status.success(), "{}", text(&out));
        let out = site.shoal(&["stop", "1"]);
        assert!(out.status.success(), "{}", text(&out));
        let out = run.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let row = store.workflow_instance(1).await.unwrap().unwrap();
        assert_eq!(row.state, "stopped");
        // Refused operations say why.
        let out = site.shoal(&["pause", "1"]);
        assert!(!out.status.success());
        assert!(text(&out).contains("cannot pause a workflow instance that is stopped"), "{}", text(&out));
        store.close().await;
    })
    .await;
}

fn state_of<'a>(rows: &'a [shoal_store::TaskInstanceRow], task: &str) -> Option<&'a str> {
    rows.iter()
        .rev()
        .find(|r| r.task_name == task)
        .map(|r| r.state.as_str())
}

async fn wait_for(
    store: &Store,
    instance: i64,
    done: impl Fn(&[shoal_store::TaskInstanceRow]) -> bool,
) -> Vec<shoal_store::TaskInstanceRow> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = store.task_instances(instance).await.unwrap_or_default();
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "never reached the expected state: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn polls_done(data: &Path, task_instance: i64) -> u32 {
    std::fs::read_to_string(
        data.join("work")
            .join(task_instance.to_string())
            .join("polls"),
    )
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

/// SIGKILL the engine in the middle of a run; `shoal resume` finishes it without rerunning
/// a succeeded task, re-attaches to the external job through its stored handle, and runs
/// the attempt that was lost with the process again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_then_resume() {
    on_both_databases(|site| async move {
        let wasm = std::fs::read(testkit_wasm()).unwrap();
        let src = plugin_dir(
            site.data.path(),
            "testkit",
            "0.1.0",
            &wasm,
            "process = true\nwork-dir = true",
        );
        let out = site.shoal(&["plugins", "install", src.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));

        // The scripts keep a ledger on the host and watch the engine process die, which a
        // sandboxed task can do neither of: this test is about the engine, not the sandbox.
        std::fs::write(site.data.path().join("policy.toml"), "sandbox = \"none\"\n").unwrap();
        let ledger = site.data.path().join("ledger");
        let marker = site.data.path().join("second-time");
        let yaml = format!(
            r##"
workflow:
  name: crash
tasks:
  - name: before
    task_type: Shell
    command: echo before >> {ledger}
  - name: job
    task_type: testkit
    deps: [before]
    mode: external
    polls: 40
  - name: lost
    task_type: Shell
    deps: [before]
    command: |
      echo lost >> {ledger}
      if [ -f {marker} ]; then exit 0; fi
      touch {marker}
      while kill -0 $PPID 2>/dev/null; do sleep 0.05; done
      exit 1
  - name: after
    task_type: Shell
    deps: [job, lost]
    command: echo after >> {ledger}
"##,
            ledger = ledger.display(),
            marker = marker.display()
        );
        let file = site.write("crash.yaml", &yaml);
        let mut run = site.spawn(&["run", file.to_str().unwrap()]);
        let store = site.store().await;
        let rows = wait_for(&store, 1, |rows| {
            let job = rows.iter().find(|r| r.task_name == "job");
            state_of(rows, "lost") == Some("running")
                && job
                    .is_some_and(|j| j.handle.is_some() && polls_done(site.data.path(), j.id) >= 3)
        })
        .await;
        run.kill().unwrap(); // SIGKILL
        let _ = run.wait();
        let job_id = rows.iter().find(|r| r.task_name == "job").unwrap().id;
        assert_eq!(
            store.workflow_instance(1).await.unwrap().unwrap().state,
            "running"
        );

        let out = site.shoal(&["resume"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            store.workflow_instance(1).await.unwrap().unwrap().state,
            "succeeded"
        );

        let ledger = std::fs::read_to_string(&ledger).unwrap();
        let lines: Vec<&str> = ledger.lines().collect();
        assert_eq!(
            lines.iter().filter(|l| **l == "before").count(),
            1,
            "{ledger}"
        );
        assert_eq!(
            lines.iter().filter(|l| **l == "lost").count(),
            2,
            "{ledger}"
        );
        assert_eq!(
            lines.iter().filter(|l| **l == "after").count(),
            1,
            "{ledger}"
        );

        let rows = store.task_instances(1).await.unwrap();
        let of = |name: &str| {
            rows.iter()
                .filter(|r| r.task_name == name)
                .collect::<Vec<_>>()
        };
        assert_eq!(of("before").len(), 1, "a succeeded task never runs twice");
        let job = of("job");
        assert_eq!(
            job.len(),
            1,
            "the external job is re-attached, not resubmitted"
        );
        assert_eq!(job[0].id, job_id);
        assert_eq!(job[0].state, "succeeded");
        assert_eq!(
            job[0].out_params["polls"], "40",
            "polling went on where it stopped"
        );
        let log = std::fs::read_to_string(job[0].log_path.as_ref().unwrap()).unwrap();
        assert!(
            log.contains("re-attaching to external job `job:40`"),
            "{log}"
        );
        let lost: Vec<&str> = of("lost").iter().map(|r| r.state.as_str()).collect();
        assert_eq!(lost, ["failed", "succeeded"]);
        assert!(
            of("lost")[0].message.contains("engine stopped"),
            "{}",
            of("lost")[0].message
        );
        store.close().await;
    })
    .await;
}

/// The README's demo: the example workflow (shell tasks, parameters passed downstream, a
/// switch and a sub-workflow) runs to success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_workflow_runs() {
    on_both_databases(|site| async move {
        let example = shoal_tests::repo_root().join("examples/daily-report.yaml");
        let out = site.shoal(&["run", example.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let shown = show_json(&site, 1);
        let tasks = shown["tasks"].as_array().unwrap();
        let announce = tasks.iter().find(|t| t["task_name"] == "announce").unwrap();
        let log = site.shoal(&["logs", &announce["id"].to_string()]);
        assert!(
            text(&log).contains("published as report-"),
            "{}",
            text(&log)
        );
        assert!(
            tasks
                .iter()
                .any(|t| t["task_name"] == "quiet-day" && t["state"] == "skipped")
        );
        // A short (logic) task's lines come out of its instance's shared log alone.
        let switch = tasks
            .iter()
            .find(|t| t["task_name"] == "check-volume")
            .unwrap();
        let log = text(&site.shoal(&["logs", &switch["id"].to_string()]));
        assert!(log.contains("took branch `busy-day`"), "{log}");
        assert!(!log.contains("extract") && !log.contains('#'), "{log}");
        let out = site.shoal(&["instances"]);
        assert!(
            text(&out).contains("publish-report"),
            "the child run is listed: {}",
            text(&out)
        );
    })
    .await;
}

/// The Python and SQL example: its datasource set as its header says, it runs to
/// success on an embedded SQLite datasource, loading, totalling and branching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_sql_example_runs() {
    on_both_databases(|site| async move {
        let out = site.shoal(&[
            "datasource",
            "set",
            "shop",
            "--type",
            "sqlite",
            "--database",
            "shop.db",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let example = shoal_tests::repo_root().join("examples/orders-python-sql.yaml");
        let out = site.shoal(&["run", example.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let shown = show_json(&site, 1);
        let tasks = shown["tasks"].as_array().unwrap();
        let of = |name: &str| tasks.iter().find(|t| t["task_name"] == name).unwrap();
        assert_eq!(of("load")["out_params"]["loaded"], "5");
        assert_eq!(of("totals")["out_params"]["total"], "150");
        assert_eq!(of("small-day")["state"], "skipped");
        let log = text(&site.shoal(&["logs", &of("big-day")["id"].to_string()]));
        assert!(
            log.contains("big day: 5 orders loaded, total 150, largest first: o-5, o-4"),
            "{log}"
        );
    })
    .await;
}

#[test]
fn logic_tasks_outside_a_workflow_say_so() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(shoal_bin())
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "task",
            "run",
            "--type",
            "sub-workflow",
            "--params",
            r#"{"workflow_name":"x"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("only available inside a workflow run"),
        "{}",
        text(&out)
    );
}

/// Two data dirs on one database: the second engine is refused while the first holds the
/// engine lease, so no instance is driven (or recovered) twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engine_per_database() {
    let Some((url, name)) = shoal_store::testing::fresh_pg().await else {
        return;
    };
    let first = Site {
        data: tempfile::tempdir().unwrap(),
        db: Some(url.clone()),
    };
    let second = Site {
        data: tempfile::tempdir().unwrap(),
        db: Some(url),
    };
    let file = first.write(
        "long.yaml",
        "workflow:\n  name: long\ntasks:\n  - name: wait\n    task_type: Shell\n    command: sleep 60\n",
    );
    let run = first.spawn(&["run", file.to_str().unwrap()]);
    let store = first.store().await;
    wait_for(&store, 1, |rows| state_of(rows, "wait") == Some("running")).await;
    let out = second.shoal(&["resume"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("another engine"), "{}", text(&out));
    // The running engine still takes operations queued through its own data dir.
    let out = first.shoal(&["stop", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    store.close().await;
    shoal_store::testing::drop_pg(&name).await;
}
