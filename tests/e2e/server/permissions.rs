//! Per-project permission levels, and sealed secrets that never reach the store or a log
//! in the clear.

use super::*;

pub(crate) async fn permissions(s: &Server, users: &Users) {
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

    // What a UI reads to show only the buttons that work: who am I, what may I do.
    let me = reader.get("/api/v1/me").await.expect(200).json();
    assert_eq!(me["name"], "reader", "{me}");
    assert_eq!(me["role"], "user", "{me}");
    assert_eq!(me["projects"]["core"], "read", "{me}");
    let me = outsider.get("/api/v1/me").await.expect(200).json();
    assert_eq!(me["projects"], json!({}), "{me}");
    let me = s.get("/api/v1/me").await.expect(200).json();
    assert_eq!(me["role"], "admin", "{me}");
    assert_eq!(me["projects"]["core"], "edit", "{me}");
    // Who holds what: editors and admins only.
    let held = editor
        .get(&format!("{base}/permissions"))
        .await
        .expect(200)
        .json();
    for (user, level) in [
        ("reader", "read"),
        ("operator", "operate"),
        ("editor", "edit"),
    ] {
        assert!(
            held.as_array()
                .unwrap()
                .contains(&json!({"user": user, "level": level})),
            "{held}"
        );
    }
    operator
        .get(&format!("{base}/permissions"))
        .await
        .error(403, "forbidden");
    outsider
        .get(&format!("{base}/permissions"))
        .await
        .error(403, "forbidden");

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

pub(crate) async fn secrets(s: &Server, site: &Site) {
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

pub(crate) fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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
