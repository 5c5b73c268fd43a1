//! DolphinScheduler exports imported into a real `shoal server` (SQLite file, and a
//! fresh PostgreSQL database where the 3.2 export runs), through
//! `POST /api/v1/projects/{project}/import` and through `shoal import` / `shoal export`
//! as a client of that server. The exports are this suite's own, under
//! `e2e/fixtures/dolphin/`, and only hold task types that run here (SHELL,
//! SUB_PROCESS / SUB_WORKFLOW, CONDITIONS, SWITCH), plus one SPARK task that Shoal
//! cannot run. Every imported workflow is then run: what was converted has to behave
//! as DolphinScheduler would have run it.
//!
//! `ds32_parent_child.json` (and `ds33_parent_child.json`, the same in 3.3's naming)
//! holds two workflows, the parent written first:
//!
//! - `import_child` (OFFLINE, PARALLEL): `emit` prints `${setValue(x=42)}` and declares
//!   `x` as an OUT local parameter;
//! - `import_parent` (ONLINE, SERIAL_WAIT, global `greeting=hello`, an OFFLINE schedule
//!   `0 0 2 * * ? *` in Asia/Shanghai from 2024-01-01 to 2124-01-01):
//!   `prepare` → `call_child` (the child as a sub-workflow) → `use_x` (echoes `${x}`,
//!   sets `seen=${x}`) → `check` (CONDITIONS on `use_x` succeeding: `on_success`, else
//!   `on_failure`); and `call_child` → `route` (SWITCH `${x} > 40`: `big`, else
//!   `small`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::Method;
use serde_json::{Value, json};
use shoal_tests::server::{Client, Reply, Server, on_both_databases, settle};
use shoal_tests::shoal_bin;

const ADMIN: &str = "shoal-admin-token-for-import-tests";

/// 2024-01-01 00:00:00 in Asia/Shanghai (UTC+8), in ms since the epoch.
const JAN_1_2024_SHANGHAI: i64 = 1_704_038_400_000;
/// 2124-01-01 00:00:00 in Asia/Shanghai.
const JAN_1_2124_SHANGHAI: i64 = 4_859_712_000_000;
/// 2024-01-01 00:00:00 UTC.
const JAN_1_2024_UTC: i64 = 1_704_067_200_000;
/// 2124-01-01 00:00:00 UTC.
const JAN_1_2124_UTC: i64 = 4_859_740_800_000;

// ---- harness ----

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e/fixtures/dolphin")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name))
        .unwrap_or_else(|e| panic!("reading fixture {name}: {e}"))
}

async fn start_server(data: &Path, db: Option<&str>) -> Server {
    Server::start(data, db, ADMIN).await
}

/// Create project `name` as `c` and, as the admin, let it run process task types.
async fn create_project(c: &Client, name: &str) {
    c.post("/api/v1/projects", json!({"name": name}))
        .await
        .expect(201);
    let admin = Client::new(c.base(), Some(ADMIN));
    admin
        .send(
            admin
                .request(Method::PATCH, &format!("/api/v1/projects/{name}/tenancy"))
                .json(&json!({"allow_process": true})),
        )
        .await
        .expect(200);
}

/// POST `body` to the project's import endpoint with the query string `query`.
async fn import(c: &Client, project: &str, query: &str, body: &str) -> Reply {
    let path = if query.is_empty() {
        format!("/api/v1/projects/{project}/import")
    } else {
        format!("/api/v1/projects/{project}/import?{query}")
    };
    c.send_raw(Method::POST, &path, "application/json", body.to_owned())
        .await
}

async fn definitions(c: &Client, project: &str) -> Vec<Value> {
    c.get(&format!("/api/v1/projects/{project}/definitions"))
        .await
        .expect(200)
        .json()
        .as_array()
        .unwrap()
        .clone()
}

async fn definition(c: &Client, project: &str, name: &str) -> Value {
    c.get(&format!("/api/v1/projects/{project}/definitions/{name}"))
        .await
        .expect(200)
        .json()
}

