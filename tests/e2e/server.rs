//! `shoal server` end to end: the REST API under /api/v1 over real HTTP on 127.0.0.1,
//! a real server process per database (SQLite file, then a fresh PostgreSQL database),
//! real shell tasks, a real webhook receiver and SMTP server for alerts, and the testkit
//! component uploaded into the running server.
//!
//! Each test starts one server per database and runs several groups of checks against
//! it, concurrently where they wait on running tasks, in projects of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use shoal_tests::server::{
    Client, FINISHED, Hook, Mail, Reply, Server, eventually, instance, settle, smtp_receiver,
    wait_state, webhook_receiver,
};
use tokio::sync::mpsc;

const ADMIN: &str = "shoal-admin-token-for-tests";
const DAY_MS: i64 = 86_400_000;
/// 2024-01-01T00:00:00Z.
const JAN_1_2024: i64 = 1_704_067_200_000;

// ---- harness ----

/// A data dir and, for PostgreSQL, the database URL.
struct Site {
    data: tempfile::TempDir,
    db: Option<String>,
}

impl Site {
    fn sqlite(&self) -> bool {
        self.db.is_none()
    }

    fn config(&self, toml: &str) {
        std::fs::write(self.data.path().join("server.toml"), toml).unwrap();
    }

    async fn start(&self) -> Server {
        Server::start(self.data.path(), self.db.as_deref(), ADMIN).await
    }
}

/// Run `test` on a server over SQLite, then over a fresh PostgreSQL database (skipped
/// without a server, except under CI=true).
async fn on_both<F, Fut>(test: F)
where
    F: Fn(Site) -> Fut,
    Fut: Future<Output = ()>,
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

/// The newest attempt of task `name` in an instance detail.
fn task<'a>(detail: &'a Value, name: &str) -> Option<&'a Value> {
    detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task_name"] == name)
        .max_by_key(|t| t["id"].as_i64())
}

/// Wait until task `name` of instance `id` is in `state`; returns the instance detail.
async fn wait_task(c: &Client, id: i64, name: &str, state: &str) -> Value {
    eventually(
        &format!("task `{name}` of instance {id} to be {state}"),
        Duration::from_secs(40),
        async || {
            let d = instance(c, id).await;
            (task(&d, name).is_some_and(|t| t["state"] == state)).then_some(d)
        },
    )
    .await
}

fn state_of(detail: &Value) -> &str {
    detail["state"].as_str().unwrap()
}

fn ms(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not a number of ms: {v}"))
}

/// Create a project with `c` and, as the admin, let it run process task types (Shell).
async fn create_project(c: &Client, name: &str) {
    c.post("/api/v1/projects", json!({"name": name}))
        .await
        .expect(201);
    allow_process(c, name).await;
}

/// As the admin, let project `name` run process task types.
async fn allow_process(c: &Client, name: &str) {
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

/// Save a YAML definition (new or changed), put it online; returns its name.
async fn define_online(c: &Client, project: &str, yaml: &str) -> String {
    let saved = c.post_yaml(project, yaml).await.expect(201).json();
    let name = saved["name"].as_str().unwrap().to_owned();
    c.post_empty(&format!(
        "/api/v1/projects/{project}/definitions/{name}/online"
    ))
    .await
    .expect(200);
    name
}

/// Start a run; returns the launch reply (`outcome`, `instance`, `queued`).
async fn launch(c: &Client, project: &str, name: &str, body: Value) -> Value {
    c.post(
        &format!("/api/v1/projects/{project}/definitions/{name}/runs"),
        body,
    )
    .await
    .expect(201)
    .json()
}

/// Start a run that must start at once; returns the instance id.
async fn start(c: &Client, project: &str, name: &str, body: Value) -> i64 {
    let l = launch(c, project, name, body).await;
    assert_eq!(l["outcome"], "started", "{l}");
    l["instance"].as_i64().unwrap()
}

async fn list(c: &Client, query: &str) -> Value {
    c.get(&format!("/api/v1/instances?{query}"))
        .await
        .expect(200)
        .json()
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().unwrap().clone()
}

async fn operate(c: &Client, id: i64, body: Value) -> Reply {
    c.post(&format!("/api/v1/instances/{id}/operations"), body)
        .await
}

async fn log_of(c: &Client, task_id: i64) -> String {
    c.get(&format!("/api/v1/tasks/{task_id}/log"))
        .await
        .expect(200)
        .body
}

fn shell(workflow: &str, command: &str) -> String {
    format!(
        "workflow:\n  name: {workflow}\ntasks:\n  - name: main\n    task_type: Shell\n    command: {command}\n"
    )
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{:x}{:x}", nanos, std::process::id())
}

// ======================================================================================
// 1-4, 10, 11: the API's resources, auth, errors, the OpenAPI document, secrets, and a
// graceful restart.
// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_api_end_to_end_on_both_databases() {
    on_both(|site| async move {
        site.config("max_body_bytes = 16384\nmax_plugin_bytes = 65536\nshutdown_grace_s = 10\n");
        let server = site.start().await;
        projects(&server).await;
        let (users, ..) = tokio::join!(
            auth(&server),
            definitions_and_runs(&server),
            operations(&server),
            errors_and_limits(&server),
            openapi(&server),
        );
        permissions(&server, &users).await;
        secrets(&server, &site).await;
        system(&server).await;
        shutdown_and_restart(server, &site, &users).await;
    })
    .await;
}

