//! The harness: a site (data dir and database), starting servers, and helpers for
//! projects, definitions, runs and logs.

use super::*;

/// A data dir and, for PostgreSQL, the database URL.
pub(crate) struct Site {
    pub(crate) data: tempfile::TempDir,
    pub(crate) db: Option<String>,
}

impl Site {
    pub(crate) fn sqlite(&self) -> bool {
        self.db.is_none()
    }

    pub(crate) fn config(&self, toml: &str) {
        std::fs::write(self.data.path().join("server.toml"), toml).unwrap();
    }

    pub(crate) async fn start(&self) -> Server {
        Server::start(self.data.path(), self.db.as_deref(), ADMIN).await
    }
}

/// Run `test` on a server over SQLite, then over a fresh PostgreSQL database (skipped
/// without a server, except under CI=true).
pub(crate) async fn on_both<F, Fut>(test: F)
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
pub(crate) fn task<'a>(detail: &'a Value, name: &str) -> Option<&'a Value> {
    detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task_name"] == name)
        .max_by_key(|t| t["id"].as_i64())
}

/// Wait until task `name` of instance `id` is in `state`; returns the instance detail.
pub(crate) async fn wait_task(c: &Client, id: i64, name: &str, state: &str) -> Value {
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

pub(crate) fn state_of(detail: &Value) -> &str {
    detail["state"].as_str().unwrap()
}

pub(crate) fn ms(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not a number of ms: {v}"))
}

/// Create a project with `c` and, as the admin, let it run process task types (Shell).
pub(crate) async fn create_project(c: &Client, name: &str) {
    c.post("/api/v1/projects", json!({"name": name}))
        .await
        .expect(201);
    allow_process(c, name).await;
}

/// As the admin, let project `name` run process task types.
pub(crate) async fn allow_process(c: &Client, name: &str) {
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
pub(crate) async fn define_online(c: &Client, project: &str, yaml: &str) -> String {
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
pub(crate) async fn launch(c: &Client, project: &str, name: &str, body: Value) -> Value {
    c.post(
        &format!("/api/v1/projects/{project}/definitions/{name}/runs"),
        body,
    )
    .await
    .expect(201)
    .json()
}

/// Start a run that must start at once; returns the instance id.
pub(crate) async fn start(c: &Client, project: &str, name: &str, body: Value) -> i64 {
    let l = launch(c, project, name, body).await;
    assert_eq!(l["outcome"], "started", "{l}");
    l["instance"].as_i64().unwrap()
}

pub(crate) async fn list(c: &Client, query: &str) -> Value {
    c.get(&format!("/api/v1/instances?{query}"))
        .await
        .expect(200)
        .json()
}

pub(crate) fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().unwrap().clone()
}

pub(crate) async fn operate(c: &Client, id: i64, body: Value) -> Reply {
    c.post(&format!("/api/v1/instances/{id}/operations"), body)
        .await
}

pub(crate) async fn log_of(c: &Client, task_id: i64) -> String {
    c.get(&format!("/api/v1/tasks/{task_id}/log"))
        .await
        .expect(200)
        .body
}

pub(crate) fn shell(workflow: &str, command: &str) -> String {
    format!(
        "workflow:\n  name: {workflow}\ntasks:\n  - name: main\n    task_type: Shell\n    command: {command}\n"
    )
}

pub(crate) fn unique(prefix: &str) -> String {
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