async fn online(c: &Client, project: &str, name: &str) {
    let v = c
        .post_empty(&format!(
            "/api/v1/projects/{project}/definitions/{name}/online"
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(v["online"], true, "{v}");
}

/// Start a run that must start at once; its instance id.
async fn start_run(c: &Client, project: &str, name: &str) -> i64 {
    let l = c
        .post(
            &format!("/api/v1/projects/{project}/definitions/{name}/runs"),
            json!({}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(l["outcome"], "started", "{l}");
    l["instance"].as_i64().unwrap()
}

/// The newest attempt of task `name` in an instance detail.
fn task<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task_name"] == name)
        .max_by_key(|t| t["id"].as_i64())
        .unwrap_or_else(|| panic!("no task `{name}` in {detail}"))
}

fn state_of<'a>(detail: &'a Value, name: &str) -> &'a str {
    task(detail, name)["state"].as_str().unwrap()
}

async fn log_of(c: &Client, task_id: i64) -> String {
    c.get(&format!("/api/v1/tasks/{task_id}/log"))
        .await
        .expect(200)
        .body
}

/// The spec of task `name` in a definition detail (`GET .../definitions/{name}`).
fn spec_task<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["spec"]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in the spec: {detail}"))
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task `{name}` in the spec: {detail}"))
}

fn report_names(report: &Value) -> Vec<&str> {
    report["workflows"]
        .as_array()
        .unwrap_or_else(|| panic!("not an import report: {report}"))
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect()
}

fn reported<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("`{name}` is not in the report: {report}"))
}

fn warnings(report: &Value) -> Vec<&str> {
    report["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings list: {report}"))
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect()
}

// ---- the parent and child export ----

/// What importing either version of the parent/child export must report.
fn check_parent_child_report(report: &Value) {
    assert_eq!(
        report_names(report),
        ["import_child", "import_parent"],
        "the child is written before the parent that starts it: {report}"
    );
    let child = reported(report, "import_child");
    assert_eq!(child["version"], 1, "{report}");
    assert_eq!(child["created"], true, "{report}");
    assert_eq!(child["online"], false, "releaseState OFFLINE: {report}");
    assert_eq!(child["run_mode"], "parallel", "{report}");
    assert!(child["schedule"].is_null(), "{report}");

    let parent = reported(report, "import_parent");
    assert_eq!(parent["version"], 1, "{report}");
    assert_eq!(parent["created"], true, "{report}");
    assert_eq!(parent["online"], true, "releaseState ONLINE: {report}");
    assert_eq!(parent["run_mode"], "serial-wait", "SERIAL_WAIT: {report}");
    assert_eq!(
        parent["schedule"], "0 0 2 * * ? * (Asia/Shanghai), offline",
        "DolphinScheduler's export writes the schedule OFFLINE: {report}"
    );
    // The file holds nothing Shoal drops or cannot act on.
    assert!(
        warnings(report).is_empty(),
        "a clean export imports without warnings: {report}"
    );
}

