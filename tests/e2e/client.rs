//! The "done when", through the `shoal` CLI as a client of a real `shoal server`
//! (SQLite and PostgreSQL): log in, publish the example workflow (and the sub-workflow it
//! references), schedule it every two seconds and see runs happen, backfill three dates,
//! read a task's log; then watch and rerun a run, use a token of its own, and install and
//! roll back plugin versions — every step a `shoal` process, as a user would type it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_tests::server::Server;
use shoal_tests::{plugin_dir, repo_root, shoal_bin, testkit_wasm};

const TOKEN: &str = "shoal_client_test_token";

/// Run `shoal` with the client's data dir (its profile lives there); panics with the
/// output if it fails.
fn shoal(client_home: &Path, args: &[&str]) -> String {
    let out = Command::new(shoal_bin())
        .arg("--data-dir")
        .arg(client_home)
        .args(args)
        .env("SHOAL_PROFILE", "default")
        .env_remove("SHOAL_SERVER")
        .env_remove("SHOAL_TOKEN")
        .env_remove("SHOAL_DB")
        .current_dir(repo_root())
        .output()
        .expect("running shoal");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shoal {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

fn json(client_home: &Path, args: &[&str]) -> Value {
    let text = shoal(client_home, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("shoal {args:?}: not JSON ({e}): {text}"))
}

fn instances(home: &Path, workflow: &str) -> Vec<Value> {
    json(
        home,
        &[
            "instances",
            "--workflow",
            workflow,
            "--limit",
            "100",
            "--json",
        ],
    )["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn until<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn publish_schedule_backfill_and_read_logs(db: Option<&str>) {
    let server_home = tempfile::tempdir().unwrap();
    let client_home = tempfile::tempdir().unwrap();
    let server = Server::start(server_home.path(), db, TOKEN).await;
    let home = client_home.path().to_path_buf();
    let url = server.url.clone();

    tokio::task::spawn_blocking(move || {
        let home = home.as_path();
        shoal(
            home,
            &[
                "login",
                "--server",
                &url,
                "--token",
                TOKEN,
                "--project",
                "demo",
            ],
        );
        shoal(home, &["projects", "create", "demo"]);
        shoal(home, &["projects", "allow-process", "demo"]);
        shoal(home, &["apply", "--online", "examples/daily-report.yaml"]);
        let defs = json(home, &["definitions", "--json"]);
        let names: Vec<&str> = defs
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert_eq!(names, ["daily-report", "publish-report"]);

        // Every two seconds: runs happen on their own.
        shoal(
            home,
            &["schedule", "set", "daily-report", "--cron", "*/2 * * * * ?"],
        );
        let fired = until(
            "two scheduled runs to succeed",
            Duration::from_secs(30),
            || {
                let done: Vec<Value> = instances(home, "daily-report")
                    .into_iter()
                    .filter(|i| i["state"] == "succeeded")
                    .collect();
                (done.len() >= 2).then_some(done)
            },
        );
        shoal(home, &["schedule", "offline", "daily-report"]);
        for run in &fired {
            assert_eq!(run["schedule_time"].as_i64().unwrap() % 2000, 0, "{run}");
        }
        let scheduled = instances(home, "daily-report").len();

        // Three past dates, one after another.
        let queued = json(
            home,
            &[
                "backfill",
                "daily-report",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-03",
                "--json",
            ],
        );
        assert_eq!(queued["dates"].as_array().unwrap().len(), 3);
        let all = until("the backfill to finish", Duration::from_secs(60), || {
            let all = instances(home, "daily-report");
            let settled = all.len() >= scheduled + 3
                && all
                    .iter()
                    .all(|i| i["state"] == "succeeded" || i["state"] == "failed");
            settled.then_some(all)
        });
        let backfilled: Vec<&Value> = all
            .iter()
            .filter(|i| {
                // Midnight of 2026-01-01..03 in the server's zone: before the schedule.
                i["schedule_time"].as_i64().unwrap() < 1_767_484_800_000
            })
            .collect();
        assert_eq!(backfilled.len(), 3, "{all:?}");
        assert!(backfilled.iter().all(|i| i["state"] == "succeeded"));

        // A task's log, through the client.
        let id = backfilled[0]["id"].as_i64().unwrap();
        let detail = json(home, &["instance", "show", &id.to_string(), "--json"]);
        let extract = detail["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task_name"] == "extract")
            .expect("the extract task ran");
        let log = shoal(
            home,
            &["logs", &extract["id"].as_i64().unwrap().to_string()],
        );
        assert!(log.contains("extracting orders for 2026-01-0"), "{log}");

        // A run started and left, watched live to its end, then operated on.
        let id = shoal(home, &["run", "publish-report", "--detach"]);
        let id = id.trim();
        let watched = json(home, &["instance", "watch", id, "--json"]);
        assert_eq!(watched["state"], "succeeded", "{watched}");
        shoal(home, &["rerun", id]);
        let again = json(home, &["instance", "watch", id, "--json"]);
        assert_eq!(again["state"], "succeeded", "{again}");

        // A token of its own, with an expiry, works in place of the profile's.
        let token = json(
            home,
            &[
                "tokens",
                "create",
                "--user",
                "admin",
                "--expires-in",
                "1h",
                "--json",
            ],
        );
        assert!(token["expires_at"].as_i64().is_some());
        let listed = json(
            home,
            &[
                "--token",
                token["token"].as_str().unwrap(),
                "instances",
                "--json",
            ],
        );
        assert!(listed["total"].as_i64().unwrap() >= 5, "{listed}");

        // Plugins: two versions installed through the client, the second active, then
        // rolled back.
        let plugins = tempfile::tempdir().unwrap();
        let wasm = std::fs::read(testkit_wasm()).unwrap();
        for version in ["0.1.0", "0.2.0"] {
            let dir = plugin_dir(plugins.path(), "testkit", version, &wasm, "process = true");
            // As the issue spells it: `shoal plugins install --server URL PATH`.
            shoal(
                home,
                &[
                    "plugins",
                    "install",
                    "--server",
                    &url,
                    dir.to_str().unwrap(),
                ],
            );
        }
        let active = |home: &Path| -> Vec<String> {
            json(home, &["plugins", "list", "--json"])
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["id"] == "testkit" && p["active"] == true)
                .map(|p| p["version"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(active(home), ["0.2.0"]);
        shoal(home, &["plugins", "rollback", "testkit"]);
        assert_eq!(active(home), ["0.1.0"]);
    })
    .await
    .unwrap();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_publishes_schedules_backfills_and_reads_logs() {
    publish_schedule_backfill_and_read_logs(None).await;
    if let Some((url, name)) = shoal_store::testing::fresh_pg().await {
        publish_schedule_backfill_and_read_logs(Some(&url)).await;
        shoal_store::testing::drop_pg(&name).await;
    }
}
