//! The engine under pressure (issue 9, "engine safety under pressure"), each scenario on a
//! SQLite file and on a fresh PostgreSQL database, with the built-in plugins and real
//! shell processes:
//!
//! - external jobs (SubWorkflow) hold the shared container only while they poll, so a
//!   container of one slot runs parents and their children to the end;
//! - a sub-workflow cycle or nesting past the limit fails with a clear message;
//! - a store that refuses writes (triggers that raise, or a lock held by another
//!   process: `sqlite3` holding `BEGIN EXCLUSIVE`, `psql` holding `LOCK TABLE`) makes the
//!   instance's worker stop its tasks and let the instance go; recovery then finishes it,
//!   and no task ran twice at once.
//!
//! The cycle and depth checks are also tried by a plain user against a real `shoal
//! server` process.

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shoal_master::state::{TaskInstanceState as T, WorkflowState as W};
use shoal_master::{Master, MasterConfig};
use shoal_store::{Backend, Store, Write};
use shoal_tests::Harness;
use shoal_tests::flow::Flow;
use shoal_tests::server::{Client, Server};

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_and_postgres() {
                shoal_store::testing::on_both(|store, url| super::$name(store, url)).await
            }
        }
    )*};
}

on_both_databases!(
    external_jobs_leave_the_shared_container_between_polls,
    sub_workflow_cycles_and_deep_nesting_fail_clearly,
    refused_writes_stop_the_instances_tasks_until_recovery,
    a_locked_store_stops_the_instances_tasks_until_recovery,
    a_given_up_instance_is_loaded_again_once_the_store_takes_writes,
);

fn flow(store: Store, harness: Harness, config: MasterConfig) -> Flow {
    let master = Master::new(store, harness.in_process(), config);
    Flow { harness, master }
}

async fn settle(flow: &Flow, id: i64, within: Duration, what: &str) -> W {
    tokio::time::timeout(within, flow.master.wait(id))
        .await
        .unwrap_or_else(|_| panic!("instance {id} did not settle within {within:?}: {what}"))
        .unwrap()
}

async fn external_jobs_leave_the_shared_container_between_polls(store: Store, _url: String) {
    // One shared slot for every short task and every external-job poll.
    let flow = flow(
        store,
        Harness::with_containers(1, 1),
        MasterConfig::default(),
    );
    flow.publish(
        "workflow:\n  name: leaf\ntasks:\n  - name: a\n    task_type: Noop\n  - name: b\n    task_type: Noop\n    deps: [a]\n",
    )
    .await;
    let yaml = r##"
workflow:
  name: parents
tasks:
  - name: first
    task_type: SubWorkflow
    workflow_name: leaf
  - name: second
    task_type: SubWorkflow
    workflow_name: leaf
  - name: beside
    task_type: Noop
  - name: after
    task_type: Noop
    deps: [first, second]
"##;
    let id = flow.start(yaml).await;
    let state = settle(
        &flow,
        id,
        Duration::from_secs(60),
        "the waiting SubWorkflow tasks starved their children of the shared slot",
    )
    .await;
    let attempts = flow.attempts(id).await;
    assert_eq!(state, W::Succeeded, "{attempts:#?}");
    for parent in ["first", "second"] {
        let child: i64 = attempts[parent][0]
            .handle
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        let row = flow
            .store()
            .workflow_instance(child)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.state, "succeeded", "child of `{parent}`");
    }
    for task in ["beside", "after"] {
        assert_eq!(attempts[task][0].state, "succeeded", "{task}");
    }
    let occupancy = flow.harness.engine.containers().unwrap().snapshot();
    assert_eq!(occupancy.shared.used, 0, "{occupancy:#?}");
    assert!(occupancy.waiting.is_empty(), "{occupancy:#?}");
}