/// After importing the parent/child export into `project`: its schedule, run modes and
/// definitions as the API shows them; then both online, a run of the parent to its end,
/// and what each task did.
async fn check_and_run_parent_child(s: &Server, project: &str, report: &Value) {
    // The schedule: Quartz cron as written, its zone, its window read in that zone.
    let schedules = s
        .get(&format!("/api/v1/projects/{project}/schedules"))
        .await
        .expect(200)
        .json();
    let schedules = schedules.as_array().unwrap();
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    let sched = &schedules[0];
    assert_eq!(sched["workflow"], "import_parent", "{sched}");
    assert_eq!(sched["cron"], "0 0 2 * * ? *", "{sched}");
    assert_eq!(sched["timezone"], "Asia/Shanghai", "{sched}");
    assert_eq!(sched["online"], false, "{sched}");
    assert_eq!(sched["start_at"], JAN_1_2024_SHANGHAI, "{sched}");
    assert_eq!(sched["end_at"], JAN_1_2124_SHANGHAI, "{sched}");
    // Its next fires are at 02:00 Shanghai time.
    let upcoming = sched["upcoming"].as_array().unwrap();
    assert!(!upcoming.is_empty(), "{sched}");
    for t in upcoming {
        let t = t.as_str().unwrap();
        assert!(t.ends_with("T02:00:00+08:00"), "{t} in {sched}");
    }

    // Run modes and release states as the definitions API has them.
    let parent = definition(s, project, "import_parent").await;
    assert_eq!(parent["run_mode"], "serial-wait", "{parent}");
    assert_eq!(parent["online"], true, "{parent}");
    assert_eq!(parent["current_version"], 1, "{parent}");
    assert_eq!(parent["spec"]["global_params"]["greeting"], "hello");
    assert_eq!(spec_task(&parent, "call_child")["task_type"], "SubWorkflow");
    assert_eq!(
        spec_task(&parent, "call_child")["params"]["workflow_name"],
        "import_child"
    );
    assert_eq!(spec_task(&parent, "route")["task_type"], "Switch");
    assert_eq!(spec_task(&parent, "check")["task_type"], "Condition");
    let child = definition(s, project, "import_child").await;
    assert_eq!(child["run_mode"], "parallel", "{child}");
    assert_eq!(child["online"], false, "{child}");
    let emit = spec_task(&child, "emit");
    assert_eq!(
        emit["local_params"],
        json!([{"prop": "x", "direct": "out", "type": "VARCHAR", "value": ""}]),
        "{child}"
    );

    // Whatever the report says is offline goes online (the child must be, to run).
    for w in report["workflows"].as_array().unwrap() {
        if w["online"] == false {
            online(s, project, w["name"].as_str().unwrap()).await;
        }
    }

    let id = start_run(s, project, "import_parent").await;
    let done = settle(s, id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["name"], "import_parent", "{done}");

    // The global parameter reached the first task.
    let prepare = task(&done, "prepare");
    assert_eq!(prepare["state"], "succeeded", "{done}");
    let log = log_of(s, prepare["id"].as_i64().unwrap()).await;
    assert!(log.contains("hello from the parent"), "{log}");

    // The child ran as a sub-workflow of `call_child`, and its OUT parameter came back.
    let call = task(&done, "call_child");
    assert_eq!(call["state"], "succeeded", "{done}");
    assert_eq!(call["task_type"], "SubWorkflow", "{call}");
    let child_id: i64 = call["handle"]
        .as_str()
        .unwrap_or_else(|| panic!("a SubWorkflow task holds its child's id: {call}"))
        .parse()
        .unwrap();
    let child_run = settle(s, child_id).await;
    assert_eq!(child_run["name"], "import_child", "{child_run}");
    assert_eq!(child_run["state"], "succeeded", "{child_run}");
    assert_eq!(
        child_run["parent_task_instance_id"], call["id"],
        "{child_run}"
    );
    assert_eq!(child_run["project"], project, "{child_run}");
    let emit = task(&child_run, "emit");
    assert_eq!(emit["state"], "succeeded", "{child_run}");
    assert_eq!(emit["out_params"]["x"], "42", "{child_run}");
    assert_eq!(call["out_params"]["x"], "42", "{call}");

    // Downstream of the sub-workflow, `${x}` is 42.
    let use_x = task(&done, "use_x");
    assert_eq!(use_x["state"], "succeeded", "{done}");
    assert_eq!(use_x["out_params"]["seen"], "42", "{use_x}");
    let log = log_of(s, use_x["id"].as_i64().unwrap()).await;
    assert!(log.contains("got x=42"), "{log}");

    // One branch of each: the Switch saw x > 40, the Condition saw `use_x` succeed.
    assert_eq!(state_of(&done, "route"), "succeeded", "{done}");
    assert_eq!(state_of(&done, "big"), "succeeded", "{done}");
    assert_eq!(state_of(&done, "small"), "skipped", "{done}");
    assert_eq!(state_of(&done, "check"), "succeeded", "{done}");
    assert_eq!(state_of(&done, "on_success"), "succeeded", "{done}");
    assert_eq!(state_of(&done, "on_failure"), "skipped", "{done}");
    let big = task(&done, "big");
    let log = log_of(s, big["id"].as_i64().unwrap()).await;
    assert!(log.contains("big branch"), "{log}");
}

