//! The `shoal` binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

use shoal_tests::{repo_root, shoal_bin};

fn shoal(data: &Path, args: &[&str]) -> Output {
    Command::new(shoal_bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("SHOAL_TEST_SECRET", "must-not-leak")
        .output()
        .expect("running shoal")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn plugins_list_shows_the_builtins() {
    let data = tempfile::tempdir().unwrap();
    let out = shoal(data.path(), &["plugins", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"shell") && ids.contains(&"noop"), "{ids:?}");
    let shell = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "shell")
        .unwrap();
    assert_eq!(shell["wit"], "0.1.0");
    assert_eq!(
        shell["capabilities"],
        serde_json::json!(["process", "work-dir"])
    );

    let out = shoal(data.path(), &["plugins", "list"]);
    let table = text(&out);
    assert!(
        table.contains("shell") && table.contains("process, work-dir"),
        "{table}"
    );
}

#[test]
fn task_run_runs_a_real_script() {
    let data = tempfile::tempdir().unwrap();
    let out = shoal(
        data.path(),
        &[
            "task",
            "run",
            "--type",
            "shell",
            "--params",
            r#"{"command":"echo visible; env; echo '${setValue(day=monday)}'"}"#,
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("state: succeeded"), "{all}");
    assert!(all.contains("day = monday"), "{all}");
    assert!(all.contains("[out] visible"), "{all}");
    // The host's environment does not reach the script beyond the pass-through list.
    assert!(!all.contains("must-not-leak"), "{all}");
    assert!(all.contains("[out] PATH="), "{all}");

    let out = shoal(
        data.path(),
        &[
            "task",
            "run",
            "--type",
            "shell",
            "--params",
            r#"{"command":"exit 4"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("script exited with code 4"),
        "{}",
        text(&out)
    );

    let out = shoal(
        data.path(),
        &["task", "run", "--type", "shell", "--params", "{not json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--params is not valid JSON"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_bad_policy_file_is_reported_with_its_path() {
    let data = tempfile::tempdir().unwrap();
    let policy = data.path().join("policy.toml");
    std::fs::write(&policy, "[defaults]\nprocess = maybe\n").unwrap();
    let out = shoal(data.path(), &["plugins", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let all = text(&out);
    assert!(
        all.contains("policy.toml") && all.contains("line 2"),
        "{all}"
    );
}

#[test]
fn a_new_plugin_builds_installs_and_runs() {
    let data = tempfile::tempdir().unwrap();
    let project = data.path().join("demo");
    let out = shoal(
        data.path(),
        &["plugins", "new", "demo", "--dir", project.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));

    // The one build command the template documents.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&project)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap();
    assert!(status.success());

    let out = shoal(
        data.path(),
        &["plugins", "install", project.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("installed demo 0.1.0"),
        "{}",
        text(&out)
    );

    let out = shoal(
        data.path(),
        &[
            "task",
            "run",
            "--type",
            "demo",
            "--params",
            r#"{"who":"shoal"}"#,
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("greeting = hello, shoal"), "{all}");
    assert!(all.contains("[plugin] hello, shoal!"), "{all}");

    let out = shoal(
        data.path(),
        &[
            "task",
            "run",
            "--type",
            "demo",
            "--params",
            r#"{"who":" "}"#,
        ],
    );
    assert!(
        text(&out).contains("invalid parameters: `who`: must not be empty"),
        "{}",
        text(&out)
    );

    let out = shoal(data.path(), &["plugins", "list"]);
    assert!(text(&out).contains("demo"), "{}", text(&out));
    assert!(repo_root().join("sdk").is_dir());
}

#[test]
fn bench_prints_its_figures_as_json() {
    let data = tempfile::tempdir().unwrap();
    let out = shoal(
        data.path(),
        &["bench", "plugins", "--json", "--iterations", "200"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let figures: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "compile_ms",
        "cached_load_ms",
        "noop_median_us",
        "noop_p99_us",
        "tasks_per_s",
    ] {
        let v = figures[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {figures}"));
        assert!(v > 0.0, "{key} = {v}");
    }
}

#[test]
fn validate_reports_every_problem_with_file_line_and_field() {
    let data = tempfile::tempdir().unwrap();
    let good = data.path().join("good.yaml");
    std::fs::write(
        &good,
        "workflow:\n  name: good\n  param: {x: 1}\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo ${x}\n  - name: b\n    task_type: NOOP\n    deps: [a]\n",
    )
    .unwrap();
    let out = shoal(data.path(), &["validate", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok (workflow `good`, 2 tasks)"),
        "{}",
        text(&out)
    );

    let bad = data.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "workflow:\n  name: bad\ntasks:\n  - name: a\n    task_type: Shell\n    deps: [c]\n    comand: echo typo\n  - name: b\n    task_type: Spark\n  - name: c\n    task_type: Shell\n    deps: [a]\n    command: echo c\n    env: {N: [1]}\n  - name: b\n    task_type: noop\n",
    )
    .unwrap();
    let out = shoal(data.path(), &["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    let f = bad.display().to_string();
    for expected in [
        format!("{f}:15: field `tasks[3].name`: duplicate task name `b` (first defined at line 8)"),
        format!("{f}:4: field `deps`: dependency cycle between tasks `a`, `c`"),
        format!(
            "{f}:8: field `tasks[1] `b`.task_type`: unknown task type `Spark` (available: condition, dependent, flink, flink-cdc, http, noop, python, shell, sql, sub-workflow, switch)"
        ),
        format!("{f}:4: field `tasks[0] `a`.comand`: unknown field `comand`, expected one of"),
        format!("{f}:10: field `tasks[2] `c`.env.N`: invalid type: sequence, expected a string"),
    ] {
        assert!(all.contains(&expected), "missing `{expected}` in:\n{all}");
    }
}

/// Fields pydolphinscheduler accepts that Shoal does not act on are warnings naming
/// file, line and field; they do not fail the file.
#[test]
fn validate_warns_about_fields_it_accepts_but_does_not_support() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("ds.yaml");
    std::fs::write(
        &file,
        "workflow:\n  name: ds\n  tenant: etl\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo a\n    environment_name: prod\n",
    )
    .unwrap();
    let out = shoal(data.path(), &["validate", file.to_str().unwrap()]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let at = file.display();
    assert!(
        all.contains(&format!(
            "warning: {at}:3: field `workflow.tenant`: accepted, not supported: "
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "warning: {at}:8: field `tasks[0] `a`.environment_name`: accepted, not supported: "
        )),
        "{all}"
    );
    assert!(all.contains("ok (workflow `ds`, 1 tasks)"), "{all}");
}

/// The embedded engine answers `instances` and `instance show` in the API's own shape
/// (`InstancePage`, `InstanceDetail`), printed by the same code as against a server.
#[test]
fn embedded_reads_answer_in_the_api_shape() {
    let data = tempfile::tempdir().unwrap();
    let wf = data.path().join("hi.yaml");
    std::fs::write(
        &wf,
        "workflow:\n  name: hi\ntasks:\n  - name: t\n    task_type: noop\n",
    )
    .unwrap();
    let out = shoal(data.path(), &["run", wf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = shoal(data.path(), &["instances", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["total"], 1, "{page}");
    let item = &page["items"][0];
    assert_eq!(
        (&item["name"], &item["state"]),
        (&"hi".into(), &"succeeded".into()),
        "{page}"
    );
    let id = item["id"].as_i64().unwrap().to_string();
    let out = shoal(data.path(), &["instance", "show", &id, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["tasks"][0]["task_name"], "t", "{d}");
    assert_eq!(d["state"], "succeeded", "{d}");
    let out = shoal(data.path(), &["instances", "--workflow", "nope"]);
    assert!(
        !out.status.success() && text(&out).contains("no workflow `nope`"),
        "{}",
        text(&out)
    );
}
