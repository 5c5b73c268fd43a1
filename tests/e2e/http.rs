//! The HTTP task type through the real `shoal` binary, against real HTTP servers on
//! 127.0.0.1: query, body and header parameters, DolphinScheduler's check conditions,
//! OUT parameters from the status, the body and JSON paths passed downstream, timeouts,
//! and the operator's allow-list deciding which hosts a task reaches.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use shoal_tests::shoal_bin;
use tokio::sync::mpsc;

/// What the test server saw of one request.
#[derive(Debug)]
struct Seen {
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: String,
}

async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel::<Seen>();
    let app = Router::new()
        .route(
            "/orders",
            post(
                |State(tx): State<mpsc::UnboundedSender<Seen>>,
                 Query(q): Query<Vec<(String, String)>>,
                 headers: HeaderMap,
                 body: String| async move {
                    let _ = tx.send(Seen {
                        path: "/orders".into(),
                        query: q,
                        headers,
                        body,
                    });
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({"data": {"id": 42, "tags": ["new", "paid"]}})),
                    )
                },
            ),
        )
        .route(
            "/health",
            get(|Query(q): Query<Vec<(String, String)>>| async move {
                let who = q.first().map(|(_, v)| v.clone()).unwrap_or_default();
                format!("all good, {who}")
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "gone") }),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

fn shoal(data: &Path, args: &[&str]) -> Output {
    Command::new(shoal_bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
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

/// `shoal run` the YAML on a fresh data dir under `policy`; the finished run as JSON.
async fn run(policy: &str, yaml: &str) -> (tempfile::TempDir, Output, Value) {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("policy.toml"), policy).unwrap();
    let file = data.path().join("wf.yaml");
    std::fs::write(&file, yaml).unwrap();
    let path = data.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        shoal(&path, &["run", file.to_str().unwrap(), "--json"])
    })
    .await
    .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (data, out, v)
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
    text(&shoal(
        data,
        &["logs", &t["id"].as_i64().unwrap().to_string()],
    ))
}

fn policy(addr: SocketAddr) -> String {
    format!(
        "[plugins.http]\nhttp-hosts = [\"127.0.0.1:{}\"]\n",
        addr.port()
    )
}

#[tokio::test]
async fn a_post_with_params_body_and_headers_passes_its_response_downstream() {
    let (addr, mut seen) = server().await;
    let yaml = format!(
        r#"
workflow:
  name: http-orders
tasks:
  - name: create
    task_type: Http
    url: http://{addr}/orders
    http_method: POST
    http_params:
      - {{prop: source, value: shoal run, httpParametersType: PARAMETER}}
      - {{prop: customer, value: "${{who}}", httpParametersType: body}}
      - {{prop: X-Request-Id, value: abc-1, httpParametersType: Headers}}
    http_check_condition: STATUS_CODE_CUSTOM
    condition: "201"
    connect_timeout: 2000
    socket_timeout: 2000
    local_params:
      - {{prop: who, direct: IN, type: VARCHAR, value: ada}}
      - {{prop: order_id, direct: OUT, type: VARCHAR, value: "$.data.id"}}
      - {{prop: first_tag, direct: OUT, type: VARCHAR, value: "$.data.tags[0]"}}
      - {{prop: code, direct: OUT, type: VARCHAR, value: status}}
  - name: use
    task_type: Shell
    deps: [create]
    command: echo "order=${{order_id}} tag=${{first_tag}} code=${{code}}"
"#
    );
    let (data, out, v) = run(&policy(addr), &yaml).await;
    assert!(out.status.success(), "{}\n{v}", text(&out));
    let request = seen.recv().await.unwrap();
    assert_eq!(request.path, "/orders");
    assert_eq!(
        request.query,
        [("source".to_owned(), "shoal run".to_owned())]
    );
    assert_eq!(request.headers["x-request-id"], "abc-1");
    assert!(
        request.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&request.body).unwrap(),
        json!({"customer": "ada"})
    );
    let create = task(&v, "create");
    assert_eq!(create["state"], "succeeded", "{v}");
    assert_eq!(create["out_params"]["order_id"], "42");
    assert_eq!(
        create["out_params"]["create.response"],
        r#"{"data":{"id":42,"tags":["new","paid"]}}"#
    );
    let log = log_of(data.path(), task(&v, "use"));
    assert!(log.contains("order=42 tag=new code=201"), "{log}");
}