/// 1: the 3.2 export on both databases; a reader of the project may not import.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ds32_export_imports_and_runs_on_both_databases() {
    on_both_databases(|data, db| async move {
        let s = start_server(data.path(), db.as_deref()).await;
        let project = "dolphin32";
        create_project(&s, project).await;
        let export = fixture("ds32_parent_child.json");

        // A user who may only read the project is refused, and nothing is written.
        s.post("/api/v1/users", json!({"name": "reader", "role": "user"}))
            .await
            .expect(201);
        let token = s
            .post("/api/v1/users/reader/tokens", json!({}))
            .await
            .expect(201)
            .json()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        s.put(
            &format!("/api/v1/projects/{project}/permissions/reader"),
            json!({"level": "read"}),
        )
        .await
        .expect(204);
        let reader = s.client(Some(&token));
        assert!(definitions(&reader, project).await.is_empty());
        import(&reader, project, "", &export)
            .await
            .error(403, "forbidden");
        assert!(definitions(&s, project).await.is_empty());

        // The importer's own project only: a project that is not there is 404.
        import(&s, "no-such-project", "", &export)
            .await
            .error(404, "not-found");

        let report = import(&s, project, "", &export).await.expect(200).json();
        check_parent_child_report(&report);
        let names: Vec<Value> = definitions(&s, project)
            .await
            .iter()
            .map(|d| d["name"].clone())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&json!("import_child")) && names.contains(&json!("import_parent")));
        // The reader sees what the editor imported.
        assert_eq!(definitions(&reader, project).await.len(), 2);

        check_and_run_parent_child(&s, project, &report).await;

        // The same file again: nothing changed, so no new versions; the release state
        // and run mode are the file's again.
        let again = import(&s, project, "", &export).await.expect(200).json();
        assert_eq!(
            report_names(&again),
            ["import_child", "import_parent"],
            "{again}"
        );
        for w in again["workflows"].as_array().unwrap() {
            assert_eq!(w["version"], 1, "{again}");
            assert_eq!(w["created"], false, "{again}");
        }
        assert_eq!(reported(&again, "import_child")["online"], false, "{again}");
        assert_eq!(
            definition(&s, project, "import_child").await["online"],
            false
        );
        assert_eq!(
            definition(&s, project, "import_parent").await["online"],
            true
        );
        let schedules = s
            .get(&format!("/api/v1/projects/{project}/schedules"))
            .await
            .expect(200)
            .json();
        assert_eq!(schedules.as_array().unwrap().len(), 1, "{schedules}");
    })
    .await;
}