async fn projects(s: &Server) {
    let p = s
        .post(
            "/api/v1/projects",
            json!({"name": "core", "description": "the core project"}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(p["name"], "core");
    assert_eq!(
        p["allow_process"], false,
        "process task types are an admin's grant"
    );
    allow_process(s, "core").await;
    s.post("/api/v1/projects", json!({"name": "core"}))
        .await
        .error(409, "conflict");
    let m = s
        .post("/api/v1/projects", json!({"name": "no spaces allowed"}))
        .await
        .error(400, "bad-request");
    assert!(m.contains("name"), "{m}");
    for name in ["ops", "scratch"] {
        create_project(s, name).await;
    }
    let all = s.get("/api/v1/projects").await.expect(200).json();
    let names: BTreeSet<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        ["core", "ops", "scratch"].iter().all(|n| names.contains(n)),
        "{all}"
    );
    let core = s.get("/api/v1/projects/core").await.expect(200).json();
    assert_eq!(core["description"], "the core project");
    s.get("/api/v1/projects/nowhere")
        .await
        .error(404, "not-found");
    s.delete("/api/v1/projects/scratch").await.expect(204);
    s.get("/api/v1/projects/scratch")
        .await
        .error(404, "not-found");
    s.delete("/api/v1/projects/scratch")
        .await
        .error(404, "not-found");
}

/// Tokens of the users the permission checks use.
struct Users {
    reader: String,
    operator: String,
    editor: String,
    outsider: String,
}

async fn new_token(s: &Server, user: &str, body: Value) -> (i64, String) {
    let t = s
        .post(&format!("/api/v1/users/{user}/tokens"), body)
        .await
        .expect(201)
        .json();
    assert_eq!(t["user"], user);
    let token = t["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "{t}");
    (t["id"].as_i64().unwrap(), token)
}

async fn auth(s: &Server) -> Users {
    // No token, a garbage token, a token in the wrong scheme.
    let m = s
        .anonymous()
        .get("/api/v1/projects")
        .await
        .error(401, "unauthenticated");
    assert!(m.contains("token"), "{m}");
    s.client(Some("shoal_0123456789abcdef"))
        .get("/api/v1/projects")
        .await
        .error(401, "unauthenticated");
    let wrong_scheme = s
        .anonymous()
        .send(
            s.anonymous()
                .request(Method::GET, "/api/v1/projects")
                .header("authorization", format!("Token {ADMIN}")),
        )
        .await;
    wrong_scheme.error(401, "unauthenticated");

    // Users.
    for name in ["reader", "operator", "editor", "outsider"] {
        let u = s
            .post("/api/v1/users", json!({"name": name, "role": "user"}))
            .await
            .expect(201)
            .json();
        assert_eq!(u["role"], "user");
    }
    s.post("/api/v1/users", json!({"name": "reader", "role": "user"}))
        .await
        .error(409, "conflict");
    s.post("/api/v1/users", json!({"name": "x", "role": "emperor"}))
        .await
        .error(400, "bad-request");
    let users = s.get("/api/v1/users").await.expect(200).json();
    assert_eq!(users.as_array().unwrap().len(), 5, "{users}");

    let (_, reader) = new_token(s, "reader", json!({"name": "reader-main"})).await;
    let (_, operator) = new_token(s, "operator", json!({})).await;
    let (_, editor) = new_token(s, "editor", json!({})).await;
    let (_, outsider) = new_token(s, "outsider", json!({})).await;
    let as_reader = s.client(Some(&reader));
    let as_outsider = s.client(Some(&outsider));

    // Listing tokens shows names, never values.
    let mine = as_reader.get("/api/v1/tokens").await.expect(200);
    assert!(mine.body.contains("reader-main"), "{}", mine.body);
    assert!(!mine.body.contains(&reader), "{}", mine.body);

    // A user may make tokens for themselves only; only admins manage users.
    let (own_id, own) = {
        let t = as_outsider
            .post("/api/v1/users/outsider/tokens", json!({"name": "own"}))
            .await
            .expect(201)
            .json();
        (
            t["id"].as_i64().unwrap(),
            t["token"].as_str().unwrap().to_owned(),
        )
    };
    as_outsider
        .post("/api/v1/users/reader/tokens", json!({}))
        .await
        .error(403, "forbidden");
    as_outsider
        .post("/api/v1/users", json!({"name": "sneaky", "role": "admin"}))
        .await
        .error(403, "forbidden");
    as_outsider
        .get("/api/v1/users")
        .await
        .error(403, "forbidden");
    let upload = reqwest::multipart::Form::new()
        .text(
            "manifest",
            "id = \"testkit\"\nversion = \"9.9.9\"\nwit = \"0.1.0\"\ncomponent = \"c.wasm\"\n",
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(b"\0asm".to_vec()).file_name("c.wasm"),
        );
    as_outsider
        .send(
            as_outsider
                .request(Method::POST, "/api/v1/plugins")
                .multipart(upload),
        )
        .await
        .error(403, "forbidden");
    as_outsider
        .post(
            "/api/v1/plugins/shell/activate",
            json!({"version": "0.1.0"}),
        )
        .await
        .error(403, "forbidden");
    as_outsider
        .post_empty("/api/v1/plugins/shell/rollback")
        .await
        .error(403, "forbidden");

    // Revoked: works, then the owner revokes it, then 401. Another user cannot revoke it.
    let own_client = s.client(Some(&own));
    own_client.get("/api/v1/tokens").await.expect(200);
    as_reader
        .delete(&format!("/api/v1/tokens/{own_id}"))
        .await
        .error(404, "not-found");
    own_client.get("/api/v1/tokens").await.expect(200);
    as_outsider
        .delete(&format!("/api/v1/tokens/{own_id}"))
        .await
        .expect(204);
    own_client
        .get("/api/v1/tokens")
        .await
        .error(401, "unauthenticated");
    let revoked = as_outsider.get("/api/v1/tokens").await.expect(200).json();
    let row = revoked
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == own_id)
        .expect("the revoked token is still listed");
    assert!(row["revoked_at"].is_i64(), "{row}");
    // An admin revokes anyone's token.
    let (spare_id, spare) = new_token(s, "reader", json!({"name": "spare"})).await;
    s.delete(&format!("/api/v1/tokens/{spare_id}"))
        .await
        .expect(204);
    s.client(Some(&spare))
        .get("/api/v1/tokens")
        .await
        .error(401, "unauthenticated");

    // Expired: works for a second, then 401.
    s.post("/api/v1/users/reader/tokens", json!({"expires_in_s": 0}))
        .await
        .error(400, "bad-request");
    let (_, short) = new_token(s, "reader", json!({"name": "short", "expires_in_s": 1})).await;
    let short_client = s.client(Some(&short));
    short_client.get("/api/v1/tokens").await.expect(200);
    eventually(
        "the 1 s token to expire",
        Duration::from_secs(5),
        async || {
            let r = short_client.get("/api/v1/tokens").await;
            (r.status == 401).then(|| r.error(401, "unauthenticated"))
        },
    )
    .await;

    Users {
        reader,
        operator,
        editor,
        outsider,
    }
}

const REPORT_V1: &str = r#"workflow:
  name: report
  param:
    who: world
tasks:
  - name: greet
    task_type: Shell
    command: echo "hello ${who}"
"#;

const REPORT_V2: &str = r#"workflow:
  name: report
  param:
    who: world
tasks:
  - name: greet
    task_type: Shell
    command: echo "greetings ${who}"
"#;

async fn definitions_and_runs(s: &Server) {
    let base = "/api/v1/projects/core/definitions";
    // Create, the same body again (no new version), a change (a new version).
    let v1 = s.post_yaml("core", REPORT_V1).await.expect(201).json();
    assert_eq!(
        (
            v1["name"].as_str(),
            v1["version"].as_i64(),
            v1["created"].as_bool()
        ),
        (Some("report"), Some(1), Some(true)),
        "{v1}"
    );
    let same = s.post_yaml("core", REPORT_V1).await.expect(200).json();
    assert_eq!(
        (same["version"].as_i64(), same["created"].as_bool()),
        (Some(1), Some(false)),
        "{same}"
    );
    let v2 = s.post_yaml("core", REPORT_V2).await.expect(201).json();
    assert_eq!(v2["version"], 2, "{v2}");
    assert_eq!(v2["definition_id"], v1["definition_id"]);

    // From JSON.
    let as_json = json!({
        "workflow": {"name": "report-json", "param": {"n": "7"}},
        "tasks": [{"name": "only", "task_type": "Shell", "command": "echo json ${n}"}]
    })
    .to_string();
    let j = s
        .send_raw(Method::POST, base, "application/json", as_json.clone())
        .await
        .expect(201)
        .json();
    assert_eq!(j["name"], "report-json");
    let j2 = s
        .send_raw(Method::POST, base, "application/json", as_json)
        .await
        .expect(200)
        .json();
    assert_eq!(j2["created"], false);
    let detail = s
        .get(&format!("{base}/report-json"))
        .await
        .expect(200)
        .json();
    assert_eq!(detail["spec"]["tasks"][0]["name"], "only", "{detail}");
    assert_eq!(
        detail["spec"]["tasks"][0]["params"]["command"],
        "echo json ${n}"
    );

    // Listing and detail.
    let all = s.get(base).await.expect(200).json();
    let listed: BTreeMap<&str, &Value> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d))
        .collect();
    assert!(listed.contains_key("report") && listed.contains_key("report-json"));
    assert_eq!(
        listed["report"]["online"], false,
        "a definition starts offline"
    );
    let d = s.get(&format!("{base}/report")).await.expect(200).json();
    assert_eq!(d["versions"], json!([1, 2]));
    assert_eq!(d["current_version"], 2);
    assert_eq!(d["run_mode"], "parallel");
    assert_eq!(d["pins"], json!({}));
    s.get(&format!("{base}/nothing"))
        .await
        .error(404, "not-found");

    // Versions and the diff between them.
    let old = s
        .get(&format!("{base}/report/versions/1"))
        .await
        .expect(200)
        .json();
    assert_eq!(old["source"], REPORT_V1);
    assert_eq!(old["version"], 1);
    s.get(&format!("{base}/report/versions/3"))
        .await
        .error(404, "not-found");
    let diff = s
        .get(&format!("{base}/report/diff?from=1&to=2"))
        .await
        .expect(200);
    assert!(diff.content_type.starts_with("text/plain"), "{diff:?}");
    let lines: Vec<&str> = diff.body.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('-') && l.contains("echo \"hello ${who}\"")),
        "{}",
        diff.body
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('+') && l.contains("echo \"greetings ${who}\"")),
        "{}",
        diff.body
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with(['-', '+']) && l.contains("who: world")),
        "unchanged lines are not in the diff: {}",
        diff.body
    );
    s.get(&format!("{base}/report/diff?from=1&to=9"))
        .await
        .error(404, "not-found");
    s.get(&format!("{base}/report/diff?from=1"))
        .await
        .error(400, "bad-request");

    // Offline definitions do not run; online / offline / online.
    let m = s
        .post(&format!("{base}/report/runs"), json!({}))
        .await
        .error(409, "conflict");
    assert!(m.contains("offline"), "{m}");
    let on = s
        .post_empty(&format!("{base}/report/online"))
        .await
        .expect(200)
        .json();
    assert_eq!(on["online"], true);
    let off = s
        .post_empty(&format!("{base}/report/offline"))
        .await
        .expect(200)
        .json();
    assert_eq!(off["online"], false);
    s.post_empty(&format!("{base}/report/sideways"))
        .await
        .error(404, "not-found");
    s.post_empty(&format!("{base}/report/online"))
        .await
        .expect(200);
    assert_eq!(
        s.get(&format!("{base}/report")).await.expect(200).json()["online"],
        true
    );

    // Run mode.
    s.put(
        &format!("{base}/report/run-mode"),
        json!({"run_mode": "serial-discard"}),
    )
    .await
    .expect(204);
    assert_eq!(
        s.get(&format!("{base}/report")).await.expect(200).json()["run_mode"],
        "serial-discard"
    );
    let m = s
        .put(
            &format!("{base}/report/run-mode"),
            json!({"run_mode": "sometimes"}),
        )
        .await
        .error(400, "bad-request");
    assert!(m.contains("run_mode"), "{m}");
    s.put(
        &format!("{base}/report/run-mode"),
        json!({"run_mode": "parallel"}),
    )
    .await
    .expect(204);

    // A run with params and a business date: the shell task sees the param, the
    // instance carries the date's midnight.
    let id = start(
        s,
        "core",
        "report",
        json!({"params": {"who": "api"}, "business_date": "2024-03-05", "timezone": "UTC"}),
    )
    .await;
    let done = settle(s, id).await;
    assert_eq!(state_of(&done), "succeeded", "{done}");
    assert_eq!(ms(&done["schedule_time"]), JAN_1_2024 + 64 * DAY_MS);
    assert_eq!(done["startup_params"], json!({"who": "api"}));
    assert_eq!(done["version"], 2);
    assert_eq!(done["project"], "core");
    let greet = task(&done, "greet").unwrap();
    assert_eq!(greet["state"], "succeeded");
    let log = log_of(s, greet["id"].as_i64().unwrap()).await;
    assert!(log.contains("greetings api"), "{log}");
    let tail = s
        .get(&format!("/api/v1/tasks/{}/log?offset=10", greet["id"]))
        .await
        .expect(200)
        .body;
    assert_eq!(tail, log[10..]);
    s.get("/api/v1/tasks/999999/log")
        .await
        .error(404, "not-found");
    s.get("/api/v1/instances/999999")
        .await
        .error(404, "not-found");

    // An older version, default params.
    let id1 = start(s, "core", "report", json!({"version": 1})).await;
    let done1 = settle(s, id1).await;
    assert_eq!(done1["version"], 1);
    let log1 = log_of(s, task(&done1, "greet").unwrap()["id"].as_i64().unwrap()).await;
    assert!(log1.contains("hello world"), "{log1}");

    // Bad runs.
    let m = s
        .post(
            &format!("{base}/report/runs"),
            json!({"business_date": "2024-13-01"}),
        )
        .await
        .error(400, "bad-request");
    assert!(m.contains("business_date"), "{m}");
    let m = s
        .post(
            &format!("{base}/report/runs"),
            json!({"business_date": "2024-01-01", "timezone": "Mars/Olympus"}),
        )
        .await
        .error(400, "bad-request");
    assert!(m.contains("timezone"), "{m}");
    s.post(&format!("{base}/report/runs"), json!({"version": 9}))
        .await
        .error(404, "not-found");
    s.post(&format!("{base}/nothing/runs"), json!({}))
        .await
        .error(404, "not-found");

    // Following a log streams it until the task finishes.
    let ticker = define_online(
        s,
        "core",
        &shell(
            "ticker",
            "'for i in 1 2 3 4 5; do echo \"tick $i\"; sleep 0.3; done'",
        ),
    )
    .await;
    let tid = start(s, "core", &ticker, json!({})).await;
    let running = wait_task(s, tid, "main", "running").await;
    let task_id = task(&running, "main").unwrap()["id"].as_i64().unwrap();
    // Asked while the task runs, the response ends only once it has finished.
    let followed = s
        .get(&format!("/api/v1/tasks/{task_id}/log?follow=true"))
        .await
        .expect(200)
        .body;
    for i in 1..=5 {
        assert!(followed.contains(&format!("tick {i}")), "{followed}");
    }
    assert!(followed.contains("task succeeded"), "{followed}");
    // The stream ended because the task finished.
    let after = instance(s, tid).await;
    assert_eq!(task(&after, "main").unwrap()["state"], "succeeded");
    assert_eq!(followed, log_of(s, task_id).await);
    settle(s, tid).await;

    // Listing: filters and paging.
    let page = list(s, "project=core&workflow=report").await;
    assert_eq!(page["total"], 2, "{page}");
    let page = list(s, "project=core&workflow=report&state=succeeded").await;
    assert_eq!(page["total"], 2, "{page}");
    let page = list(s, "project=core&workflow=report&state=failed,stopped").await;
    assert_eq!(page["total"], 0, "{page}");
    assert!(items(&page).is_empty());
    let page = list(s, "project=core").await;
    assert_eq!(page["total"], 3, "{page}");
    let first = list(s, "project=core&limit=1&offset=0").await;
    let second = list(s, "project=core&limit=1&offset=1").await;
    let third = list(s, "project=core&limit=2&offset=2").await;
    for (p, offset) in [(&first, 0), (&second, 1), (&third, 2)] {
        assert_eq!(p["total"], 3, "{p}");
        assert_eq!(p["offset"], offset);
    }
    assert_eq!(first["limit"], 1);
    assert_eq!(items(&first).len(), 1);
    assert_eq!(items(&second).len(), 1);
    assert_eq!(items(&third).len(), 1, "only one left after offset 2");
    let ids: Vec<i64> = [&first, &second, &third]
        .iter()
        .map(|p| items(p)[0]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![tid, id1, id], "newest first");
    let by_date = list(
        s,
        &format!(
            "project=core&from={}&to={}",
            JAN_1_2024 + 64 * DAY_MS,
            JAN_1_2024 + 65 * DAY_MS
        ),
    )
    .await;
    assert_eq!(by_date["total"], 1, "{by_date}");
    assert_eq!(items(&by_date)[0]["id"], id);
    s.get("/api/v1/instances?project=core&limit=0")
        .await
        .error(400, "bad-request");
    s.get("/api/v1/instances?project=core&limit=many")
        .await
        .error(400, "bad-request");
    s.get("/api/v1/instances?workflow=report")
        .await
        .error(400, "bad-request");
    s.get("/api/v1/instances?project=core&workflow=nothing")
        .await
        .error(404, "not-found");

    // Deleting: a definition without instances goes; a project with definitions stays.
    s.delete(&format!("{base}/report-json")).await.expect(204);
    s.get(&format!("{base}/report-json"))
        .await
        .error(404, "not-found");
    s.delete("/api/v1/projects/core")
        .await
        .error(409, "conflict");
}