/// The message of the `call` task of the run that `call` of instance `id` started.
async fn child_call_message(flow: &Flow, id: i64) -> (i64, String) {
    let attempts = flow.attempts(id).await;
    let child: i64 = attempts["call"][0]
        .handle
        .as_deref()
        .unwrap_or_else(|| panic!("`call` of {id} started no child: {attempts:#?}"))
        .parse()
        .unwrap();
    let child_attempts = flow.attempts(child).await;
    (child, child_attempts["call"][0].message.clone())
}

async fn sub_workflow_cycles_and_deep_nesting_fail_clearly(store: Store, _url: String) {
    let config = MasterConfig {
        max_sub_workflow_depth: 2,
        ..MasterConfig::default()
    };
    let flow = flow(store, Harness::new(), config);
    let calls = |name: &str, target: &str| {
        format!(
            "workflow:\n  name: {name}\ntasks:\n  - name: call\n    task_type: SubWorkflow\n    workflow_name: {target}\n"
        )
    };

    // Directly: a workflow that starts itself gets no child at all.
    let (id, state) = flow.run(&calls("selfish", "selfish")).await;
    assert_eq!(state, W::Failed);
    let call = &flow.attempts(id).await["call"][0];
    assert!(
        call.message
            .contains("sub-workflow cycle: selfish -> selfish"),
        "{}",
        call.message
    );
    assert!(call.handle.is_none(), "no child run was created");

    // Through a cycle: a -> b -> a is refused where b would start a again.
    flow.publish(&calls("cycle-b", "cycle-a")).await;
    let (id, state) = flow.run(&calls("cycle-a", "cycle-b")).await;
    assert_eq!(state, W::Failed);
    let (child, message) = child_call_message(&flow, id).await;
    assert!(
        message.contains("sub-workflow cycle: cycle-a -> cycle-b -> cycle-a"),
        "{message}"
    );
    let child_row = flow
        .store()
        .workflow_instance(child)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child_row.state, "failed");

    // Nesting: depth-0 -> depth-1 -> depth-2 is allowed with a limit of 2, a third level
    // is not.
    flow.publish("workflow:\n  name: depth-3\ntasks:\n  - name: leaf\n    task_type: Noop\n")
        .await;
    flow.publish(&calls("depth-2", "depth-3")).await;
    flow.publish(&calls("depth-1", "depth-2")).await;
    let (id, state) = flow.run(&calls("depth-0", "depth-1")).await;
    assert_eq!(state, W::Failed);
    let (depth_1, _) = child_call_message(&flow, id).await;
    let (depth_2, message) = child_call_message(&flow, depth_1).await;
    assert!(
        message.contains("sub-workflows nest deeper than 2"),
        "{message}"
    );
    assert!(flow.attempts(depth_2).await["call"][0].handle.is_none());

    // Within the limit the same chain runs.
    let (_, state) = flow.run(&calls("depth-1", "depth-2")).await;
    assert_eq!(state, W::Succeeded);
}

/// What each stored attempt of `task` printed, oldest attempt first: (timestamp, text)
/// of each line of standard output in its log. Timestamps are RFC 3339 in UTC, so they
/// compare as text.
async fn printed(flow: &Flow, id: i64, task: &str) -> Vec<Vec<(String, String)>> {
    let attempts = flow.attempts(id).await;
    let Some(rows) = attempts.get(task) else {
        return Vec::new();
    };
    rows.iter()
        .map(|row| {
            let Some(path) = &row.log_path else {
                return Vec::new();
            };
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| {
                    let (_, text) = line.split_once("[out] ")?;
                    let stamp = line.split_whitespace().next()?;
                    Some((stamp.to_owned(), text.trim().to_owned()))
                })
                .collect()
        })
        .collect()
}

fn texts(lines: &[(String, String)]) -> Vec<&str> {
    lines.iter().map(|(_, t)| t.as_str()).collect()
}

/// How a scenario makes the store refuse writes, and takes that back.
trait Refusal {
    fn release(self: Box<Self>);
}

/// Triggers that make every insert or update of a task instance or event fail.
struct Triggers {
    backend: Backend,
    url: String,
}