/// 2: the same workflows in 3.3's naming (`workflowDefinition`,
/// `workflowTaskRelationList`, `workflowDefinitionCode`, SUB_WORKFLOW).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ds33_export_imports_and_runs() {
    let data = tempfile::tempdir().unwrap();
    let s = start_server(data.path(), None).await;
    let project = "dolphin33";
    create_project(&s, project).await;
    let export = fixture("ds33_parent_child.json");
    assert!(export.contains("\"workflowDefinition\"") && export.contains("\"SUB_WORKFLOW\""));
    assert!(!export.contains("processDefinition"));
    let report = import(&s, project, "", &export).await.expect(200).json();
    check_parent_child_report(&report);
    check_and_run_parent_child(&s, project, &report).await;

    // 3.2's file converts to the very same definitions: importing it over them adds
    // no version.
    let same = import(&s, project, "", &fixture("ds32_parent_child.json"))
        .await
        .expect(200)
        .json();
    assert_eq!(
        report_names(&same),
        ["import_child", "import_parent"],
        "{same}"
    );
    for w in same["workflows"].as_array().unwrap() {
        assert_eq!(w["version"], 1, "{same}");
        assert_eq!(w["created"], false, "3.2 and 3.3 differ: {same}");
    }

    // `export_timezone`: the window was written by a server in UTC, not in the
    // schedule's own zone.
    let utc = "dolphin33-utc";
    create_project(&s, utc).await;
    let report = import(&s, utc, "export_timezone=UTC", &export)
        .await
        .expect(200)
        .json();
    assert_eq!(
        reported(&report, "import_parent")["schedule"],
        "0 0 2 * * ? * (Asia/Shanghai), offline",
        "{report}"
    );
    let schedules = s
        .get(&format!("/api/v1/projects/{utc}/schedules"))
        .await
        .expect(200)
        .json();
    assert_eq!(schedules[0]["timezone"], "Asia/Shanghai", "{schedules}");
    assert_eq!(
        schedules[0]["start_at"], JAN_1_2024_UTC,
        "2024-01-01 00:00:00 read in UTC: {schedules}"
    );
    assert_eq!(schedules[0]["end_at"], JAN_1_2124_UTC, "{schedules}");
    import(&s, utc, "export_timezone=Mars/Olympus", &export)
        .await
        .error(422, "invalid-definition");

    // A schedule released in the file is online, with its next fire at 02:00 in
    // Shanghai (18:00 UTC), while its definition is; under an offline one it is not.
    let mut live: Value = serde_json::from_str(&export).unwrap();
    assert_eq!(live[0]["workflowDefinition"]["name"], "import_parent");
    live[0]["schedule"]["releaseState"] = json!("ONLINE");
    let project = "dolphin33-live";
    create_project(&s, project).await;
    let report = import(&s, project, "", &live.to_string())
        .await
        .expect(200)
        .json();
    assert_eq!(
        reported(&report, "import_parent")["schedule"],
        "0 0 2 * * ? * (Asia/Shanghai), online",
        "{report}"
    );
    let schedules = s
        .get(&format!("/api/v1/projects/{project}/schedules"))
        .await
        .expect(200)
        .json();
    assert_eq!(schedules[0]["online"], true, "{schedules}");
    let next = schedules[0]["next_fire_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("an online schedule has a next fire: {schedules}"));
    assert_eq!(next % 86_400_000, 18 * 3_600_000, "{schedules}");
    assert!(next > JAN_1_2024_SHANGHAI, "{schedules}");

    live[0]["workflowDefinition"]["releaseState"] = json!("OFFLINE");
    let project = "dolphin33-dark";
    create_project(&s, project).await;
    let report = import(&s, project, "", &live.to_string())
        .await
        .expect(200)
        .json();
    let parent = reported(&report, "import_parent");
    assert_eq!(parent["online"], false, "{report}");
    assert_eq!(
        parent["schedule"], "0 0 2 * * ? * (Asia/Shanghai), offline",
        "a schedule is online only while its definition is: {report}"
    );
    let schedules = s
        .get(&format!("/api/v1/projects/{project}/schedules"))
        .await
        .expect(200)
        .json();
    assert_eq!(schedules[0]["online"], false, "{schedules}");
    assert!(schedules[0]["next_fire_at"].is_null(), "{schedules}");
}