const LONG: &str = "workflow:
  name: long
tasks:
  - name: wait
    task_type: Shell
    command: sleep 30
  - name: after
    task_type: Shell
    deps: [wait]
    command: echo after
";

const STEPS: &str = "workflow:
  name: steps
tasks:
  - name: first
    task_type: Shell
    command: sleep 1
  - name: second
    task_type: Shell
    deps: [first]
    command: echo second
";

async fn operations(s: &Server) {
    let long = define_online(s, "ops", LONG).await;
    let steps = define_online(s, "ops", STEPS).await;

    // stop a sleeping run; the definition cannot be deleted while it runs.
    let a = start(s, "ops", &long, json!({})).await;
    wait_task(s, a, "wait", "running").await;
    let m = s
        .delete("/api/v1/projects/ops/definitions/long")
        .await
        .error(409, "conflict");
    assert!(m.contains("unfinished"), "{m}");
    let r = operate(s, a, json!({"op": "stop"}))
        .await
        .expect(200)
        .json();
    assert_eq!(r["id"], a);
    let stopped = settle(s, a).await;
    assert_eq!(state_of(&stopped), "stopped", "{stopped}");
    assert_eq!(task(&stopped, "wait").unwrap()["state"], "killed");
    assert!(task(&stopped, "after").is_none(), "{stopped}");

    // pause while `first` runs: `second` does not start; resume finishes the run.
    let b = start(s, "ops", &steps, json!({})).await;
    wait_task(s, b, "first", "running").await;
    let r = operate(s, b, json!({"op": "pause"}))
        .await
        .expect(200)
        .json();
    assert!(
        ["ready-pause", "paused"].contains(&r["state"].as_str().unwrap()),
        "{r}"
    );
    let paused = wait_state(s, b, &["paused"]).await;
    assert_eq!(task(&paused, "first").unwrap()["state"], "succeeded");
    assert!(
        task(&paused, "second").is_none_or(|t| t["state"] == "paused"),
        "{paused}"
    );
    let r = operate(s, b, json!({"op": "resume"}))
        .await
        .expect(200)
        .json();
    assert_eq!(r["state"], "running");
    let resumed = wait_state(s, b, &["succeeded", "failed"]).await;
    assert_eq!(state_of(&resumed), "succeeded", "{resumed}");
    assert_eq!(task(&resumed, "second").unwrap()["state"], "succeeded");
    operate(s, b, json!({"op": "resume"}))
        .await
        .error(409, "conflict");

    // rerun from scratch: new task instances, succeeded again.
    let before = task(&resumed, "first").unwrap()["id"].as_i64().unwrap();
    let r = operate(s, b, json!({"op": "rerun"}))
        .await
        .expect(200)
        .json();
    assert_eq!(r["state"], "running");
    let rerun = wait_state(s, b, &["succeeded", "failed"]).await;
    assert_eq!(state_of(&rerun), "succeeded", "{rerun}");
    let after = task(&rerun, "first").unwrap()["id"].as_i64().unwrap();
    assert!(after > before, "a rerun makes new task instances: {rerun}");
    assert_eq!(task(&rerun, "second").unwrap()["state"], "succeeded");

    // kill a task (the run fails), force it to success, recover: the rest runs.
    let c = start(s, "ops", &long, json!({})).await;
    wait_task(s, c, "wait", "running").await;
    operate(s, c, json!({"op": "kill", "task": "wait"}))
        .await
        .expect(200);
    let failed = settle(s, c).await;
    assert_eq!(state_of(&failed), "failed", "{failed}");
    assert_eq!(task(&failed, "wait").unwrap()["state"], "killed");
    operate(s, c, json!({"op": "force-success", "task": "wait"}))
        .await
        .expect(200);
    wait_task(s, c, "wait", "forced-success").await;
    let r = operate(s, c, json!({"op": "recover"}))
        .await
        .expect(200)
        .json();
    assert_eq!(r["state"], "running");
    let recovered = wait_state(s, c, &["succeeded", "failed"]).await;
    assert_eq!(state_of(&recovered), "succeeded", "{recovered}");
    assert_eq!(task(&recovered, "wait").unwrap()["state"], "forced-success");
    assert_eq!(task(&recovered, "after").unwrap()["state"], "succeeded");

    // Refusals.
    let m = operate(s, c, json!({"op": "explode"}))
        .await
        .error(400, "bad-request");
    assert!(m.contains("explode"), "{m}");
    operate(s, c, json!({"op": "force-success"}))
        .await
        .error(400, "bad-request");
    operate(s, c, json!({"op": "kill", "task": "ghost"}))
        .await
        .error(409, "conflict");
    operate(s, c, json!({"op": "pause"}))
        .await
        .error(409, "conflict");
    operate(s, 999_999, json!({"op": "stop"}))
        .await
        .error(404, "not-found");

    // Nothing unfinished now: the definition can go.
    s.delete("/api/v1/projects/ops/definitions/long")
        .await
        .expect(204);
    s.get("/api/v1/projects/ops/definitions/long")
        .await
        .error(404, "not-found");
}

