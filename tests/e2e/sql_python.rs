//! DolphinScheduler's Python and SQL task types through the real `shoal` binary: a
//! SQLite datasource in the embedded data dir, real PostgreSQL and MariaDB databases
//! made for the test and dropped after, the operator's policy choosing the Python
//! interpreter and taking SQL away, and the datasources API of a real server (editors
//! manage them, readers see them, nobody sees a password).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use shoal_datasource::testing::{ScratchDatabase, fresh_mariadb, fresh_postgres};
use shoal_tests::server::{Client, Server};
use shoal_tests::shoal_bin;

fn shoal(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(shoal_bin());
    cmd.arg("--data-dir").arg(data).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running shoal")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `shoal run FILE --json`: the finished instance and its tasks.
fn run(data: &Path, yaml: &str) -> (Output, Value) {
    let file = data.join("wf.yaml");
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(&file, yaml).unwrap();
    let out = shoal(data, &["run", file.to_str().unwrap(), "--json"], &[]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, v)
}

fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {run}"))
        .iter()
        .find(|t| t["task_name"] == name)
        .unwrap_or_else(|| panic!("no task `{name}` in {run}"))
}

fn log_of(data: &Path, t: &Value) -> String {
    let id = t["id"].as_i64().unwrap().to_string();
    text(&shoal(data, &["logs", &id], &[]))
}

const PY_SQL: &str = r#"
workflow:
  name: py-sql
tasks:
  - name: count
    task_type: Python
    definition: |
      def main():
          n = sum(range(4))
          print("${setValue(n=%d)}" % n)
    output_params:
      n: INTEGER()
  - name: fill
    task_type: Sql
    deps: [count]
    datasource_name: DS
    sql_type: NON_QUERY
    pre_statements: ["CREATE TABLE IF NOT EXISTS items (id INTEGER, label VARCHAR(40))"]
    sql: |
      DELETE FROM items;
      INSERT INTO items VALUES (1, 'one'), (2, 'two; with a semicolon'), (${n}, 'six');
    local_params:
      - {prop: changed, direct: OUT, type: INTEGER, value: ""}
  - name: read
    task_type: Sql
    deps: [fill]
    datasource_name: DS
    display_rows: 2
    sql: SELECT id, label FROM items ORDER BY id
    post_statements: DROP TABLE items
    local_params:
      - {prop: id, direct: OUT, type: LIST, value: ""}
      - {prop: label, direct: OUT, type: VARCHAR, value: ""}
  - name: use
    task_type: Python
    deps: [read]
    definition: |
      ids = '${id}'
      print("${setValue(seen=" + ids + "|${label}|${changed})}")
"#;

