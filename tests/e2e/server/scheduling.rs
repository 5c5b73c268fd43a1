//! Cron schedules, run modes and backfills on a running server.

use super::*;

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
            schedule_preview(&server),
        );
    })
    .await;
}

/// The seconds field of an RFC 3339 time.
pub(crate) fn seconds_of(rfc3339: &str) -> u32 {
    rfc3339[17..19]
        .parse()
        .unwrap_or_else(|_| panic!("not RFC 3339: {rfc3339}"))
}

/// A cron expression in plain English and its next fire times, before it is saved.
pub(crate) async fn schedule_preview(s: &Server) {
    let p = s
        .post(
            "/api/v1/schedules/preview",
            json!({"cron": "0 30 9 ? * MON-FRI", "timezone": "Asia/Shanghai", "count": 10}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        p["description"], "at 09:30, on Monday through Friday",
        "{p}"
    );
    let fires = p["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 10, "{p}");
    let distinct: BTreeSet<&str> = fires.iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(distinct.len(), 10, "{p}");
    for f in &distinct {
        assert!(
            f.ends_with("T09:30:00+08:00"),
            "09:30 in the schedule's zone: {f}"
        );
    }
    let m = s
        .post("/api/v1/schedules/preview", json!({"cron": "0 0 25 * * ?"}))
        .await
        .error(400, "bad-request");
    assert!(m.contains("cron"), "{m}");
    s.post(
        "/api/v1/schedules/preview",
        json!({"cron": "0 0 2 * * ?", "count": 0}),
    )
    .await
    .error(400, "bad-request");
    s.anonymous()
        .post("/api/v1/schedules/preview", json!({"cron": "0 0 2 * * ?"}))
        .await
        .error(401, "unauthenticated");
}

pub(crate) async fn cron(s: &Server) {
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

pub(crate) fn sleeper(name: &str) -> String {
    format!(
        "workflow:\n  name: {name}\n  param:\n    secs: \"1\"\n    tag: none\ntasks:\n  - name: work\n    task_type: Shell\n    command: echo \"run ${{tag}}\"; sleep ${{secs}}\n"
    )
}

/// Every instance of `workflow` in project `project`, oldest first, once there are
/// `n` of them, all finished.
pub(crate) async fn finished_runs(s: &Server, project: &str, workflow: &str, n: i64) -> Vec<Value> {
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

pub(crate) async fn run_modes(s: &Server) {
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

pub(crate) async fn backfill(s: &Server) {
    let serial = define_online(s, "backfill", &sleeper("daily-serial")).await;
    let parallel = define_online(s, "backfill", &sleeper("daily-parallel")).await;
    let url = |name: &str| format!("/api/v1/projects/backfill/definitions/{name}/backfill");

    // A dry run names the dates and queues nothing.
    let dry = s
        .post(
            &format!("{}?dry_run=true", url(&serial)),
            json!({"from": "2024-02-27", "to": "2024-03-01"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        dry["dates"],
        json!(["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]),
        "{dry}"
    );
    assert_eq!(dry["queued"], json!([]), "{dry}");

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