async fn errors_and_limits(s: &Server) {
    // YAML that does not parse: 422 naming the line.
    let m = s
        .post_yaml(
            "core",
            "workflow:\n  name: broken\ntasks:\n  - name: a\n  task_type: Shell\n   command: echo\n",
        )
        .await
        .error(422, "invalid-definition");
    assert!(m.contains("body.yaml:") && m.contains("YAML"), "{m}");
    assert!(
        m.split("body.yaml:")
            .nth(1)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())),
        "names a line: {m}"
    );
    // A misspelt field: line and field.
    let m = s
        .post_yaml(
            "core",
            "workflow:\n  name: typo\ntasks:\n  - name: a\n    task_type: Shell\n    comand: echo hi\n",
        )
        .await
        .error(422, "invalid-definition");
    // Plugin fields are checked per task: the line is the task's, the field is named.
    assert!(
        m.contains("body.yaml:4:") && m.contains("`tasks[0] `a`.comand`"),
        "{m}"
    );
    // Unknown dependency and unknown task type.
    let m = s
        .post_yaml(
            "core",
            "workflow:\n  name: lost\ntasks:\n  - name: a\n    task_type: Shell\n    deps: [ghost]\n    command: echo\n",
        )
        .await
        .error(422, "invalid-definition");
    assert!(m.contains("ghost") && m.contains("deps"), "{m}");
    let m = s
        .post_yaml(
            "core",
            "workflow:\n  name: odd\ntasks:\n  - name: a\n    task_type: Nonesuch\n    command: echo\n",
        )
        .await
        .error(422, "invalid-definition");
    assert!(m.contains("Nonesuch") && m.contains("task_type"), "{m}");
    // A file that names another project.
    let m = s
        .post_yaml(
            "core",
            "workflow:\n  name: elsewhere\n  project: ops\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo\n",
        )
        .await
        .error(422, "invalid-definition");
    assert!(m.contains("project"), "{m}");
    // JSON that does not parse: 422 naming line and column.
    let m = s
        .send_raw(
            Method::POST,
            "/api/v1/projects/core/definitions",
            "application/json",
            "{\"workflow\": {\"name\": \"j\"},\n \"tasks\": [\n  {\"name\": \"a\",, }]}",
        )
        .await
        .error(422, "invalid-definition");
    assert!(m.contains("body.json:3:"), "{m}");
    // Nothing of the above was saved.
    let defs = s
        .get("/api/v1/projects/core/definitions")
        .await
        .expect(200)
        .body;
    for name in ["broken", "typo", "lost", "odd", "elsewhere"] {
        assert!(!defs.contains(&format!("\"{name}\"")), "{defs}");
    }
    // A definition to a project that does not exist.
    s.post_yaml("nowhere", &shell("w", "echo"))
        .await
        .error(404, "not-found");

    // Too large: a definition over max_body_bytes, a plugin over max_plugin_bytes.
    let huge = shell("huge", &format!("echo {}", "x".repeat(20_000)));
    let m = s.post_yaml("core", &huge).await.error(413, "too-large");
    assert!(!m.is_empty());
    let upload = reqwest::multipart::Form::new()
        .text(
            "manifest",
            "id = \"bulky\"\nversion = \"0.1.0\"\nwit = \"0.1.0\"\ncomponent = \"bulky.wasm\"\n",
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(vec![0u8; 100_000]).file_name("bulky.wasm"),
        );
    s.send(s.request(Method::POST, "/api/v1/plugins").multipart(upload))
        .await
        .error(413, "too-large");
    assert!(
        !s.get("/api/v1/plugins")
            .await
            .expect(200)
            .body
            .contains("bulky"),
        "nothing was installed"
    );

    // Wrong types and malformed request bodies: 400 naming the field.
    let m = s
        .put(
            "/api/v1/projects/core/definitions/whatever/run-mode",
            json!({"run_mode": 3}),
        )
        .await
        .error(400, "bad-request");
    assert!(m.contains("run_mode"), "{m}");
    let m = s
        .post("/api/v1/projects", json!({"name": 7}))
        .await
        .error(400, "bad-request");
    assert!(m.contains("name"), "{m}");
    let m = s
        .post(
            "/api/v1/projects/core/definitions/whatever/runs",
            json!({"params": "who=me"}),
        )
        .await
        .error(400, "bad-request");
    assert!(m.contains("params"), "{m}");
    s.send_raw(
        Method::PUT,
        "/api/v1/projects/core/definitions/whatever/schedule",
        "application/json",
        "{\"cron\": ",
    )
    .await
    .error(400, "bad-request");
    s.send_raw(
        Method::PUT,
        "/api/v1/projects/core/definitions/whatever/run-mode",
        "text/plain",
        "{\"run_mode\": \"parallel\"}",
    )
    .await
    .error(400, "bad-request");
    let m = s
        .get("/api/v1/instances/abc")
        .await
        .error(400, "bad-request");
    assert!(m.contains("abc"), "{m}");
    s.get("/api/v1/tasks/xyz/log")
        .await
        .error(400, "bad-request");

    // Unknown endpoints and methods.
    let m = s.get("/api/v1/nowhere").await.error(404, "not-found");
    assert!(m.starts_with("no such endpoint"), "{m}");
    s.send(s.request(Method::PATCH, "/api/v1/projects"))
        .await
        .error(405, "method-not-allowed");
}

/// Paths and methods every build must document.
const REQUIRED: &[(&str, &str)] = &[
    ("get", "/api/v1/health"),
    ("get", "/api/v1/metrics"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("post", "/api/v1/users/{user}/tokens"),
    ("get", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/projects"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects/{project}"),
    ("delete", "/api/v1/projects/{project}"),
    ("put", "/api/v1/projects/{project}/permissions/{user}"),
    ("get", "/api/v1/projects/{project}/secrets"),
    ("put", "/api/v1/projects/{project}/secrets/{name}"),
    ("delete", "/api/v1/projects/{project}/secrets/{name}"),
    ("get", "/api/v1/projects/{project}/alerts"),
    ("put", "/api/v1/projects/{project}/alerts/{name}"),
    ("delete", "/api/v1/projects/{project}/alerts/{name}"),
    ("get", "/api/v1/projects/{project}/definitions"),
    ("post", "/api/v1/projects/{project}/definitions"),
    ("get", "/api/v1/projects/{project}/definitions/{name}"),
    ("delete", "/api/v1/projects/{project}/definitions/{name}"),
    (
        "get",
        "/api/v1/projects/{project}/definitions/{name}/versions/{version}",
    ),
    ("get", "/api/v1/projects/{project}/definitions/{name}/diff"),
    (
        "post",
        "/api/v1/projects/{project}/definitions/{name}/{release}",
    ),
    (
        "put",
        "/api/v1/projects/{project}/definitions/{name}/run-mode",
    ),
    ("post", "/api/v1/projects/{project}/definitions/{name}/runs"),
    (
        "post",
        "/api/v1/projects/{project}/definitions/{name}/backfill",
    ),
    (
        "put",
        "/api/v1/projects/{project}/definitions/{name}/pins/{plugin}",
    ),
    (
        "get",
        "/api/v1/projects/{project}/definitions/{name}/schedule",
    ),
    (
        "put",
        "/api/v1/projects/{project}/definitions/{name}/schedule",
    ),
    (
        "delete",
        "/api/v1/projects/{project}/definitions/{name}/schedule",
    ),
    (
        "post",
        "/api/v1/projects/{project}/definitions/{name}/schedule/{switch}",
    ),
    ("get", "/api/v1/projects/{project}/schedules"),
    ("get", "/api/v1/instances"),
    ("get", "/api/v1/instances/{id}"),
    ("post", "/api/v1/instances/{id}/operations"),
    ("get", "/api/v1/tasks/{id}/log"),
    ("get", "/api/v1/plugins"),
    ("post", "/api/v1/plugins"),
    ("post", "/api/v1/plugins/{id}/activate"),
    ("post", "/api/v1/plugins/{id}/rollback"),
];

/// A documented path with its parameters filled with values that name nothing.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(match &rest[open + 1..close] {
            "id" | "version" => "999999",
            _ => "zz-none",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

async fn openapi(s: &Server) {
    let doc = s
        .anonymous()
        .get("/api/v1/openapi.json")
        .await
        .expect(200)
        .json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    for (method, path) in REQUIRED {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "the document lacks {method} {path}"
        );
    }
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{}",
        doc["components"]
    );

    // Every documented route is served: anonymously it asks for a token (except
    // health); with the admin token and no body it answers, but never with the
    // router's fallback, a 405, or a 5xx.
    for (method, path) in &documented {
        let url = concrete(path);
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let anon = s
            .anonymous()
            .send(s.anonymous().request(m.clone(), &url))
            .await;
        if path == "/api/v1/health" {
            anon.expect(200);
        } else {
            anon.error(401, "unauthenticated");
        }
        let r = s.send(s.request(m, &url)).await;
        let fallback = r.status == 404
            && r.json()["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no such endpoint"));
        assert!(
            !fallback && r.status != 405 && r.status < 500,
            "documented {method} {path} is not served: {} {}",
            r.status,
            r.body
        );
        if r.status >= 400 {
            // Every error is JSON {code, message}.
            let v = r.json();
            assert!(
                v["code"].is_string() && v["message"].is_string(),
                "{method} {path}: {}",
                r.body
            );
        }
    }
}

