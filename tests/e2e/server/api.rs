//! The main REST API run: projects, users and tokens, system endpoints, and a restart
//! that keeps everything.

use super::*;

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
            idempotent_runs(&server),
            live_events(&server),
        );
        permissions(&server, &users).await;
        secrets(&server, &site).await;
        system(&server).await;
        shutdown_and_restart(server, &site, &users).await;
    })
    .await;
}

pub(crate) async fn projects(s: &Server) {
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
pub(crate) struct Users {
    pub(crate) reader: String,
    pub(crate) operator: String,
    pub(crate) editor: String,
    pub(crate) outsider: String,
}

pub(crate) async fn new_token(s: &Server, user: &str, body: Value) -> (i64, String) {
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

pub(crate) async fn auth(s: &Server) -> Users {
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

pub(crate) async fn system(s: &Server) {
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

    // What the cluster proxy's health check reads.
    s.anonymous()
        .get("/api/v1/status")
        .await
        .error(401, "unauthenticated");
    let st = s.get("/api/v1/status").await.expect(200).json();
    assert_eq!(st["api_version"], "v1", "{st}");
    assert_eq!(st["nodes"], 1, "an all-in-one server is one node: {st}");
    assert!(st["slots"].as_i64().unwrap() > 0, "{st}");
    assert!(
        st["slots_free"].as_i64().unwrap() <= st["slots"].as_i64().unwrap(),
        "{st}"
    );
    assert!(
        st["task_types"]["shell"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "{st}"
    );
    assert!(
        st["running_instances"].is_i64() && st["queued_runs"].is_i64(),
        "{st}"
    );

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

pub(crate) async fn shutdown_and_restart(mut server: Server, site: &Site, users: &Users) {
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

/// `Idempotency-Key`: a retried start returns the first run (200) and starts nothing
/// more, also for a run that was queued; a bad key is refused.
pub(crate) async fn idempotent_runs(s: &Server) {
    create_project(s, "idem").await;
    let name = define_online(
        s,
        "idem",
        "workflow:\n  name: keyed\ntasks:\n  - name: t\n    task_type: Shell\n    command: sleep 0.3\n",
    )
    .await;
    let runs = format!("/api/v1/projects/idem/definitions/{name}/runs");
    let keyed = |key: &str| {
        s.request(Method::POST, &runs)
            .header("Idempotency-Key", key)
            .json(&json!({}))
    };
    let first = s.send(keyed("run-1")).await.expect(201).json();
    assert_eq!(first["outcome"], "started", "{first}");
    let again = s.send(keyed("run-1")).await.expect(200).json();
    assert_eq!(again["instance"], first["instance"], "{again}");
    let other = s.send(keyed("run-2")).await.expect(201).json();
    assert_ne!(other["instance"], first["instance"], "{other}");
    // Concurrent retries of one key still start one run.
    let (a, b) = tokio::join!(s.send(keyed("run-3")), s.send(keyed("run-3")));
    let (a, b) = (a.json(), b.json());
    assert_eq!(a["instance"], b["instance"], "{a} {b}");
    // A queued run (serial-wait behind a running one) is found by its key too.
    s.put(
        &format!("/api/v1/projects/idem/definitions/{name}/run-mode"),
        json!({"run_mode": "serial-wait"}),
    )
    .await
    .expect(204);
    let queued = s.send(keyed("run-4")).await.expect(201).json();
    if queued["outcome"] == "queued" {
        let again = s.send(keyed("run-4")).await.expect(200).json();
        assert_eq!(again["queued"], queued["queued"], "{again}");
    }
    for bad in ["", "with space", &"k".repeat(201)] {
        s.send(keyed(bad)).await.error(400, "bad-request");
    }
    let page = s
        .get(&format!(
            "/api/v1/instances?project=idem&workflow={name}&limit=100"
        ))
        .await
        .expect(200)
        .json();
    let started = page["items"].as_array().unwrap().len();
    assert!(started <= 4, "keys 1-4 start at most four runs: {page}");
}

/// `GET /api/v1/events`: a project's state changes as server-sent events, live, and
/// nothing of another project's.
pub(crate) async fn live_events(s: &Server) {
    use futures_util::StreamExt as _;
    for p in ["live", "other-live"] {
        create_project(s, p).await;
    }
    let yaml = "workflow:\n  name: ticker\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo tick\n  - name: b\n    task_type: Shell\n    command: echo tock\n    deps: [a]\n";
    let name = define_online(s, "live", yaml).await;
    let other = define_online(s, "other-live", yaml).await;
    s.anonymous()
        .get("/api/v1/events?project=live")
        .await
        .error(401, "unauthenticated");
    let resp = s
        .request(Method::GET, "/api/v1/events?project=live")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let theirs = launch(s, "other-live", &other, json!({})).await["instance"]
        .as_i64()
        .unwrap();
    let ours = launch(s, "live", &name, json!({})).await["instance"]
        .as_i64()
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let done = format!("\"instance\":{ours},\"state\":\"succeeded\"");
    while !text.contains(&done) {
        let chunk = tokio::time::timeout_at(deadline.into(), body.next())
            .await
            .unwrap_or_else(|_| panic!("no succeeded event for {ours} in:\n{text}"))
            .expect("the stream ended")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: task"), "{text}");
    assert!(text.contains("\"task\":\"b\""), "{text}");
    assert!(
        !text.contains(&format!("\"instance\":{theirs},")),
        "another project's instance leaked into the stream:\n{text}"
    );
}