/// The same workflow on every kind of datasource: Python computes, SQL writes and reads
/// (the log shows `display_rows` rows as a table), OUT parameters flow downstream.
fn python_and_sql_flow(data: &Path, datasource: &str) {
    let (out, v) = run(data, &PY_SQL.replace("DS", datasource));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(task(&v, "count")["out_params"]["n"], "6");
    assert_eq!(task(&v, "fill")["out_params"]["changed"], "3");
    let read = task(&v, "read");
    assert_eq!(read["out_params"]["id"], r#"["1","2","6"]"#);
    assert_eq!(read["out_params"]["label"], "one");
    assert_eq!(
        task(&v, "use")["out_params"]["seen"],
        r#"["1","2","6"]|one|3"#
    );
    let log = log_of(data, read);
    assert!(
        log.contains("display sql result 2 rows as follows:"),
        "{log}"
    );
    assert!(log.contains("| 2  | two; with a semicolon |"), "{log}");
    assert!(
        !log.contains("| 6 "),
        "only display_rows rows are shown: {log}"
    );
}

#[test]
fn python_and_sql_run_on_an_embedded_sqlite_datasource() {
    let data = tempfile::tempdir().unwrap();
    let out = shoal(
        data.path(),
        &[
            "datasource",
            "set",
            "local",
            "--type",
            "sqlite",
            "--database",
            "demo.db",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    python_and_sql_flow(data.path(), "local");
    // The file is the project's, inside the data dir.
    assert!(data.path().join("datasources/default/demo.db").is_file());

    // A SQLite datasource is a file name, never a path out of that directory.
    let out = shoal(
        data.path(),
        &[
            "datasource",
            "set",
            "escape",
            "--type",
            "sqlite",
            "--database",
            "../shoal.db",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not a plain file name"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_task_uses_only_a_datasource_of_its_project_that_it_names() {
    let data = tempfile::tempdir().unwrap();
    let (out, v) = run(
        data.path(),
        "workflow: {name: nowhere}\ntasks:\n  - {name: q, task_type: Sql, datasource_name: missing, sql: SELECT 1}\n",
    );
    assert!(!out.status.success());
    let message = task(&v, "q")["message"].as_str().unwrap().to_owned();
    assert!(message.contains("no datasource `missing`"), "{message}");
}

#[test]
fn the_operator_policy_can_take_sql_away() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path()).unwrap();
    std::fs::write(
        data.path().join("policy.toml"),
        "[plugins.sql]\nsql = false\n",
    )
    .unwrap();
    let out = shoal(
        data.path(),
        &[
            "datasource",
            "set",
            "local",
            "--type",
            "sqlite",
            "--database",
            "d.db",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (out, v) = run(
        data.path(),
        "workflow: {name: denied}\ntasks:\n  - {name: q, task_type: Sql, datasource_name: local, sql: SELECT 1}\n",
    );
    assert!(!out.status.success());
    let message = task(&v, "q")["message"].as_str().unwrap().to_owned();
    assert!(message.contains("capability denied"), "{message}");
}

/// The interpreter a Python task runs is the policy's `interpreter` setting, not the
/// workflow author's; a missing one fails the task naming it.
#[test]
fn the_python_interpreter_is_the_operators_choice() {
    // One the sandbox shows: it mounts the system's directories, not a user's home.
    let exe = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("a system python3 (the CI installs Debian's)")
        .to_owned();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("policy.toml"),
        format!("[plugins.python]\nsettings = {{ interpreter = \"{exe}\" }}\n"),
    )
    .unwrap();
    let yaml = "workflow: {name: which}\ntasks:\n  - name: p\n    task_type: Python\n    definition: |\n      import sys\n      print('${setValue(exe=' + sys.executable + ')}')\n";
    let (out, v) = run(data.path(), yaml);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(task(&v, "p")["out_params"]["exe"], exe.as_str());

    std::fs::write(
        data.path().join("policy.toml"),
        "[plugins.python]\nsettings = { interpreter = \"/nonexistent/python9\" }\n",
    )
    .unwrap();
    let (out, v) = run(data.path(), &yaml.replace("which", "which2"));
    assert!(!out.status.success());
    let p = task(&v, "p");
    let all = format!("{} {}", p["message"], log_of(data.path(), p));
    assert!(all.contains("/nonexistent/python9"), "{all}");
}

/// A server datasource set through the CLI: its password comes from the environment,
/// is stored sealed, reaches the database, and is never listed.
async fn on_server_datasource(scratch: Option<ScratchDatabase>, kind: &str) {
    let Some(scratch) = scratch else { return };
    let data = tempfile::tempdir().unwrap();
    let spec = &scratch.spec;
    let port = spec.port.unwrap().to_string();
    let out = shoal(
        data.path(),
        &[
            "datasource",
            "set",
            "warehouse",
            "--type",
            kind,
            "--host",
            &spec.host,
            "--port",
            &port,
            "--database",
            &spec.database,
            "--user",
            &spec.user,
            "--password-env",
            "WAREHOUSE_PASSWORD",
        ],
        &[("WAREHOUSE_PASSWORD", &scratch.password)],
    );
    assert!(out.status.success(), "{}", text(&out));
    python_and_sql_flow(data.path(), "warehouse");
    let listed = shoal(data.path(), &["datasource", "list", "--json"], &[]);
    let views: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(views[0]["database"], spec.database.as_str());
    assert!(views[0].get("password").is_none(), "{views}");
    scratch.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_tasks_run_on_a_postgresql_datasource() {
    on_server_datasource(fresh_postgres().await, "postgresql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_tasks_run_on_a_mariadb_datasource() {
    on_server_datasource(fresh_mariadb().await, "mysql").await;
}

const ADMIN: &str = "shoal-admin-token-for-datasource-tests";

async fn new_user(s: &Server, name: &str) -> Client {
    s.admin
        .post("/api/v1/users", json!({"name": name, "role": "user"}))
        .await
        .expect(201);
    let t = s
        .admin
        .post(&format!("/api/v1/users/{name}/tokens"), json!({}))
        .await
        .expect(201)
        .json();
    s.client(Some(t["token"].as_str().unwrap()))
}

/// Project editors manage datasources through the API; readers list them; the
/// password never comes back, and an update without one keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasources_api_seals_passwords_and_checks_permissions() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), None, ADMIN).await;
    let editor = new_user(&server, "eddie").await;
    let reader = new_user(&server, "rita").await;
    editor
        .post("/api/v1/projects", json!({"name": "dw"}))
        .await
        .expect(201);
    editor
        .put(
            "/api/v1/projects/dw/permissions/rita",
            json!({"level": "read"}),
        )
        .await
        .expect(204);

    let body = json!({"type": "POSTGRESQL", "host": "127.0.0.1", "database": "sales",
                      "user": "etl", "password": "hunter2-sealed"});
    let created = editor
        .put("/api/v1/projects/dw/datasources/sales", body.clone())
        .await
        .expect(201)
        .json();
    assert_eq!(created["type"], "postgresql");
    assert_eq!(created["has_password"], true);
    let listed = reader
        .get("/api/v1/projects/dw/datasources")
        .await
        .expect(200);
    assert!(!listed.body.contains("hunter2"), "{}", listed.body);
    assert_eq!(listed.json()[0]["name"], "sales");
    assert_eq!(listed.json()[0]["port"], Value::Null);

    // Readers may not change them; bad input names its field.
    reader
        .put("/api/v1/projects/dw/datasources/sales", body.clone())
        .await
        .expect(403);
    let bad = editor
        .put(
            "/api/v1/projects/dw/datasources/x",
            json!({"type": "sqlite", "database": "/etc/passwd"}),
        )
        .await
        .expect(400);
    assert!(bad.body.contains("database"), "{}", bad.body);
    let bad = editor
        .put(
            "/api/v1/projects/dw/datasources/x",
            json!({"type": "oracle", "host": "h", "database": "d", "user": "u"}),
        )
        .await
        .expect(400);
    assert!(bad.body.contains("type"), "{}", bad.body);

    // An update without a password keeps the stored one.
    let updated = editor
        .put(
            "/api/v1/projects/dw/datasources/sales",
            json!({"type": "postgresql", "host": "db.internal", "port": 6432, "database": "sales", "user": "etl"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(updated["has_password"], true);
    assert_eq!(updated["port"], 6432);
    // The sealed value in the database file is not the password.
    let db = std::fs::read(data.path().join("shoal.db")).unwrap();
    assert!(
        !db.windows(7).any(|w| w == b"hunter2"),
        "the password is in the store in the clear"
    );

    reader
        .delete("/api/v1/projects/dw/datasources/sales")
        .await
        .expect(403);
    editor
        .delete("/api/v1/projects/dw/datasources/sales")
        .await
        .expect(204);
    editor
        .delete("/api/v1/projects/dw/datasources/sales")
        .await
        .expect(404);

    // An upload's accepted-but-unsupported fields come back as warnings with line and
    // field, and `execution_type` becomes the definition's run mode.
    let saved = editor
        .post_yaml(
            "dw",
            "workflow:\n  name: w\n  execution_type: SERIAL_DISCARD\n  queue: q1\ntasks:\n  - {name: a, task_type: Noop}\n",
        )
        .await
        .expect(201)
        .json();
    let warnings = saved["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{saved}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("body.yaml:4: field `workflow.queue`: accepted, not supported"),
        "{saved}"
    );
    let d = editor
        .get("/api/v1/projects/dw/definitions/w")
        .await
        .expect(200)
        .json();
    assert_eq!(d["run_mode"], "serial-discard", "{d}");
    server.terminate(std::time::Duration::from_secs(10));
}