async fn permissions(s: &Server, users: &Users) {
    let base = "/api/v1/projects/core";
    let reader = s.client(Some(&users.reader));
    let operator = s.client(Some(&users.operator));
    let editor = s.client(Some(&users.editor));
    let outsider = s.client(Some(&users.outsider));

    for (user, level) in [
        ("reader", "read"),
        ("operator", "operate"),
        ("editor", "edit"),
    ] {
        s.put(
            &format!("{base}/permissions/{user}"),
            json!({"level": level}),
        )
        .await
        .expect(204);
    }
    s.put(
        &format!("{base}/permissions/reader"),
        json!({"level": "owner"}),
    )
    .await
    .error(400, "bad-request");
    s.put(
        &format!("{base}/permissions/nobody"),
        json!({"level": "read"}),
    )
    .await
    .error(404, "not-found");

    let report = list(s, "project=core&workflow=report").await;
    let an_instance = items(&report)[0]["id"].as_i64().unwrap();
    let detail = instance(s, an_instance).await;
    let a_task = task(&detail, "greet").unwrap()["id"].as_i64().unwrap();

    // Outsider: no permission on `core`. Project endpoints are forbidden; its
    // instances and logs do not exist as far as they can tell; nothing of `core`'s
    // content shows in any answer.
    let mut refusals: Vec<Reply> = Vec::new();
    for path in [
        base.to_owned(),
        format!("{base}/definitions"),
        format!("{base}/definitions/report"),
        format!("{base}/definitions/report/versions/1"),
        format!("{base}/secrets"),
        format!("{base}/alerts"),
        format!("{base}/schedules"),
        "/api/v1/instances?project=core".to_owned(),
    ] {
        let r = outsider.get(&path).await;
        r.error(403, "forbidden");
        refusals.push(r);
    }
    let r = outsider
        .post(&format!("{base}/definitions/report/runs"), json!({}))
        .await;
    r.error(403, "forbidden");
    refusals.push(r);
    let hidden = [
        outsider
            .get(&format!("/api/v1/instances/{an_instance}"))
            .await,
        outsider.get(&format!("/api/v1/tasks/{a_task}/log")).await,
        operate(&outsider, an_instance, json!({"op": "stop"})).await,
    ];
    for r in hidden {
        r.error(404, "not-found");
        assert!(!r.body.contains("core"), "{}", r.body);
        refusals.push(r);
    }
    for r in &refusals {
        for secret in [
            "report",
            "greet",
            "greetings",
            "ticker",
            "world",
            "db_password",
        ] {
            assert!(
                !r.body.contains(secret),
                "{} {} leaks `{secret}`: {}",
                r.method,
                r.path,
                r.body
            );
        }
    }
    let visible = outsider.get("/api/v1/projects").await.expect(200);
    assert!(!visible.body.contains("\"core\""), "{}", visible.body);
    outsider
        .get("/api/v1/instances")
        .await
        .error(400, "bad-request");
    // Any user may create a project, and may then edit it.
    create_project(&outsider, "outsiders").await;
    outsider.get("/api/v1/projects/outsiders").await.expect(200);
    define_online(&outsider, "outsiders", &shell("mine", "echo mine")).await;

    // Reader: reads, cannot run or change anything.
    let defs = reader
        .get(&format!("{base}/definitions"))
        .await
        .expect(200)
        .body;
    assert!(defs.contains("\"report\""), "{defs}");
    let page = reader
        .get("/api/v1/instances?project=core")
        .await
        .expect(200)
        .json();
    assert!(page["total"].as_i64().unwrap() >= 3, "{page}");
    reader
        .get(&format!("/api/v1/instances/{an_instance}"))
        .await
        .expect(200);
    reader
        .get(&format!("/api/v1/tasks/{a_task}/log"))
        .await
        .expect(200);
    reader
        .post(&format!("{base}/definitions/report/runs"), json!({}))
        .await
        .error(403, "forbidden");
    operate(&reader, an_instance, json!({"op": "rerun"}))
        .await
        .error(403, "forbidden");
    reader
        .put(
            &format!("{base}/definitions/report/run-mode"),
            json!({"run_mode": "parallel"}),
        )
        .await
        .error(403, "forbidden");
    reader
        .post_yaml("core", REPORT_V2)
        .await
        .error(403, "forbidden");
    reader
        .get("/api/v1/instances?project=outsiders")
        .await
        .error(403, "forbidden");

    // Operator: runs and operates, but does not edit.
    let id = start(
        &operator,
        "core",
        "report",
        json!({"params": {"who": "operator"}}),
    )
    .await;
    let done = settle(&operator, id).await;
    assert_eq!(state_of(&done), "succeeded", "{done}");
    operate(&operator, id, json!({"op": "rerun"}))
        .await
        .expect(200);
    wait_state(&operator, id, &["succeeded"]).await;
    operator
        .post_yaml("core", REPORT_V2)
        .await
        .error(403, "forbidden");
    operator
        .put(
            &format!("{base}/definitions/report/run-mode"),
            json!({"run_mode": "parallel"}),
        )
        .await
        .error(403, "forbidden");
    operator
        .put(
            &format!("{base}/definitions/report/schedule"),
            json!({"cron": "0 0 1 * * ?"}),
        )
        .await
        .error(403, "forbidden");
    operator
        .put(
            &format!("{base}/permissions/outsider"),
            json!({"level": "read"}),
        )
        .await
        .error(403, "forbidden");

    // Editor: edits, and may share the project.
    let same = editor.post_yaml("core", REPORT_V2).await.expect(200).json();
    assert_eq!(same["created"], false);
    editor
        .put(
            &format!("{base}/definitions/report/run-mode"),
            json!({"run_mode": "parallel"}),
        )
        .await
        .expect(204);
    editor
        .put(
            &format!("{base}/permissions/outsider"),
            json!({"level": "read"}),
        )
        .await
        .expect(204);
    outsider.get(base).await.expect(200);
    outsider
        .get(&format!("/api/v1/instances/{an_instance}"))
        .await
        .expect(200);
    editor.get("/api/v1/users").await.error(403, "forbidden");
}

async fn secrets(s: &Server, site: &Site) {
    let value = unique("pw-");
    let base = "/api/v1/projects/core/secrets";
    s.put(&format!("{base}/db_password"), json!({"value": value}))
        .await
        .expect(204);
    s.put(&format!("{base}/empty"), json!({"value": ""}))
        .await
        .error(400, "bad-request");
    s.put(&format!("{base}/not%20a%20name"), json!({"value": "x"}))
        .await
        .error(400, "bad-request");
    let listed = s.get(base).await.expect(200);
    let names: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["db_password"]);
    assert!(!listed.body.contains(&value), "{}", listed.body);

    // A task reads it as ${secret.NAME}; its log masks it.
    let name = define_online(
        s,
        "core",
        &shell(
            "uses-secret",
            "echo \"connecting with ${secret.db_password}\"",
        ),
    )
    .await;
    let id = start(s, "core", &name, json!({})).await;
    let done = settle(s, id).await;
    assert_eq!(state_of(&done), "succeeded", "{done}");
    let log = log_of(s, task(&done, "main").unwrap()["id"].as_i64().unwrap()).await;
    assert!(log.contains("connecting with"), "{log}");
    assert!(!log.contains(&value), "the secret is in the log: {log}");
    assert!(!instance(s, id).await.to_string().contains(&value));

    // Not on disk in the clear: not in the SQLite file (nor its WAL), nor in the logs.
    // The work dir too: the task's script there held its substituted command, and a
    // succeeded task's work dir is gone.
    let mut scanned = 0;
    for file in files_under(site.data.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        scanned += 1;
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{} holds the secret in the clear",
            file.display()
        );
    }
    if site.sqlite() {
        assert!(site.data.path().join("shoal.db").is_file());
        assert!(scanned > 3);
    }

    s.delete(&format!("{base}/db_password")).await.expect(204);
    s.delete(&format!("{base}/db_password"))
        .await
        .error(404, "not-found");
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn system(s: &Server) {
    let h = s.anonymous().get("/api/v1/health").await.expect(200).json();
    assert_eq!(h["status"], "ok");
    assert!(h["version"].is_string() && h["uptime_s"].is_u64(), "{h}");
    s.anonymous()
        .get("/api/v1/metrics")
        .await
        .error(401, "unauthenticated");
    let m = s.get("/api/v1/metrics").await.expect(200);
    assert!(
        m.content_type.starts_with("text/plain"),
        "{}",
        m.content_type
    );
    assert!(
        m.body.contains("# TYPE shoal_workflow_instances gauge"),
        "{}",
        m.body
    );
    let succeeded = m
        .body
        .lines()
        .find(|l| l.starts_with("shoal_workflow_instances{state=\"succeeded\"}"))
        .unwrap_or_else(|| panic!("{}", m.body));
    let n: f64 = succeeded.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 5.0, "{succeeded}");
    assert!(m.body.contains("shoal_queued_runs"), "{}", m.body);

    let plugins = s.get("/api/v1/plugins").await.expect(200).json();
    let shell = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "shell")
        .unwrap_or_else(|| panic!("{plugins}"));
    assert_eq!(shell["origin"], "builtin");
    assert_eq!(shell["active"], true);
    assert!(shell["sha256"].is_null());
}

async fn shutdown_and_restart(mut server: Server, site: &Site, users: &Users) {
    let info = site.data.path().join("server.json");
    assert!(info.is_file());
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status}\n{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(!info.exists(), "server.json is removed on shutdown");
    assert!(server.log().contains("shutting down"), "{}", server.log());
    drop(server);

    let again = site.start().await;
    again.get("/api/v1/projects/core").await.expect(200);
    again
        .client(Some(&users.reader))
        .get("/api/v1/instances?project=core")
        .await
        .expect(200);
    assert!(info.is_file());
    let mut again = again;
    let status = again.terminate(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
}

// ======================================================================================
// 5-7, 9: cron schedules, run modes, backfills, alerts.
// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduling_and_alerts_on_both_databases() {
    on_both(|site| async move {
        site.config(
            "[alerts]\nattempts = 2\nfirst_backoff_ms = 100\ntimeout_s = 5\nallow_hosts = [\"127.0.0.1\"]\n",
        );
        let server = site.start().await;
        for p in ["cron", "modes", "backfill", "alerts"] {
            create_project(&server, p).await;
        }
        tokio::join!(
            async {
                run_modes(&server).await;
                backfill(&server).await;
            },
            cron(&server),
            alerts(&server),
        );
    })
    .await;
}

/// The seconds field of an RFC 3339 time.
fn seconds_of(rfc3339: &str) -> u32 {
    rfc3339[17..19]
        .parse()
        .unwrap_or_else(|_| panic!("not RFC 3339: {rfc3339}"))
}