fn sqlite_path(url: &str) -> &str {
    let path = url.trim_start_matches("sqlite://");
    path.split_once('?').map_or(path, |(p, _)| p)
}

fn run_sql(backend: Backend, url: &str, sql: &str) {
    let output = match backend {
        Backend::Sqlite => Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000", sqlite_path(url), sql])
            .output(),
        Backend::Postgres => Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output(),
    }
    .expect("running sqlite3 / psql");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Triggers {
    fn install(backend: Backend, url: &str) -> Box<dyn Refusal> {
        let sql = match backend {
            Backend::Sqlite => {
                let mut sql = String::new();
                for (table, op) in [
                    ("task_instances", "INSERT"),
                    ("task_instances", "UPDATE"),
                    ("workflow_events", "INSERT"),
                ] {
                    sql.push_str(&format!(
                        "CREATE TRIGGER refuse_{table}_{op} BEFORE {op} ON {table} \
                         BEGIN SELECT RAISE(ABORT, 'writes refused by the test'); END;"
                    ));
                }
                sql
            }
            Backend::Postgres => {
                "CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'writes refused by the test'; END $$; \
                 CREATE TRIGGER refuse_tasks BEFORE INSERT OR UPDATE ON task_instances \
                 FOR EACH ROW EXECUTE FUNCTION refuse_writes(); \
                 CREATE TRIGGER refuse_events BEFORE INSERT ON workflow_events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_writes();"
                    .to_owned()
            }
        };
        run_sql(backend, url, &sql);
        Box::new(Self {
            backend,
            url: url.to_owned(),
        })
    }
}

impl Refusal for Triggers {
    fn release(self: Box<Self>) {
        let sql = match self.backend {
            Backend::Sqlite => "DROP TRIGGER refuse_task_instances_INSERT; \
                 DROP TRIGGER refuse_task_instances_UPDATE; \
                 DROP TRIGGER refuse_workflow_events_INSERT;"
                .to_owned(),
            Backend::Postgres => "DROP TRIGGER refuse_tasks ON task_instances; \
                 DROP TRIGGER refuse_events ON workflow_events; DROP FUNCTION refuse_writes();"
                .to_owned(),
        };
        run_sql(self.backend, &self.url, &sql);
    }
}

/// Another process holding the database's write lock: `sqlite3` inside `BEGIN
/// EXCLUSIVE`, or `psql` inside a transaction that took `LOCK TABLE ... ACCESS
/// EXCLUSIVE` on the instance tables.
struct Lock {
    child: Child,
}

impl Lock {
    fn take(backend: Backend, url: &str) -> Box<dyn Refusal> {
        let mut command = match backend {
            Backend::Sqlite => {
                let mut c = Command::new("sqlite3");
                c.args(["-batch", sqlite_path(url)]);
                c
            }
            Backend::Postgres => {
                let mut c = Command::new("psql");
                c.args([url, "-qAt", "-v", "ON_ERROR_STOP=1"]);
                c
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting sqlite3 / psql");
        let lock = match backend {
            Backend::Sqlite => ".timeout 10000\nBEGIN EXCLUSIVE;\n",
            Backend::Postgres => {
                "BEGIN;\nLOCK TABLE task_instances, workflow_events, workflow_instances IN ACCESS EXCLUSIVE MODE;\n"
            }
        };
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(lock.as_bytes()).unwrap();
        stdin.write_all(b"SELECT 'locked';\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked", "the lock was not taken");
        Box::new(Self { child })
    }
}

impl Refusal for Lock {
    fn release(mut self: Box<Self>) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"COMMIT;\n").unwrap();
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the lock holder failed: {status}");
    }
}

async fn refused_writes_stop_the_instances_tasks_until_recovery(store: Store, url: String) {
    let backend = store.backend();
    refusal_scenario(
        store,
        &url,
        MasterConfig::default(),
        |url| Triggers::install(backend, url),
        Recovery::Explicit,
    )
    .await;
}

async fn a_locked_store_stops_the_instances_tasks_until_recovery(store: Store, url: String) {
    let backend = store.backend();
    // A write that does not answer is not sent again (it may still land): the worker
    // gives the instance up after one unanswered write.
    let config = MasterConfig {
        store_write_timeout: Duration::from_secs(2),
        ..MasterConfig::default()
    };
    refusal_scenario(
        store,
        &url,
        config,
        |url| Lock::take(backend, url),
        Recovery::Explicit,
    )
    .await;
}

async fn a_given_up_instance_is_loaded_again_once_the_store_takes_writes(
    store: Store,
    url: String,
) {
    let backend = store.backend();
    // Reloads while the store still refuses fail again and wait longer (1 s, 2 s, 4 s...);
    // the first one after the refusal ends finishes the run, with no recovery asked for.
    let config = MasterConfig {
        recover_after: Duration::from_secs(1),
        ..MasterConfig::default()
    };
    refusal_scenario(
        store,
        &url,
        config,
        |url| Triggers::install(backend, url),
        Recovery::Automatic,
    )
    .await;
}

/// Who brings a given-up instance back: a restarted engine (`recover_unfinished`), or
/// the master on its own after `MasterConfig::recover_after`.
#[derive(PartialEq)]
enum Recovery {
    Explicit,
    Automatic,
}

/// Two shell tasks run; while both run the store starts refusing writes. `quick` ends
/// first: its end cannot be stored, so the worker gives the instance up, and must stop
/// `long`, whose result could not be stored either. Once the store takes writes again,
/// recovery runs both again and the instance succeeds; `long` never ran twice at once
/// and its first run never finished.
async fn refusal_scenario(
    store: Store,
    url: &str,
    config: MasterConfig,
    refuse: impl FnOnce(&str) -> Box<dyn Refusal>,
    recovery: Recovery,
) {
    let flow = flow(store, Harness::new(), config);
    let long_run = Duration::from_secs(6);
    let yaml = format!(
        r##"
workflow:
  name: under-refusal
tasks:
  - name: quick
    task_type: Shell
    command: |
      echo "quick start"
      sleep 1
      echo "quick end"
  - name: long
    task_type: Shell
    command: |
      echo "long start"
      sleep {secs}
      echo "long end"
"##,
        secs = long_run.as_secs()
    );
    let id = flow.start(&yaml).await;
    flow.when_task(id, "quick", T::Running).await;
    flow.when_task(id, "long", T::Running).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (quick, long) = (
            printed(&flow, id, "quick").await,
            printed(&flow, id, "long").await,
        );
        if quick.first().is_some_and(|l| !l.is_empty())
            && long.first().is_some_and(|l| !l.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tasks never started: {quick:?} {long:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused_at = Instant::now();
    let refusal = refuse(url);

    // `quick` ends, its end is refused, and the worker lets the instance go.
    let deadline = Instant::now() + Duration::from_secs(60);
    while flow.master.is_live(id) {
        assert!(
            Instant::now() < deadline,
            "the worker kept the instance although the store refused its writes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past the moment `long` would have finished had it been left running.
    tokio::time::sleep(
        (refused_at + long_run + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    )
    .await;
    // As left: `long`'s one attempt printed its start and nothing more, though it would
    // have ended by now had it been left running. (Read while the store still refuses
    // writes when it lets reads through: reloads cannot add attempts then.)
    let long_left_alone = async || {
        let long_left = printed(&flow, id, "long").await;
        assert_eq!(long_left.len(), 1, "{long_left:?}");
        assert_eq!(
            texts(&long_left[0]),
            ["long start"],
            "`long` finished a run whose result could not be stored"
        );
    };
    if recovery == Recovery::Automatic {
        long_left_alone().await;
    }
    refusal.release();
    // Whatever write the store still held has landed once this one is answered (one
    // writer, in order). It names no instance, so the answer is "not found".
    let barrier = flow
        .store()
        .write(vec![Write::UpdateWorkflowInstance {
            id: -1,
            state: "running".into(),
            started_at: None,
            ended_at: None,
        }])
        .await;
    assert!(barrier.is_err(), "{barrier:?}");
    if recovery == Recovery::Explicit {
        long_left_alone().await;
        let recovered = flow.master.recover_unfinished().await.unwrap();
        assert!(recovered.contains(&id), "{recovered:?}");
    }
    let state = settle(&flow, id, Duration::from_secs(60), "after recovery").await;
    let attempts = flow.attempts(id).await;
    assert_eq!(state, W::Succeeded, "{attempts:#?}");

    // `long` ran again from the start, after its first run was stopped.
    let long = printed(&flow, id, "long").await;
    assert_eq!(long.len(), 2, "{long:?}");
    assert_eq!(texts(&long[0]), ["long start"]);
    assert_eq!(texts(&long[1]), ["long start", "long end"]);
    assert!(long[1][0].0 > long[0][0].0, "{long:?}");
    let long_rows = &attempts["long"];
    assert!(
        long_rows[0].message.contains("engine stopped"),
        "{}",
        long_rows[0].message
    );
    assert_eq!(long_rows[1].state, "succeeded");
    // `quick` ran once more if its refused end never landed (refused outright), or not
    // (a write held up by a lock lands once the lock goes); never two runs at once.
    let quick = printed(&flow, id, "quick").await;
    assert!((1..=2).contains(&quick.len()), "{quick:?}");
    for run in &quick {
        assert_eq!(texts(run), ["quick start", "quick end"], "{quick:?}");
    }
    if let [first, second] = &quick[..] {
        assert!(second[0].0 > first[1].0, "{quick:?}");
    }
    assert_eq!(attempts["quick"].last().unwrap().state, "succeeded");
}

// ---- against a real `shoal server` ----------------------------------------------------

const ADMIN: &str = "shoal-admin-token-for-pressure-tests";

/// A server over SQLite in a fresh data dir, then one over a fresh PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_make_sub_workflows_loop_or_nest_without_end_on_a_server() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), None, ADMIN).await;
    sub_workflow_limits_over_http(&server).await;
    server.terminate(Duration::from_secs(20));
    if let Some((url, name)) = shoal_store::testing::fresh_pg().await {
        let data = tempfile::tempdir().unwrap();
        let mut server = Server::start(data.path(), Some(&url), ADMIN).await;
        sub_workflow_limits_over_http(&server).await;
        server.terminate(Duration::from_secs(20));
        shoal_store::testing::drop_pg(&name).await;
    }
}

async fn instance_detail(c: &Client, id: i64) -> Value {
    c.get(&format!("/api/v1/instances/{id}"))
        .await
        .expect(200)
        .json()
}

/// Wait until instance `id` is finished; returns its detail.
async fn finished(c: &Client, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let detail = instance_detail(c, id).await;
        if ["succeeded", "failed", "stopped"].contains(&detail["state"].as_str().unwrap_or("")) {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "instance {id} never finished: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `call` task of an instance detail.
fn call_task(detail: &Value) -> &Value {
    detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_name"] == "call")
        .unwrap_or_else(|| panic!("no `call` task: {detail}"))
}

/// The instance the `call` task of `detail` started.
fn child_of(detail: &Value) -> i64 {
    let call = call_task(detail);
    call["handle"]
        .as_str()
        .unwrap_or_else(|| panic!("`call` started no child: {call}"))
        .parse()
        .unwrap()
}

async fn sub_workflow_limits_over_http(server: &Server) {
    // A plain user with a project of its own.
    server
        .post("/api/v1/users", json!({"name": "nester", "role": "user"}))
        .await
        .expect(201);
    let token = server
        .post("/api/v1/users/nester/tokens", json!({"name": "pressure"}))
        .await
        .expect(201)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = server.client(Some(&token));
    user.post("/api/v1/projects", json!({"name": "nests"}))
        .await
        .expect(201);
    let define = async |name: &str, body: String| {
        user.post_yaml("nests", &body).await.expect(201);
        user.post_empty(&format!("/api/v1/projects/nests/definitions/{name}/online"))
            .await
            .expect(200);
    };
    let calls = |name: &str, target: &str| {
        format!(
            "workflow:\n  name: {name}\ntasks:\n  - name: call\n    task_type: SubWorkflow\n    workflow_name: {target}\n"
        )
    };
    let run = async |name: &str| -> i64 {
        let launched = user
            .post(
                &format!("/api/v1/projects/nests/definitions/{name}/runs"),
                json!({}),
            )
            .await
            .expect(201)
            .json();
        launched["instance"]
            .as_i64()
            .unwrap_or_else(|| panic!("{launched}"))
    };

    // A cycle through two workflows fails where it would close.
    define("ping", calls("ping", "pong")).await;
    define("pong", calls("pong", "ping")).await;
    let root = finished(&user, run("ping").await).await;
    assert_eq!(root["state"], "failed", "{root}");
    let pong = finished(&user, child_of(&root)).await;
    let message = call_task(&pong)["message"].as_str().unwrap();
    assert!(
        message.contains("sub-workflow cycle: ping -> pong -> ping"),
        "{message}"
    );
    assert!(call_task(&pong)["handle"].is_null(), "{pong}");

    // Eighteen workflows in a chain: the seventeenth level is refused (default limit 16).
    const LEVELS: usize = 18;
    define(
        &format!("level-{}", LEVELS - 1),
        format!(
            "workflow:\n  name: level-{}\ntasks:\n  - name: leaf\n    task_type: Noop\n",
            LEVELS - 1
        ),
    )
    .await;
    for n in (0..LEVELS - 1).rev() {
        define(
            &format!("level-{n}"),
            calls(&format!("level-{n}"), &format!("level-{}", n + 1)),
        )
        .await;
    }
    let mut detail = finished(&user, run("level-0").await).await;
    assert_eq!(detail["state"], "failed", "{detail}");
    for _ in 0..shoal_master::master::DEFAULT_MAX_SUB_WORKFLOW_DEPTH {
        detail = finished(&user, child_of(&detail)).await;
    }
    // `detail` is the run at depth 16; its child would be at 17.
    assert_eq!(detail["name"], "level-16", "{detail}");
    let message = call_task(&detail)["message"].as_str().unwrap();
    assert!(
        message.contains("sub-workflows nest deeper than 16"),
        "{message}"
    );

    // The server goes on serving, and a chain within the limit runs.
    let shallow = finished(&user, run("level-2").await).await;
    assert_eq!(shallow["state"], "succeeded", "{shallow}");
    user.get("/api/v1/projects").await.expect(200);
}

/// A server whose store refuses writes while a run's tasks execute: it stops the task it
/// can no longer record and keeps serving; restarted once the store takes writes again,
/// it recovers the run, and the stopped task runs again from the start, never twice at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_store_refuses_writes_stops_the_tasks_and_recovers_on_restart() {
    let data = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        data.path().join("shoal.db").display()
    );
    refusal_on_a_server(data.path(), None, Backend::Sqlite, &url).await;
    if let Some((url, name)) = shoal_store::testing::fresh_pg().await {
        let data = tempfile::tempdir().unwrap();
        refusal_on_a_server(data.path(), Some(&url), Backend::Postgres, &url).await;
        shoal_store::testing::drop_pg(&name).await;
    }
}

/// `(timestamp, text)` of each line of standard output in task `id`'s log.
async fn printed_over_http(c: &Client, task_id: i64) -> Vec<(String, String)> {
    c.get(&format!("/api/v1/tasks/{task_id}/log"))
        .await
        .expect(200)
        .body
        .lines()
        .filter_map(|line| {
            let (_, text) = line.split_once("[out] ")?;
            let stamp = line.split_whitespace().next()?;
            Some((stamp.to_owned(), text.trim().to_owned()))
        })
        .collect()
}

/// Attempts of task `name` in an instance detail, oldest first.
fn attempts_of<'a>(detail: &'a Value, name: &str) -> Vec<&'a Value> {
    let mut rows: Vec<&Value> = detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task_name"] == name)
        .collect();
    rows.sort_by_key(|t| t["id"].as_i64());
    rows
}

async fn refusal_on_a_server(data: &Path, db: Option<&str>, backend: Backend, store_url: &str) {
    let mut server = Server::start(data, db, ADMIN).await;
    server
        .post("/api/v1/projects", json!({"name": "refused"}))
        .await
        .expect(201);
    server
        .send(
            server
                .request(reqwest::Method::PATCH, "/api/v1/projects/refused/tenancy")
                .json(&json!({"allow_process": true})),
        )
        .await
        .expect(200);
    let long_run = Duration::from_secs(6);
    let yaml = format!(
        "workflow:\n  name: under-refusal\ntasks:\n  - name: quick\n    task_type: Shell\n    command: |\n      echo \"quick start\"\n      sleep 1\n      echo \"quick end\"\n  - name: long\n    task_type: Shell\n    command: |\n      echo \"long start\"\n      sleep {}\n      echo \"long end\"\n",
        long_run.as_secs()
    );
    server.post_yaml("refused", &yaml).await.expect(201);
    server
        .post_empty("/api/v1/projects/refused/definitions/under-refusal/online")
        .await
        .expect(200);
    let launched = server
        .post(
            "/api/v1/projects/refused/definitions/under-refusal/runs",
            json!({}),
        )
        .await
        .expect(201)
        .json();
    let id = launched["instance"].as_i64().unwrap();

    // Both tasks run and have printed their start.
    let deadline = Instant::now() + Duration::from_secs(40);
    let long_id = loop {
        let detail = instance_detail(&server, id).await;
        let running = |name| {
            attempts_of(&detail, name)
                .first()
                .filter(|t| t["state"] == "running")
                .and_then(|t| t["id"].as_i64())
        };
        if let (Some(quick), Some(long)) = (running("quick"), running("long"))
            && !printed_over_http(&server, quick).await.is_empty()
            && !printed_over_http(&server, long).await.is_empty()
        {
            break long;
        }
        assert!(
            Instant::now() < deadline,
            "the tasks never started: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let refused_at = Instant::now();
    let refusal = Triggers::install(backend, store_url);

    // Past the moment `long` would have finished had it been left running.
    tokio::time::sleep(
        (refused_at + long_run + Duration::from_secs(2)).saturating_duration_since(Instant::now()),
    )
    .await;
    let log = server.log();
    assert!(
        log.contains(&format!("instance {id}: storing its state failed")),
        "{log}"
    );
    assert_eq!(
        texts(&printed_over_http(&server, long_id).await),
        ["long start"],
        "`long` went on after its instance was given up"
    );
    // The server itself goes on serving.
    server.get("/api/v1/projects").await.expect(200);

    refusal.release();
    server.terminate(Duration::from_secs(30));
    let server = Server::start(data, db, ADMIN).await;
    let detail = finished(&server, id).await;
    assert_eq!(detail["state"], "succeeded", "{detail}");
    let long = attempts_of(&detail, "long");
    assert_eq!(long.len(), 2, "{detail}");
    let first = printed_over_http(&server, long[0]["id"].as_i64().unwrap()).await;
    let second = printed_over_http(&server, long[1]["id"].as_i64().unwrap()).await;
    assert_eq!(texts(&first), ["long start"]);
    assert_eq!(texts(&second), ["long start", "long end"]);
    assert!(second[0].0 > first[0].0, "{first:?} {second:?}");
    for quick in attempts_of(&detail, "quick") {
        let lines = printed_over_http(&server, quick["id"].as_i64().unwrap()).await;
        assert_eq!(texts(&lines), ["quick start", "quick end"], "{detail}");
    }
}