/// 3: the create-definition API's body (`taskDefinitionJson` / `taskRelationJson` as
/// strings) is one workflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_body_imports_as_one_workflow() {
    let data = tempfile::tempdir().unwrap();
    let s = start_server(data.path(), None).await;
    let project = "dolphin-api";
    create_project(&s, project).await;
    let body = fixture("api_body.json");
    let report = import(&s, project, "", &body).await.expect(200).json();
    assert_eq!(report_names(&report), ["api_made"], "{report}");
    let w = reported(&report, "api_made");
    assert_eq!(w["version"], 1, "{report}");
    assert_eq!(w["created"], true, "{report}");
    assert_eq!(
        w["online"], false,
        "an API body has no release state: {report}"
    );
    assert_eq!(w["run_mode"], "serial-discard", "{report}");
    assert!(w["schedule"].is_null(), "{report}");
    assert!(warnings(&report).is_empty(), "{report}");

    let listed = definitions(&s, project).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let d = definition(&s, project, "api_made").await;
    assert_eq!(d["run_mode"], "serial-discard", "{d}");
    assert_eq!(
        d["spec"]["description"],
        "created through the create-definition API"
    );
    let tasks: Vec<&str> = d["spec"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["hello", "left", "join"], "{d}");
    let mut deps: Vec<&str> = spec_task(&d, "join")["deps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    deps.sort();
    assert_eq!(deps, ["hello", "left"], "{d}");

    online(&s, project, "api_made").await;
    let id = start_run(&s, project, "api_made").await;
    let done = settle(&s, id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for t in ["hello", "left", "join"] {
        assert_eq!(state_of(&done, t), "succeeded", "{done}");
    }
    let hello = task(&done, "hello");
    let log = log_of(&s, hello["id"].as_i64().unwrap()).await;
    assert!(log.contains("hello api"), "the local IN parameter: {log}");
    assert_eq!(task(&done, "join")["out_params"]["joined"], "yes", "{done}");

    // A changed body is a new version of the same definition.
    let changed = body.replace("echo left", "echo left again");
    assert_ne!(changed, body);
    let report = import(&s, project, "", &changed).await.expect(200).json();
    let w = reported(&report, "api_made");
    assert_eq!(w["version"], 2, "{report}");
    assert_eq!(w["created"], true, "{report}");
    let d = definition(&s, project, "api_made").await;
    assert_eq!(d["versions"], json!([1, 2]), "{d}");
    assert_eq!(
        spec_task(&d, "left")["params"]["command"],
        "echo left again",
        "{d}"
    );
    assert_eq!(definitions(&s, project).await.len(), 1);
}

/// 4: a SPARK task refuses the whole export (its clean neighbour too), unless partial:
/// then it is a skipped Noop placeholder and the rest runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsupported_task_type_refuses_the_export_unless_partial() {
    let data = tempfile::tempdir().unwrap();
    let s = start_server(data.path(), None).await;
    let project = "dolphin-spark";
    create_project(&s, project).await;
    let export = fixture("spark_export.json");

    for query in ["", "partial=false"] {
        let m = import(&s, project, query, &export)
            .await
            .error(422, "invalid-definition");
        assert!(m.contains("spark_job"), "the task is named: {m}");
        assert!(m.contains("with_spark"), "the workflow is named: {m}");
        assert!(m.contains("SPARK"), "the type is named: {m}");
        assert!(
            m.contains("import with `partial`"),
            "the way out is named: {m}"
        );
        assert!(
            !m.contains("clean_neighbour"),
            "only what is wrong is listed: {m}"
        );
    }
    assert!(
        definitions(&s, project).await.is_empty(),
        "nothing is written unless every workflow loads"
    );
    let schedules = s
        .get(&format!("/api/v1/projects/{project}/schedules"))
        .await
        .expect(200)
        .json();
    assert_eq!(schedules, json!([]));

    let report = import(&s, project, "partial=true", &export)
        .await
        .expect(200)
        .json();
    assert_eq!(
        report_names(&report),
        ["clean_neighbour", "with_spark"],
        "{report}"
    );
    let warned: Vec<&str> = warnings(&report)
        .into_iter()
        .filter(|w| w.contains("spark_job"))
        .collect();
    assert_eq!(warned.len(), 1, "one warning names the task: {report}");
    assert!(
        warned[0].contains("with_spark") && warned[0].contains("SPARK"),
        "{report}"
    );

    // The placeholder: a Noop with flag NO, its description saying what it was.
    let d = definition(&s, project, "with_spark").await;
    let placeholder = spec_task(&d, "spark_job");
    assert_eq!(placeholder["task_type"], "Noop", "{d}");
    assert_eq!(placeholder["flag"], "no", "{d}");
    assert!(
        placeholder["description"]
            .as_str()
            .unwrap()
            .contains("SPARK"),
        "{d}"
    );
    assert!(
        placeholder["params"]
            .as_object()
            .is_none_or(|p| p.is_empty()),
        "none of Spark's fields are kept on a Noop: {d}"
    );
    assert_eq!(spec_task(&d, "after")["deps"], json!(["spark_job"]), "{d}");
    let v1 = s
        .get(&format!(
            "/api/v1/projects/{project}/definitions/with_spark/versions/1"
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(v1["spec"], d["spec"], "{v1}");
    let source = v1["source"].as_str().unwrap();
    assert!(
        source.contains("task_type: Noop") && source.contains("flag: \"NO\""),
        "{source}"
    );

    online(&s, project, "with_spark").await;
    let id = start_run(&s, project, "with_spark").await;
    let done = settle(&s, id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(state_of(&done, "before"), "succeeded", "{done}");
    assert_eq!(state_of(&done, "spark_job"), "skipped", "{done}");
    assert_eq!(
        state_of(&done, "after"),
        "succeeded",
        "a forbidden task's downstream still runs: {done}"
    );
    let after = task(&done, "after");
    let log = log_of(&s, after["id"].as_i64().unwrap()).await;
    assert!(log.contains("after spark"), "{log}");
}

/// 5: a SUB_PROCESS naming a workflow code that is not in the export.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dangling_sub_process_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let s = start_server(data.path(), None).await;
    let project = "dolphin-dangling";
    create_project(&s, project).await;
    let export = fixture("dangling_sub_process.json");
    // Partial or not: a reference to nothing is not a task type Shoal lacks.
    for query in ["", "partial=true"] {
        let m = import(&s, project, query, &export)
            .await
            .error(422, "invalid-definition");
        assert!(m.contains("missing_child"), "the task is named: {m}");
        assert!(m.contains("29999999999999"), "the code is named: {m}");
        assert!(
            m.contains("processDefinitionCode"),
            "the field is named: {m}"
        );
    }
    assert!(definitions(&s, project).await.is_empty());

    // Not an export at all, and malformed query parameters.
    let m = import(&s, project, "", "{\"hello\": 1}")
        .await
        .error(422, "invalid-definition");
    assert!(m.contains("not a DolphinScheduler export"), "{m}");
    let m = import(&s, project, "", "[{\"processDefinition\": ")
        .await
        .error(422, "invalid-definition");
    assert!(m.contains("line 1"), "{m}");
    let m = import(
        &s,
        project,
        "datasources=seven",
        &fixture("ds32_parent_child.json"),
    )
    .await
    .error(400, "bad-request");
    assert!(m.contains("datasources") && m.contains("seven"), "{m}");
    assert!(definitions(&s, project).await.is_empty());
}

// ---- the CLI ----

/// Run `shoal` with `args` (a client of `server` where they say so), in a data dir of
/// the client's own.
fn shoal(home: &Path, args: &[&str]) -> Output {
    Command::new(shoal_bin())
        .arg("--data-dir")
        .arg(home)
        .args(args)
        .env_remove("SHOAL_SERVER")
        .env_remove("SHOAL_TOKEN")
        .env_remove("SHOAL_PROJECT")
        .env_remove("SHOAL_PROFILE")
        .env_remove("SHOAL_DB")
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .expect("running shoal")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "shoal {args:?} failed ({}):\n{}\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// 6: `shoal import` and `shoal export` against the server; the export validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_imports_and_exports_through_the_server() {
    let data = tempfile::tempdir().unwrap();
    let s = start_server(data.path(), None).await;
    let project = "dolphin-cli";
    create_project(&s, project).await;
    let home = tempfile::tempdir().unwrap();
    let url = s.url.clone();
    let remote = [
        "--server",
        url.as_str(),
        "--token",
        ADMIN,
        "--project",
        project,
    ];
    let with_remote = |args: &[&str]| -> Vec<String> {
        remote
            .iter()
            .chain(args)
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let home = home.path().to_path_buf();
        async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                (shoal(&home, &refs), args)
            })
            .await
            .unwrap()
        }
    };

    // The parent/child export: one line per workflow, children first.
    let ds32 = fixture_path("ds32_parent_child.json");
    let (out, args) = run(with_remote(&["import", ds32.to_str().unwrap()])).await;
    ok(&refs(&args), &out);
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("imported workflow"))
        .collect();
    assert_eq!(
        lines,
        [
            "imported workflow `import_child` version 1 (offline, parallel)",
            "imported workflow `import_parent` version 1 (online, serial-wait), schedule 0 0 2 * * ? * (Asia/Shanghai), offline",
        ],
        "{err}"
    );
    assert!(!err.contains("warning:"), "{err}");
    assert_eq!(definitions(&s, project).await.len(), 2);

    // The SPARK export: refused without --partial (exit status, the task named) ...
    let spark = fixture_path("spark_export.json");
    let (out, _) = run(with_remote(&["import", spark.to_str().unwrap()])).await;
    assert!(!out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("spark_job") && err.contains("SPARK"), "{err}");
    assert_eq!(definitions(&s, project).await.len(), 2);
    // ... and with it, imported, the placeholder's warning on stderr.
    let (out, args) = run(with_remote(&[
        "import",
        spark.to_str().unwrap(),
        "--partial",
        "--datasource",
        "1=warehouse",
    ]))
    .await;
    ok(&refs(&args), &out);
    let err = stderr(&out);
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains("spark_job"))
        .collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("SPARK"), "{err}");
    assert!(
        err.contains("imported workflow `with_spark` version 1 (offline, parallel)"),
        "{err}"
    );
    assert!(
        err.contains("imported workflow `clean_neighbour` version 1 (offline, parallel)"),
        "{err}"
    );
    assert!(
        stdout(&out).is_empty(),
        "the report goes to stderr: {}",
        stdout(&out)
    );
    assert_eq!(definitions(&s, project).await.len(), 4);

    // `shoal export NAME` prints the YAML the definition was saved from ...
    let (out, args) = run(with_remote(&["export", "import_parent"])).await;
    ok(&refs(&args), &out);
    let yaml = stdout(&out);
    let v1 = s
        .get(&format!(
            "/api/v1/projects/{project}/definitions/import_parent/versions/1"
        ))
        .await
        .expect(200)
        .json();
    assert_eq!(yaml, v1["source"].as_str().unwrap());
    assert!(yaml.contains("name: import_parent"), "{yaml}");
    assert!(yaml.contains("task_type: SubWorkflow"), "{yaml}");
    assert!(yaml.contains("workflow_name: import_child"), "{yaml}");
    assert!(yaml.contains("timezone: Asia/Shanghai"), "{yaml}");
    // ... and `-o FILE` writes the same.
    let out_dir = tempfile::tempdir().unwrap();
    let parent_file = out_dir.path().join("import_parent.yaml");
    let (out, args) = run(with_remote(&[
        "export",
        "import_parent",
        "-o",
        parent_file.to_str().unwrap(),
    ]))
    .await;
    ok(&refs(&args), &out);
    assert_eq!(std::fs::read_to_string(&parent_file).unwrap(), yaml);
    assert!(stderr(&out).contains("wrote"), "{}", stderr(&out));
    let placeholder_file = out_dir.path().join("with_spark.yaml");
    let (out, _) = run(with_remote(&["export", "with_spark"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&placeholder_file, stdout(&out)).unwrap();

    // What was exported is a definition `shoal validate` accepts.
    let check_home = tempfile::tempdir().unwrap();
    let files = [
        parent_file.to_str().unwrap().to_owned(),
        placeholder_file.to_str().unwrap().to_owned(),
    ];
    let check = {
        let check_home = check_home.path().to_path_buf();
        let files = files.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["validate"];
            args.extend(files.iter().map(String::as_str));
            shoal(&check_home, &args)
        })
        .await
        .unwrap()
    };
    ok(&["validate"], &check);
    let said = stdout(&check);
    assert!(
        said.contains("ok (workflow `import_parent`, 9 tasks)"),
        "{said}"
    );
    assert!(
        said.contains("ok (workflow `with_spark`, 3 tasks)"),
        "{said}"
    );

    // A read-only user's import through the CLI fails, naming the refusal.
    s.post("/api/v1/users", json!({"name": "viewer", "role": "user"}))
        .await
        .expect(201);
    let token = s
        .post("/api/v1/users/viewer/tokens", json!({}))
        .await
        .expect(201)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.put(
        &format!("/api/v1/projects/{project}/permissions/viewer"),
        json!({"level": "read"}),
    )
    .await
    .expect(204);
    let api_body = fixture_path("api_body.json");
    let (out, _) = run(vec![
        "--server".into(),
        url.clone(),
        "--token".into(),
        token,
        "--project".into(),
        project.into(),
        "import".into(),
        api_body.to_str().unwrap().into(),
    ])
    .await;
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    assert_eq!(definitions(&s, project).await.len(), 4);
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