async fn cron(s: &Server) {
    let base = "/api/v1/projects/cron/definitions";
    s.post_yaml(
        "cron",
        "workflow:\n  name: tick\ntasks:\n  - name: n\n    task_type: Noop\n",
    )
    .await
    .expect(201);
    let every_2s = json!({"cron": "*/2 * * * * ?", "timezone": "UTC"});
    // Not while the definition is offline; an offline schedule may be stored.
    s.put(&format!("{base}/tick/schedule"), every_2s.clone())
        .await
        .error(409, "conflict");
    s.post_empty(&format!("{base}/tick/online"))
        .await
        .expect(200);
    // Invalid schedules name the field.
    for (body, field) in [
        (json!({"cron": "*/2 * * * *"}), "cron"),
        (json!({"cron": "61 * * * * ?"}), "cron"),
        (
            json!({"cron": "0 0 1 * * ?", "timezone": "Nowhere/City"}),
            "cron",
        ),
        (
            json!({"cron": "0 0 1 * * ?", "missed": "sometimes"}),
            "missed",
        ),
        (
            json!({"cron": "0 0 1 * * ?", "start": "yesterday"}),
            "start",
        ),
        (json!({"cron": 5}), "cron"),
    ] {
        let m = s
            .put(&format!("{base}/tick/schedule"), body.clone())
            .await
            .error(400, "bad-request");
        assert!(m.contains(field), "{body}: {m}");
    }
    s.get(&format!("{base}/tick/schedule"))
        .await
        .error(404, "not-found");

    let v = s
        .put(&format!("{base}/tick/schedule"), every_2s)
        .await
        .expect(200)
        .json();
    assert_eq!(v["online"], true);
    assert_eq!(v["workflow"], "tick");
    let upcoming: Vec<&str> = v["upcoming"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(upcoming.len(), 5, "{v}");
    assert!(upcoming.windows(2).all(|w| w[0] < w[1]), "{v}");
    assert!(
        upcoming.iter().all(|t| seconds_of(t).is_multiple_of(2)),
        "{v}"
    );
    assert_eq!(ms(&v["next_fire_at"]) % 2000, 0, "{v}");
    let all = s
        .get("/api/v1/projects/cron/schedules")
        .await
        .expect(200)
        .json();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all[0]["cron"], "*/2 * * * * ?");

    // Two fires within ~6 s, each on a whole even second.
    let fired = eventually("two cron fires", Duration::from_secs(6), async || {
        let page = list(s, "project=cron&workflow=tick").await;
        (page["total"].as_i64().unwrap() >= 2).then_some(page)
    })
    .await;
    let times: BTreeSet<i64> = items(&fired)
        .iter()
        .map(|i| ms(&i["schedule_time"]))
        .collect();
    assert_eq!(
        times.len(),
        items(&fired).len(),
        "one run per fire: {fired}"
    );
    assert!(times.iter().all(|t| t % 2000 == 0), "{times:?}");
    for i in items(&fired) {
        settle(s, i["id"].as_i64().unwrap()).await;
    }

    // Offline: no more fires.
    let off = s
        .post_empty(&format!("{base}/tick/schedule/offline"))
        .await
        .expect(200)
        .json();
    assert_eq!(off["online"], false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = list(s, "project=cron&workflow=tick").await["total"].clone();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = list(s, "project=cron&workflow=tick").await["total"].clone();
    assert_eq!(before, after, "an offline schedule fired");
    assert_eq!(
        s.get(&format!("{base}/tick/schedule"))
            .await
            .expect(200)
            .json()["online"],
        false
    );

    // Online again; then the definition goes offline, and takes its schedule along.
    let on = s
        .post_empty(&format!("{base}/tick/schedule/online"))
        .await
        .expect(200)
        .json();
    assert_eq!(on["online"], true);
    assert!(on["next_fire_at"].is_i64(), "{on}");
    s.post_empty(&format!("{base}/tick/offline"))
        .await
        .expect(200);
    let v = s
        .get(&format!("{base}/tick/schedule"))
        .await
        .expect(200)
        .json();
    assert_eq!(v["online"], false, "{v}");
    s.post_empty(&format!("{base}/tick/schedule/online"))
        .await
        .error(409, "conflict");
    s.post_empty(&format!("{base}/tick/schedule/sideways"))
        .await
        .error(404, "not-found");

    s.delete(&format!("{base}/tick/schedule")).await.expect(204);
    s.get(&format!("{base}/tick/schedule"))
        .await
        .error(404, "not-found");
    s.delete(&format!("{base}/tick/schedule"))
        .await
        .error(404, "not-found");
}

fn sleeper(name: &str) -> String {
    format!(
        "workflow:\n  name: {name}\n  param:\n    secs: \"1\"\n    tag: none\ntasks:\n  - name: work\n    task_type: Shell\n    command: echo \"run ${{tag}}\"; sleep ${{secs}}\n"
    )
}

/// Every instance of `workflow` in project `project`, oldest first, once there are
/// `n` of them, all finished.
async fn finished_runs(s: &Server, project: &str, workflow: &str, n: i64) -> Vec<Value> {
    eventually(
        &format!("{n} finished runs of {project}/{workflow}"),
        Duration::from_secs(40),
        async || {
            let page = list(s, &format!("project={project}&workflow={workflow}")).await;
            let mut all = items(&page);
            let done = page["total"].as_i64() == Some(n)
                && all.len() as i64 == n
                && all
                    .iter()
                    .all(|i| FINISHED.contains(&i["state"].as_str().unwrap()));
            all.sort_by_key(|i| i["id"].as_i64());
            done.then_some(all)
        },
    )
    .await
}

async fn run_modes(s: &Server) {
    let set_mode = async |name: &str, mode: &str| {
        s.put(
            &format!("/api/v1/projects/modes/definitions/{name}/run-mode"),
            json!({ "run_mode": mode }),
        )
        .await
        .expect(204);
    };
    tokio::join!(
        // parallel: both run at once.
        async {
            let name = define_online(s, "modes", &sleeper("parallel")).await;
            let a = start(s, "modes", &name, json!({})).await;
            let b = start(s, "modes", &name, json!({})).await;
            let (a, b) = (settle(s, a).await, settle(s, b).await);
            assert_eq!((state_of(&a), state_of(&b)), ("succeeded", "succeeded"));
            assert!(
                ms(&b["started_at"]) < ms(&a["ended_at"]),
                "parallel runs overlap: {a} {b}"
            );
        },
        // serial-wait: the others queue and start one after another, in order.
        async {
            let name = define_online(s, "modes", &sleeper("serial-wait")).await;
            set_mode(&name, "serial-wait").await;
            start(s, "modes", &name, json!({"params": {"tag": "first"}})).await;
            let q2 = launch(s, "modes", &name, json!({"params": {"tag": "second"}})).await;
            let q3 = launch(s, "modes", &name, json!({"params": {"tag": "third"}})).await;
            for q in [&q2, &q3] {
                assert_eq!(q["outcome"], "queued", "{q}");
                assert!(q["instance"].is_null() && q["queued"].is_i64(), "{q}");
            }
            assert!(ms(&q2["queued"]) < ms(&q3["queued"]));
            let runs = finished_runs(s, "modes", &name, 3).await;
            let tags: Vec<&str> = runs
                .iter()
                .map(|r| r["startup_params"]["tag"].as_str().unwrap())
                .collect();
            assert_eq!(tags, ["first", "second", "third"]);
            for pair in runs.windows(2) {
                assert_eq!(pair[0]["state"], "succeeded");
                assert!(
                    ms(&pair[1]["started_at"]) >= ms(&pair[0]["ended_at"]),
                    "serial runs overlap: {} {}",
                    pair[0],
                    pair[1]
                );
            }
            assert_eq!(runs[2]["state"], "succeeded");
        },
        // serial-discard: the second is dropped.
        async {
            let name = define_online(s, "modes", &sleeper("serial-discard")).await;
            set_mode(&name, "serial-discard").await;
            let a = start(s, "modes", &name, json!({})).await;
            let d = launch(s, "modes", &name, json!({})).await;
            assert_eq!(d["outcome"], "discarded", "{d}");
            assert!(d["instance"].is_null() && d["queued"].is_null(), "{d}");
            assert_eq!(state_of(&settle(s, a).await), "succeeded");
            let runs = finished_runs(s, "modes", &name, 1).await;
            assert_eq!(runs[0]["id"], a);
        },
        // serial-priority: the new run stops the old one.
        async {
            let name = define_online(s, "modes", &sleeper("serial-priority")).await;
            set_mode(&name, "serial-priority").await;
            let old = start(s, "modes", &name, json!({"params": {"secs": "30"}})).await;
            wait_task(s, old, "work", "running").await;
            let new = start(s, "modes", &name, json!({"params": {"secs": "0"}})).await;
            let (o, n) = (settle(s, old).await, settle(s, new).await);
            assert_eq!(state_of(&o), "stopped", "{o}");
            assert_eq!(state_of(&n), "succeeded", "{n}");
            assert_eq!(task(&o, "work").unwrap()["state"], "killed");
        },
    );
}

async fn backfill(s: &Server) {
    let serial = define_online(s, "backfill", &sleeper("daily-serial")).await;
    let parallel = define_online(s, "backfill", &sleeper("daily-parallel")).await;
    let url = |name: &str| format!("/api/v1/projects/backfill/definitions/{name}/backfill");

    // Refusals.
    for (body, field) in [
        (
            json!({"from": "2024-01-01", "to": "2024-01-02", "dates": ["2024-01-01"]}),
            "dates",
        ),
        (
            json!({"dates": ["2024-01-01"], "parallelism": 0}),
            "parallelism",
        ),
        (json!({"dates": ["2024-02-30"]}), "dates[0]"),
        (json!({"from": "2024-01-05", "to": "2024-01-01"}), ""),
        (json!({"from": "first of may", "to": "2024-01-01"}), "from"),
    ] {
        let m = s
            .post(&url(&serial), body.clone())
            .await
            .error(400, "bad-request");
        assert!(m.contains(field), "{body}: {m}");
    }
    s.post_yaml("backfill", &shell("offline", "echo"))
        .await
        .expect(201);
    s.post(&url("offline"), json!({"dates": ["2024-01-01"]}))
        .await
        .error(409, "conflict");
    assert_eq!(
        list(s, "project=backfill").await["total"],
        0,
        "refused backfills queue nothing"
    );

    let (serial_url, parallel_url) = (url(&serial), url(&parallel));
    let (a, b) = tokio::join!(
        s.post(
            &serial_url,
            json!({"from": "2024-01-01", "to": "2024-01-03", "parallelism": 1,
                   "timezone": "UTC", "params": {"secs": "0.6"}}),
        ),
        s.post(
            &parallel_url,
            json!({"dates": ["2024-02-01", "2024-02-02", "2024-02-03"], "parallelism": 3,
                   "timezone": "UTC", "params": {"secs": "1"}}),
        ),
    );
    let a = a.expect(201).json();
    let b = b.expect(201).json();
    assert_eq!(
        a["dates"],
        json!(["2024-01-01", "2024-01-02", "2024-01-03"])
    );
    assert_eq!(a["queued"].as_array().unwrap().len(), 3, "{a}");
    assert!(a["group"].is_string());
    assert_ne!(a["group"], b["group"]);

    // Serial: one at a time, oldest date first, each at its date's midnight (UTC).
    let runs = finished_runs(s, "backfill", &serial, 3).await;
    let times: Vec<i64> = runs.iter().map(|r| ms(&r["schedule_time"])).collect();
    assert_eq!(
        times,
        vec![JAN_1_2024, JAN_1_2024 + DAY_MS, JAN_1_2024 + 2 * DAY_MS]
    );
    for pair in runs.windows(2) {
        assert!(
            ms(&pair[1]["started_at"]) >= ms(&pair[0]["ended_at"]),
            "parallelism 1 ran two at once: {} {}",
            pair[0],
            pair[1]
        );
    }
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{runs:?}");
    assert!(runs.iter().all(|r| r["startup_params"]["secs"] == "0.6"));

    // Parallel: all three start before the first ends.
    let runs = finished_runs(s, "backfill", &parallel, 3).await;
    let mut times: Vec<i64> = runs.iter().map(|r| ms(&r["schedule_time"])).collect();
    times.sort();
    let feb_1 = JAN_1_2024 + 31 * DAY_MS;
    assert_eq!(times, vec![feb_1, feb_1 + DAY_MS, feb_1 + 2 * DAY_MS]);
    let last_start = runs.iter().map(|r| ms(&r["started_at"])).max().unwrap();
    let first_end = runs.iter().map(|r| ms(&r["ended_at"])).min().unwrap();
    assert!(
        last_start < first_end,
        "parallelism 3 did not overlap: {runs:?}"
    );
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{runs:?}");
}

/// Receive from `rx` until `want` holds for what was received, or panic after `within`.
async fn receive_until<T: Clone + std::fmt::Debug>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    got: &mut Vec<T>,
    within: Duration,
    what: &str,
    want: impl Fn(&[T]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !want(got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(v)) => got.push(v),
            Ok(None) => panic!("the receiver closed while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}; got {got:#?}"),
        }
    }
}