#[tokio::test]
async fn check_conditions_decide_success_as_in_dolphinscheduler() {
    let (addr, _seen) = server().await;
    let case = |name: &str, path: &str, check: &str, condition: &str| {
        format!(
            "  - name: {name}\n    task_type: Http\n    url: http://{addr}{path}\n    http_check_condition: {check}\n    condition: \"{condition}\"\n"
        )
    };
    let yaml = format!(
        "workflow:\n  name: http-checks\n  failure_strategy: continue\ntasks:\n{}{}{}{}{}{}",
        case("contains", "/health?who=x", "BODY_CONTAINS", "all good"),
        case("not_contains", "/health", "BODY_NOT_CONTAINS", "error"),
        case("default_ok", "/health", "STATUS_CODE_DEFAULT", ""),
        case("default_404", "/missing", "STATUS_CODE_DEFAULT", ""),
        case("custom_404", "/missing", "STATUS_CODE_CUSTOM", "404"),
        case("contains_fails", "/health", "BODY_CONTAINS", "nope"),
    );
    let (_data, out, v) = run(&policy(addr), &yaml).await;
    assert!(!out.status.success(), "two tasks fail: {}", text(&out));
    let state = |n: &str| task(&v, n)["state"].as_str().unwrap().to_owned();
    assert_eq!(state("contains"), "succeeded");
    assert_eq!(state("not_contains"), "succeeded");
    assert_eq!(state("default_ok"), "succeeded");
    assert_eq!(state("custom_404"), "succeeded");
    assert_eq!(state("default_404"), "failed");
    assert_eq!(state("contains_fails"), "failed");
    let message = task(&v, "default_404")["message"].as_str().unwrap();
    assert!(
        message.contains("answered status 404, must be 200"),
        "{message}"
    );
}

#[tokio::test]
async fn a_socket_timeout_fails_the_task_and_an_unlisted_host_is_refused() {
    let (addr, _seen) = server().await;
    let (other, _seen2) = server().await;
    let yaml = format!(
        r#"
workflow:
  name: http-limits
  failure_strategy: continue
tasks:
  - name: slow
    task_type: Http
    url: http://{addr}/slow
    socket_timeout: 300
  - name: elsewhere
    task_type: Http
    url: http://{other}/health
"#
    );
    let started = std::time::Instant::now();
    let (_data, out, v) = run(&policy(addr), &yaml).await;
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the socket timeout cut the slow request short"
    );
    let message = |n: &str| task(&v, n)["message"].as_str().unwrap().to_owned();
    assert_eq!(task(&v, "slow")["state"], "failed");
    assert!(message("slow").contains("timed out"), "{}", message("slow"));
    assert_eq!(task(&v, "elsewhere")["state"], "failed");
    assert!(
        message("elsewhere").contains("capability denied")
            && message("elsewhere").contains("[plugins.http] http-hosts"),
        "{}",
        message("elsewhere")
    );

    // A method DolphinScheduler's HTTP task does not have is refused before anything
    // runs, naming file, line and field.
    let bad = format!(
        "workflow:\n  name: http-bad\ntasks:\n  - name: bad\n    task_type: Http\n    url: http://{addr}/health\n    http_method: PATCH\n"
    );
    let (_data, out, _) = run(&policy(addr), &bad).await;
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("wf.yaml:4") && said.contains("http_method") && said.contains("PATCH"),
        "{said}"
    );
}

#[tokio::test]
async fn without_a_policy_list_loopback_is_out_of_reach() {
    let (addr, mut seen) = server().await;
    let yaml = format!(
        "workflow:\n  name: http-default\ntasks:\n  - name: local\n    task_type: Http\n    url: http://{addr}/health\n"
    );
    let (_data, out, v) = run("", &yaml).await;
    assert!(!out.status.success());
    let message = task(&v, "local")["message"].as_str().unwrap().to_owned();
    assert!(message.contains("capability denied"), "{message}");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), seen.recv())
            .await
            .is_err(),
        "nothing reached the server"
    );
}
