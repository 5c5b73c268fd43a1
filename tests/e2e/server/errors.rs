//! Errors and limits on bad requests, and the served OpenAPI document against the routes.

use super::*;

pub(crate) async fn errors_and_limits(s: &Server) {
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
pub(crate) const REQUIRED: &[(&str, &str)] = &[
    ("get", "/api/v1/health"),
    ("get", "/api/v1/metrics"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("post", "/api/v1/users/{user}/tokens"),
    ("get", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/projects/{project}/permissions"),
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
pub(crate) fn concrete(path: &str) -> String {
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

pub(crate) async fn openapi(s: &Server) {
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
        if path == "/api/v1/events" {
            // A stream that stays open: its headers are the answer.
            let resp = s.request(m, &url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{method} {path}");
            continue;
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