async fn alerts(s: &Server) {
    let (hooks_at, mut hooks) = webhook_receiver().await;
    let (smtp_port, mut mails) = smtp_receiver().await;
    let base = "/api/v1/projects/alerts/alerts";
    let hook_url = |path: &str| format!("http://{hooks_at}/{path}");
    for (name, body) in [
        (
            "failures",
            json!({"config": {"kind": "webhook", "url": hook_url("failures")},
                   "events": ["workflow-failed", "task-failed"]}),
        ),
        (
            "mail",
            json!({"config": {"kind": "email", "host": "127.0.0.1", "port": smtp_port,
                              "from": "Shoal <shoal@example.com>", "to": ["ops@example.com"]}}),
        ),
        (
            "wins",
            json!({"config": {"kind": "webhook", "url": hook_url("wins")},
                   "events": ["workflow-succeeded"]}),
        ),
        (
            "slow",
            json!({"config": {"kind": "webhook", "url": hook_url("slow")},
                   "events": ["task-timeout"]}),
        ),
    ] {
        s.put(&format!("{base}/{name}"), body).await.expect(204);
    }
    // Channel configs hold credentials: stored sealed, like secrets.
    let url = hook_url("failures");
    for file in files_under(&s.data) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(url.len()).any(|w| w == url.as_bytes()),
            "{} holds a webhook URL in the clear",
            file.display()
        );
    }
    for (body, field) in [
        (json!({"config": {"kind": "pigeon", "url": "x"}}), "config"),
        (
            json!({"config": {"kind": "webhook", "url": "not a url"}}),
            "config",
        ),
        (
            json!({"config": {"kind": "webhook", "url": hook_url("x")}, "events": ["sometimes"]}),
            "events[0]",
        ),
    ] {
        let m = s
            .put(&format!("{base}/bad"), body.clone())
            .await
            .error(400, "bad-request");
        assert!(m.contains(field), "{body}: {m}");
    }
    let listed = s.get(base).await.expect(200);
    let kinds: BTreeMap<String, String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("failures".to_owned(), "webhook".to_owned()),
            ("mail".to_owned(), "email".to_owned()),
            ("slow".to_owned(), "webhook".to_owned()),
            ("wins".to_owned(), "webhook".to_owned()),
        ])
    );
    assert!(
        !listed.body.contains("127.0.0.1"),
        "addresses are not echoed: {}",
        listed.body
    );

    let boom = define_online(
        s,
        "alerts",
        "workflow:\n  name: boom\ntasks:\n  - name: explode\n    task_type: Shell\n    command: echo failing; exit 3\n",
    )
    .await;
    let fine = define_online(s, "alerts", &shell("fine", "echo fine")).await;
    let slowpoke = define_online(
        s,
        "alerts",
        "workflow:\n  name: slowpoke\ntasks:\n  - name: dawdle\n    task_type: Shell\n    timeout: 300ms\n    timeout_strategy: warn\n    command: sleep 1.2\n",
    )
    .await;

    // A failure: the failure channel gets both kinds, the mail names the workflow.
    let failed = start(s, "alerts", &boom, json!({})).await;
    assert_eq!(state_of(&settle(s, failed).await), "failed");
    let mut got: Vec<Hook> = Vec::new();
    let kinds_at = |got: &[Hook], path: &str| -> BTreeSet<String> {
        got.iter()
            .filter(|h| h.path == format!("/{path}"))
            .map(|h| h.body["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    receive_until(
        &mut hooks,
        &mut got,
        Duration::from_secs(15),
        "workflow-failed and task-failed alerts",
        |got| {
            kinds_at(got, "failures")
                == BTreeSet::from(["workflow-failed".to_owned(), "task-failed".to_owned()])
        },
    )
    .await;
    for h in got.iter().filter(|h| h.path == "/failures") {
        assert_eq!(h.body["workflow"], "boom", "{:?}", h.body);
        assert_eq!(h.body["project"], "alerts");
        assert_eq!(h.body["instance-id"], failed);
        if h.body["kind"] == "task-failed" {
            assert_eq!(h.body["task"], "explode", "{:?}", h.body);
        }
    }
    let mut mail: Vec<Mail> = Vec::new();
    receive_until(
        &mut mails,
        &mut mail,
        Duration::from_secs(15),
        "an alert mail naming `boom`",
        |m| m.iter().any(|m| m.data.contains("boom")),
    )
    .await;
    let m = mail.iter().find(|m| m.data.contains("boom")).unwrap();
    assert_eq!(m.to, vec!["ops@example.com"]);
    assert_eq!(m.from, "shoal@example.com");
    assert!(
        m.data
            .lines()
            .any(|l| l.starts_with("Subject:") && l.contains("boom")),
        "{}",
        m.data
    );

    // A success reaches only the channel that opted in; a warn timeout its channel.
    let ok = start(s, "alerts", &fine, json!({})).await;
    assert_eq!(state_of(&settle(s, ok).await), "succeeded");
    let slow = start(s, "alerts", &slowpoke, json!({})).await;
    receive_until(
        &mut hooks,
        &mut got,
        Duration::from_secs(15),
        "workflow-succeeded and task-timeout alerts",
        |got| {
            got.iter()
                .any(|h| h.path == "/wins" && h.body["workflow"] == "fine")
                && got.iter().any(|h| h.path == "/slow")
        },
    )
    .await;
    let win = got.iter().find(|h| h.path == "/wins").unwrap();
    assert_eq!(win.body["kind"], "workflow-succeeded");
    assert_eq!(win.body["instance-id"], ok);
    let late = got.iter().find(|h| h.path == "/slow").unwrap();
    assert_eq!(late.body["kind"], "task-timeout", "{:?}", late.body);
    assert_eq!(late.body["task"], "dawdle");
    assert_eq!(late.body["workflow"], "slowpoke");
    // Warn only: the slow run still succeeds.
    assert_eq!(state_of(&settle(s, slow).await), "succeeded");
    // Nothing went where it was not wanted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(h) = hooks.try_recv() {
        got.push(h);
    }
    assert_eq!(
        kinds_at(&got, "wins"),
        BTreeSet::from(["workflow-succeeded".to_owned()]),
        "{got:#?}"
    );
    assert_eq!(
        kinds_at(&got, "failures"),
        BTreeSet::from(["workflow-failed".to_owned(), "task-failed".to_owned()]),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .filter(|h| h.path == "/wins")
            .all(|h| h.body["workflow"] != "boom"),
        "{got:#?}"
    );
    while let Ok(m) = mails.try_recv() {
        mail.push(m);
    }
    assert!(
        mail.iter().all(|m| !m.data.contains("fine")),
        "a success went to the mail channel: {mail:#?}"
    );

    s.delete(&format!("{base}/wins")).await.expect(204);
    s.delete(&format!("{base}/wins"))
        .await
        .error(404, "not-found");
}

// ======================================================================================
// 8: plugins uploaded into the running server.
// ======================================================================================

const TESTKIT_CAPS: &str = "[capabilities]\nprocess = true\nwork-dir = true\n";

fn testkit_manifest(version: &str) -> String {
    format!(
        "id = \"testkit\"\nversion = \"{version}\"\nwit = \"0.1.0\"\ncomponent = \"testkit.wasm\"\n\n{TESTKIT_CAPS}"
    )
}

