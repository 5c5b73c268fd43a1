//! Authorisation gaps, attacked as a plain user would: against a real `shoal server`
//! process (SQLite file, then a fresh PostgreSQL database), with the testkit component
//! uploaded into it and asking the workflow hook about other users' runs, reaching for
//! the host's loopback and the metadata address over HTTP, minting tokens that outlive
//! their maker, uploading a plugin id that shadows another, diffing huge definitions and
//! pointing an alert webhook at 127.0.0.1. Each attempt fails with a clear error and the
//! server keeps serving. The HTTP allow-list's policy rules are also checked in-process,
//! where a policy can be varied per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use shoal_model::TaskState;
use shoal_runtime::RuntimeError;
use shoal_tests::server::{
    Client, Reply, Server, eventually, instance, on_both_databases, settle, wait_state,
    webhook_receiver,
};
use shoal_tests::*;

const ADMIN: &str = "shoal-admin-token-for-authz-tests";

fn task<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task_name"] == name)
        .max_by_key(|t| t["id"].as_i64())
        .unwrap_or_else(|| panic!("no task `{name}` in {detail}"))
}

async fn new_user(s: &Server, name: &str) -> Client {
    s.post("/api/v1/users", json!({"name": name, "role": "user"}))
        .await
        .expect(201);
    let t = s
        .post(&format!("/api/v1/users/{name}/tokens"), json!({}))
        .await
        .expect(201)
        .json();
    s.client(Some(t["token"].as_str().unwrap()))
}

