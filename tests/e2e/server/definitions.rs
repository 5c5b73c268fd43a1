//! Definitions and their versions, runs, and operations on running instances.

use super::*;

pub(crate) const REPORT_V1: &str = r#"workflow:
  name: report
  param:
    who: world
tasks:
  - name: greet
    task_type: Shell
    command: echo "hello ${who}"
"#;

pub(crate) const REPORT_V2: &str = r#"workflow:
  name: report
  param:
    who: world
tasks:
  - name: greet
    task_type: Shell
    command: echo "greetings ${who}"
"#;

pub(crate) async fn definitions_and_runs(s: &Server) {
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
    assert_eq!(first["next_before"], tid, "{first}");
    assert!(third.get("next_before").is_none(), "the last page: {third}");
    // Keyset paging: each page continues from the last id of the one before.
    let mut keyset = Vec::new();
    let mut page = list(s, "project=core&limit=1").await;
    loop {
        keyset.extend(items(&page).iter().map(|i| i["id"].as_i64().unwrap()));
        let Some(before) = page.get("next_before").and_then(|b| b.as_i64()) else {
            break;
        };
        page = list(s, &format!("project=core&limit=1&before={before}")).await;
    }
    assert_eq!(keyset, ids, "keyset pages in order, none twice");
    let older = list(s, &format!("project=core&before={tid}")).await;
    assert_eq!(older["total"], 2, "counted from the cursor: {older}");
    s.get(&format!(
        "/api/v1/instances?project=core&before={tid}&offset=1"
    ))
    .await
    .error(400, "bad-request");
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

pub(crate) const LONG: &str = "workflow:
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

pub(crate) const STEPS: &str = "workflow:
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

pub(crate) async fn operations(s: &Server) {
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