async fn upload(c: &Client, manifest: String, wasm: Vec<u8>) -> Reply {
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest)
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm).file_name("testkit.wasm"),
        );
    c.send(c.request(Method::POST, "/api/v1/plugins").multipart(form))
        .await
}

/// `wasm` with a custom section appended: the same component, different bytes.
fn with_custom_section(wasm: &[u8], note: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"shoal-test-note";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

fn testkit_rows(plugins: &Value) -> BTreeMap<String, Value> {
    plugins
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] == "testkit")
        .map(|p| (p["version"].as_str().unwrap().to_owned(), p.clone()))
        .collect()
}

async fn testkit_task(s: &Server, id: i64) -> Value {
    let d = settle(s, id).await;
    assert_eq!(state_of(&d), "succeeded", "{d}");
    let t = task(&d, "spawn").unwrap().clone();
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["out_params"]["code"], "Some(0)", "{t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugins_hot_load_into_a_running_server_on_both_databases() {
    let wasm = std::fs::read(shoal_tests::testkit_wasm()).unwrap();
    on_both(|site| {
        let wasm = wasm.clone();
        async move {
            let s = site.start().await;
            create_project(&s, "hot").await;

            // Nothing to run it with yet.
            let spawner = "workflow:\n  name: spawner\n  param:\n    secs: \"2\"\ntasks:\n  - name: spawn\n    task_type: testkit\n    mode: spawn\n    argv: [sleep, \"${secs}\"]\n";
            let m = s.post_yaml("hot", spawner).await.error(422, "invalid-definition");
            assert!(m.contains("testkit"), "{m}");

            let first = upload(&s, testkit_manifest("0.1.0"), wasm.clone())
                .await
                .expect(201)
                .json();
            assert_eq!(first["version"], "0.1.0");
            let sha = first["sha256"].as_str().unwrap().to_owned();
            assert_eq!(sha.len(), 64);
            define_online(&s, "hot", spawner).await;

            // Run A on 0.1.0; while it runs, 0.2.0 arrives; run B gets it.
            let a = start(&s, "hot", "spawner", json!({})).await;
            wait_task(&s, a, "spawn", "running").await;
            let second = upload(&s, testkit_manifest("0.2.0"), wasm.clone())
                .await
                .expect(201)
                .json();
            assert_eq!(second["version"], "0.2.0");
            assert_eq!(second["previous"], "0.1.0");
            let b = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            let still = instance(&s, a).await;
            assert_eq!(
                task(&still, "spawn").unwrap()["state"],
                "running",
                "run A should still be running when 0.2.0 became active"
            );
            let (ta, tb) = (testkit_task(&s, a).await, testkit_task(&s, b).await);
            assert_eq!(ta["plugin_version"], "0.1.0", "{ta}");
            assert_eq!(tb["plugin_version"], "0.2.0", "{tb}");

            let rows = testkit_rows(&s.get("/api/v1/plugins").await.expect(200).json());
            assert_eq!(rows.keys().collect::<Vec<_>>(), ["0.1.0", "0.2.0"], "{rows:?}");
            assert_eq!(rows["0.2.0"]["active"], true);
            assert_eq!(rows["0.1.0"]["active"], false);
            for r in rows.values() {
                assert_eq!(r["origin"], "installed");
                assert_eq!(r["sha256"], sha.as_str());
                assert!(r["capabilities"].as_array().unwrap().contains(&json!("process")), "{r}");
            }

            // Roll back: 0.1.0 is active again and run C uses it.
            let back = s
                .post_empty("/api/v1/plugins/testkit/rollback")
                .await
                .expect(200)
                .json();
            assert_eq!(back["version"], "0.1.0");
            let rows = testkit_rows(&s.get("/api/v1/plugins").await.expect(200).json());
            assert_eq!(rows["0.1.0"]["active"], true);
            assert_eq!(rows["0.2.0"]["active"], false);
            let c = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            assert_eq!(testkit_task(&s, c).await["plugin_version"], "0.1.0");

            // A version is immutable: other bytes under 0.2.0 are refused.
            let other = with_custom_section(&wasm, "other bytes");
            let m = upload(&s, testkit_manifest("0.2.0"), other)
                .await
                .error(409, "conflict");
            assert!(m.contains("0.2.0"), "{m}");
            // The same bytes again are no conflict; 0.2.0 becomes active again.
            upload(&s, testkit_manifest("0.2.0"), wasm.clone())
                .await
                .expect(201);
            s.post_empty("/api/v1/plugins/testkit/rollback")
                .await
                .expect(200);
            // A broken upload is refused and changes nothing.
            upload(&s, testkit_manifest("0.3.0"), b"\0asm not really".to_vec())
                .await
                .error(400, "bad-request");
            let rows = testkit_rows(&s.get("/api/v1/plugins").await.expect(200).json());
            assert_eq!(rows.len(), 2, "{rows:?}");
            assert_eq!(rows["0.1.0"]["active"], true, "{rows:?}");

            // Pin the workflow to 0.2.0: run D uses it though 0.1.0 is active.
            let pins = "/api/v1/projects/hot/definitions/spawner/pins/testkit";
            s.put(pins, json!({"version": "9.9.9"}))
                .await
                .error(400, "bad-request");
            s.put(pins, json!({"version": "0.2.0"})).await.expect(204);
            let d = s
                .get("/api/v1/projects/hot/definitions/spawner")
                .await
                .expect(200)
                .json();
            assert_eq!(d["pins"], json!({"testkit": "0.2.0"}));
            let run_d = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            assert_eq!(testkit_task(&s, run_d).await["plugin_version"], "0.2.0");
            s.put(pins, json!({"version": null})).await.expect(204);
            let e = start(&s, "hot", "spawner", json!({"params": {"secs": "0"}})).await;
            assert_eq!(testkit_task(&s, e).await["plugin_version"], "0.1.0");

            // Activate by version.
            let act = s
                .post("/api/v1/plugins/testkit/activate", json!({"version": "0.2.0"}))
                .await
                .expect(200)
                .json();
            assert_eq!((act["version"].as_str(), act["previous"].as_str()), (Some("0.2.0"), Some("0.1.0")));
            s.post("/api/v1/plugins/testkit/activate", json!({"version": "7.7.7"}))
                .await
                .error(404, "not-found");
            s.post_empty("/api/v1/plugins/nonesuch/rollback")
                .await
                .error(400, "bad-request");
        }
    })
    .await;
}

// ======================================================================================
// 1 (logs): a task's log while it runs.
// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_logs_stream_while_the_task_runs_on_both_databases() {
    on_both(|site| async move {
        let s = site.start().await;
        create_project(&s, "logs").await;
        let name = define_online(
            &s,
            "logs",
            &shell(
                "ticker",
                "'for i in 1 2 3 4 5 6; do echo \"tick $i\"; sleep 0.4; done'",
            ),
        )
        .await;
        let id = start(&s, "logs", &name, json!({})).await;
        let running = wait_task(&s, id, "main", "running").await;
        let task_id = task(&running, "main").unwrap()["id"].as_i64().unwrap();

        // What has been written so far can be read while the task runs.
        let early = eventually(
            "`tick 1` in the log of the running task",
            Duration::from_secs(2),
            async || {
                let log = log_of(&s, task_id).await;
                log.contains("tick 1").then_some(log)
            },
        )
        .await;
        assert!(!early.contains("tick 6"), "{early}");

        // Following delivers lines as they come, and ends when the task does.
        let mut response = s
            .request(
                Method::GET,
                &format!("/api/v1/tasks/{task_id}/log?follow=true"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut chunks: Vec<(String, String)> = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            let d = instance(&s, id).await;
            let state = task(&d, "main").unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned();
            chunks.push((String::from_utf8_lossy(&chunk).into_owned(), state));
        }
        let followed: String = chunks.iter().map(|(c, _)| c.as_str()).collect();
        assert!(
            chunks
                .first()
                .is_some_and(|(c, state)| c.contains("tick") && state == "running"),
            "the first lines should arrive while the task runs: {chunks:#?}"
        );
        assert!(
            chunks.len() >= 3,
            "the log came in {} piece(s): {chunks:#?}",
            chunks.len()
        );
        for i in 1..=6 {
            assert!(followed.contains(&format!("tick {i}")), "{followed}");
        }
        assert_eq!(settle(&s, id).await["state"], "succeeded");
    })
    .await;
}

// ======================================================================================
// Writes from requests while the engine writes.
// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn definitions_save_while_runs_are_writing_on_both_databases() {
    on_both(|site| async move {
        let s = site.start().await;
        create_project(&s, "busy").await;
        // A wide workflow keeps the engine's group commit writing.
        let mut wide = String::from("workflow:\n  name: wide\ntasks:\n");
        for i in 0..12 {
            wide.push_str(&format!(
                "  - name: t{i}\n    task_type: Shell\n    command: for n in 1 2 3 4 5; do echo $n; sleep 0.05; done\n"
            ));
        }
        define_online(&s, "busy", &wide).await;
        let runs: Vec<i64> = futures_join_all((0..4).map(|_| start(&s, "busy", "wide", json!({})))).await;
        // Meanwhile, requests save definitions (read the current version, then write).
        let saves = futures_join_all((0..4).map(|lane| {
            let s = &s;
            async move {
                for v in 0..8 {
                    let yaml = shell(&format!("lane{lane}"), &format!("echo version {v}"));
                    let r = s.post_yaml("busy", &yaml).await;
                    assert_eq!(r.status, 201, "saving lane{lane} v{v}: {}", r.body);
                }
            }
        }));
        saves.await;
        for id in runs {
            assert_eq!(settle(&s, id).await["state"], "succeeded");
        }
        for lane in 0..4 {
            let d = s
                .get(&format!("/api/v1/projects/busy/definitions/lane{lane}"))
                .await
                .expect(200)
                .json();
            assert_eq!(d["current_version"], 8, "{d}");
        }
    })
    .await;
}

/// Await every future, concurrently, in order.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}