/// Save and put online a workflow; start it; return the instance id.
async fn start(c: &Client, project: &str, yaml: &str) -> i64 {
    // 201 for a new version, 200 when the same text was saved before.
    let saved = c.post_yaml(project, yaml).await;
    assert!(matches!(saved.status, 200 | 201), "{saved:?}");
    let saved = saved.json();
    let name = saved["name"].as_str().unwrap();
    c.post_empty(&format!(
        "/api/v1/projects/{project}/definitions/{name}/online"
    ))
    .await
    .expect(200);
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

/// A one-task workflow `name` whose task `t` is testkit with the given YAML params.
fn testkit_flow(name: &str, params: &str) -> String {
    let params: String = params.lines().map(|l| format!("    {l}\n")).collect();
    format!("workflow:\n  name: {name}\ntasks:\n  - name: t\n    task_type: testkit\n{params}")
}

/// Run a one-task testkit workflow to its end; returns (workflow state, task).
async fn run_testkit(c: &Client, project: &str, name: &str, params: &str) -> (String, Value) {
    let id = start(c, project, &testkit_flow(name, params)).await;
    let d = settle(c, id).await;
    (
        d["state"].as_str().unwrap().to_owned(),
        task(&d, "t").clone(),
    )
}

#[track_caller]
fn failed_with(outcome: &(String, Value), wanted: &str) {
    let (state, t) = outcome;
    assert_eq!(state, "failed", "{t}");
    assert_eq!(t["state"], "failed", "{t}");
    let message = t["message"].as_str().unwrap();
    assert!(message.contains(wanted), "wanted `{wanted}` in: {message}");
}

fn manifest(id: &str, version: &str) -> String {
    format!(
        "id = \"{id}\"\nversion = \"{version}\"\nwit = \"0.1.0\"\ncomponent = \"testkit.wasm\"\n\n[capabilities]\nwork-dir = true\nhttp-hosts = [\"*\"]\n"
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

/// A listener on 127.0.0.1 that counts the requests reaching it.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "the host's own service"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorisation_gaps_are_closed_on_both_databases() {
    on_both_databases(|data, db| async move {
        // Bodies large enough to reach the diff's size cap; no alert allowance on purpose.
        std::fs::write(
            data.path().join("server.toml"),
            "max_body_bytes = 3145728\n",
        )
        .unwrap();
        let server = Server::start(data.path(), db.as_deref(), ADMIN).await;
        let s = &server;
        let alice = new_user(s, "alice").await;
        let bob = new_user(s, "bob").await;
        alice
            .post("/api/v1/projects", json!({"name": "alpha"}))
            .await
            .expect(201);
        bob.post("/api/v1/projects", json!({"name": "beta"}))
            .await
            .expect(201);

        plugin_ids(s).await;
        tokens(s, &alice).await;
        workflow_hook(s, &alice, &bob).await;
        outbound_http(&alice).await;
        definition_diff(&alice).await;
        alert_webhooks(s, &alice).await;

        // Still serving: health, and an honest run of alice's.
        s.anonymous().get("/api/v1/health").await.expect(200);
        let honest = run_testkit(
            &alice,
            "alpha",
            "honest",
            "mode: last-run\nworkflow: honest",
        )
        .await;
        assert_eq!(honest.0, "succeeded", "{}", honest.1);
    })
    .await;
}

/// An id that differs from an installed one only in case, `-` or `_` is refused; the same
/// id with a new version is fine.
async fn plugin_ids(s: &Server) {
    let wasm = std::fs::read(testkit_wasm()).unwrap();
    upload(s, manifest("testkit", "0.1.0"), wasm.clone())
        .await
        .expect(201);
    for (id, existing) in [
        ("test_kit", "testkit"),
        ("test-kit", "testkit"),
        ("sub_workflow", "sub-workflow"),
        ("subworkflow", "sub-workflow"),
    ] {
        let m = upload(s, manifest(id, "9.0.0"), wasm.clone())
            .await
            .error(409, "conflict");
        assert!(
            m.contains(&format!(
                "`{id}` clashes with the installed plugin `{existing}`"
            )),
            "{id}: {m}"
        );
    }
    let plugins = s.get("/api/v1/plugins").await.expect(200).json();
    let ids: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.iter()
            .any(|i| ["test_kit", "test-kit", "subworkflow"].contains(i)),
        "{ids:?}"
    );
    let newer = upload(
        s,
        manifest("testkit", "0.2.0"),
        with_note(&wasm, "another build"),
    )
    .await
    .expect(201)
    .json();
    assert_eq!(newer["version"], "0.2.0", "{newer}");
}

/// `wasm` with a custom section appended: the same component, other bytes.
fn with_note(wasm: &[u8], note: &str) -> Vec<u8> {
    let name = b"shoal-test-note";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    assert!(payload.len() < 128);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

/// A token that expires cannot create one without expiry or with a later one.
async fn tokens(s: &Server, alice: &Client) {
    let short = alice
        .post("/api/v1/users/alice/tokens", json!({"expires_in_s": 600}))
        .await
        .expect(201)
        .json();
    let short = s.client(Some(short["token"].as_str().unwrap()));
    let m = short
        .post("/api/v1/users/alice/tokens", json!({"name": "forever"}))
        .await
        .error(400, "bad-request");
    assert!(
        m.contains("cannot create a token that never expires"),
        "{m}"
    );
    let m = short
        .post(
            "/api/v1/users/alice/tokens",
            json!({"expires_in_s": 86_400}),
        )
        .await
        .error(400, "bad-request");
    assert!(
        m.contains("a token cannot create one that outlives it"),
        "{m}"
    );
    // A shorter-lived token is fine, and it works.
    let shorter = short
        .post("/api/v1/users/alice/tokens", json!({"expires_in_s": 60}))
        .await
        .expect(201)
        .json();
    s.client(Some(shorter["token"].as_str().unwrap()))
        .get("/api/v1/tokens")
        .await
        .expect(200);
    // A token without expiry still mints what it likes.
    alice
        .post("/api/v1/users/alice/tokens", json!({"name": "forever"}))
        .await
        .expect(201);
}

/// The hook answers a task only about its own children and readable projects.
async fn workflow_hook(s: &Server, alice: &Client, bob: &Client) {
    // Bob's run, still going (an external job that waits for many polls).
    let bobs = start(
        bob,
        "beta",
        &testkit_flow("payroll", "mode: external\npolls: 100000"),
    )
    .await;
    wait_state(bob, bobs, &["running"]).await;
    let done = start(
        bob,
        "beta",
        &testkit_flow("ledger", "mode: read\npath: /work/none"),
    )
    .await;
    settle(bob, done).await;

    let not_started = format!("instance {bobs} was not started by this task");
    failed_with(
        &run_testkit(
            alice,
            "alpha",
            "peek",
            &format!("mode: child-status\ninstance: {bobs}"),
        )
        .await,
        &not_started,
    );
    failed_with(
        &run_testkit(
            alice,
            "alpha",
            "sabotage",
            &format!("mode: stop-child\ninstance: {bobs}"),
        )
        .await,
        &not_started,
    );
    // An id that does not exist reads the same.
    failed_with(
        &run_testkit(
            alice,
            "alpha",
            "guess",
            "mode: child-status\ninstance: 999999",
        )
        .await,
        "instance 999999 was not started by this task",
    );
    let still = instance(bob, bobs).await;
    assert_eq!(
        still["state"], "running",
        "the stop reached bob's run: {still}"
    );

    // Another project's runs: refused while alice cannot read beta, the same for a
    // project that does not exist.
    let not_readable = "project `alpha` may not look at runs of project `beta`: its member `alice` cannot read `beta`";
    failed_with(
        &run_testkit(
            alice,
            "alpha",
            "spy",
            "mode: last-run\nproject: beta\nworkflow: ledger",
        )
        .await,
        not_readable,
    );
    failed_with(
        &run_testkit(
            alice,
            "alpha",
            "spy",
            "mode: last-run\nproject: gamma\nworkflow: ledger",
        )
        .await,
        "project `alpha` may not look at runs of project `gamma`",
    );
    // Once bob lets alice read beta, her Dependent-style lookups work...
    bob.put(
        "/api/v1/projects/beta/permissions/alice",
        json!({"level": "read"}),
    )
    .await
    .expect(204);
    let allowed = run_testkit(
        alice,
        "alpha",
        "spy",
        "mode: last-run\nproject: beta\nworkflow: ledger",
    )
    .await;
    assert_eq!(allowed.0, "succeeded", "{}", allowed.1);
    assert_eq!(allowed.1["out_params"]["state"], "failed", "{}", allowed.1);
    // ...until alpha gains a member who cannot read beta: what the task learns shows in
    // alpha, so every member of alpha must be able to read beta.
    new_user(s, "carol").await;
    alice
        .put(
            "/api/v1/projects/alpha/permissions/carol",
            json!({"level": "read"}),
        )
        .await
        .expect(204);
    failed_with(
        &run_testkit(
            alice,
            "alpha",
            "spy",
            "mode: last-run\nproject: beta\nworkflow: ledger",
        )
        .await,
        "its member `carol` cannot read `beta`",
    );

    // A task's own children still answer: a SubWorkflow runs its child to the end.
    let child = "workflow:\n  name: child\ntasks:\n  - name: c\n    task_type: Noop\n";
    alice.post_yaml("alpha", child).await.expect(201);
    alice
        .post_empty("/api/v1/projects/alpha/definitions/child/online")
        .await
        .expect(200);
    let parent = start(
        alice,
        "alpha",
        "workflow:\n  name: parent\ntasks:\n  - name: call\n    task_type: SubWorkflow\n    workflow_name: child\n",
    )
    .await;
    let d = settle(alice, parent).await;
    assert_eq!(d["state"], "succeeded", "{d}");

    bob.post(
        &format!("/api/v1/instances/{bobs}/operations"),
        json!({"op": "stop"}),
    )
    .await;
    settle(bob, bobs).await;
}

/// A plugin granted `*` still cannot reach the host's loopback or the metadata address,
/// by IP or by a name that resolves there.
async fn outbound_http(alice: &Client) {
    let (port, hits) = counting_listener().await;
    for (name, url) in [
        ("loopback", format!("http://127.0.0.1:{port}/admin")),
        ("by-name", format!("http://localhost:{port}/admin")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{port}/")),
    ] {
        let outcome = run_testkit(
            alice,
            "alpha",
            &format!("fetch-{name}"),
            &format!("mode: http\nurl: \"{url}\""),
        )
        .await;
        failed_with(&outcome, "capability denied");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a request reached 127.0.0.1"
    );
}

/// Diffs of huge versions are refused with 413; ordinary ones still work.
async fn definition_diff(alice: &Client) {
    let filler: String = (0..25_000)
        .map(|i| format!("# filler line {i:06} ..................................................................\n"))
        .collect();
    assert!(filler.len() > 2_150_000);
    for task in ["a", "b"] {
        let yaml = format!(
            "workflow:\n  name: huge\n{filler}tasks:\n  - name: {task}\n    task_type: Noop\n"
        );
        alice.post_yaml("alpha", &yaml).await.expect(201);
    }
    let m = alice
        .get("/api/v1/projects/alpha/definitions/huge/diff?from=1&to=2")
        .await
        .error(413, "too-large");
    assert!(m.contains("diffs are limited to"), "{m}");

    for task in ["a", "b"] {
        let yaml =
            format!("workflow:\n  name: small\ntasks:\n  - name: {task}\n    task_type: Noop\n");
        alice.post_yaml("alpha", &yaml).await.expect(201);
    }
    let diff = alice
        .get("/api/v1/projects/alpha/definitions/small/diff?from=1&to=2")
        .await
        .expect(200)
        .body;
    assert!(diff.contains("-  - name: a\n+  - name: b\n"), "{diff}");
}

/// A webhook pointed at 127.0.0.1 is refused (the config lists no allowance) and the
/// refusal is counted and logged without the URL's path.
async fn alert_webhooks(s: &Server, alice: &Client) {
    let (hooks_at, mut hooks) = webhook_receiver().await;
    alice
        .put(
            "/api/v1/projects/alpha/alerts/inside",
            json!({"config": {"kind": "webhook", "url": format!("http://{hooks_at}/s3cret-path")},
                   "events": ["workflow-failed"]}),
        )
        .await
        .expect(204);
    failed_with(
        &run_testkit(alice, "alpha", "fails", "mode: child-status\ninstance: 1").await,
        "was not started by this task",
    );
    eventually(
        "the refused alert to be logged",
        Duration::from_secs(20),
        async || {
            s.log()
                .contains(&format!("refused to deliver to `{}`", hooks_at.ip()))
                .then_some(())
        },
    )
    .await;
    let metrics = s.get("/api/v1/metrics").await.expect(200).body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("shoal_alerts_failed") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        !s.log().contains("s3cret-path"),
        "the URL path reached the log"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hooks.try_recv().is_err(), "an alert reached 127.0.0.1");
}

// ======================================================================================
// The allow-list against resolved addresses, with the policy varied (in-process engine,
// real component, real listener).
// ======================================================================================

async fn fetch(h: &Harness, url: &str) -> shoal_task_engine::TaskReport {
    h.run("testkit", json!({"mode": "http", "url": url})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_public_addresses_need_an_explicit_ip_entry() {
    let (port, hits) = counting_listener().await;
    let url = format!("http://127.0.0.1:{port}/");

    // The manifest asks for everything; a name or wildcard never reaches loopback.
    let h = Harness::new();
    h.install_testkit("http-hosts = [\"*\"]").await;
    for target in [url.clone(), format!("http://localhost:{port}/")] {
        let report = fetch(&h, &target).await;
        assert_state(&report, TaskState::Failed);
        assert!(
            report.message.starts_with("capability denied:"),
            "{}",
            report.message
        );
        let log = log_of(&report);
        assert!(
            log.contains("127.0.0.1 (loopback), not a public address"),
            "{log}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // The manifest lists 127.0.0.1 but the policy's `*` does not hand it out.
    let h = Harness::with_policy("[defaults]\nhttp-hosts = [\"*\"]\n");
    h.install_testkit("http-hosts = [\"127.0.0.1\", \"*\"]")
        .await;
    let report = fetch(&h, &url).await;
    assert_state(&report, TaskState::Failed);
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // The operator lists the loopback block: now it is reachable, by IP.
    let h = Harness::with_policy("[defaults]\nhttp-hosts = [\"127.0.0.0/8\"]\n");
    h.install_testkit("http-hosts = [\"127.0.0.1\"]").await;
    let report = fetch(&h, &url).await;
    assert_state(&report, TaskState::Succeeded);
    assert_eq!(out_param(&report, "body"), Some("the host's own service"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clashing_plugin_id_is_refused_at_install() {
    let h = Harness::new();
    h.install_testkit("").await;
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(testkit_wasm()).unwrap();
    for (id, existing) in [("test-kit", "testkit"), ("sub_workflow", "sub-workflow")] {
        let src = plugin_dir(dir.path(), id, "1.0.0", &wasm, "");
        match h.registry().install(&src).await {
            Err(RuntimeError::IdClash {
                plugin,
                existing: e,
            }) => {
                assert_eq!((plugin.as_str(), e.as_str()), (id, existing));
            }
            Err(other) => panic!("{id}: expected an id clash, got {other}"),
            Ok(_) => panic!("{id}: a clashing id was installed"),
        }
    }
    let src = plugin_dir(dir.path(), "testkit", "0.3.0", &wasm, "");
    h.registry()
        .install(&src)
        .await
        .expect("a new version of the same id");
}
