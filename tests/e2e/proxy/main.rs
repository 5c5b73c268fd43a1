//! `shoal proxy` end to end: real `shoal server` clusters (each its own SQLite data dir
//! and port) behind a real proxy process on 127.0.0.1. Routing policies, a task type
//! one cluster lacks, a cluster's loss and return, drift repair, the one view with a
//! cluster down, audit and permissions; runs exactly once through a lost answer and a
//! proxy crash; a global schedule while its cluster dies; and MCP driven by the
//! official Python SDK over streamable HTTP and stdio.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use shoal_tests::cluster::free_port;
use shoal_tests::server::{Client, Reply, Server, eventually};
use shoal_tests::shoal_bin;

mod harness;
mod mcp;

use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_failover_drift_and_one_view() {
    let routes = r#"
[[routes]]
project = "pinned"
policy = "pinned"
cluster = "b"
failover = ["c"]

[[routes]]
project = "eu"
policy = "labels"
labels = { region = "eu" }

[[routes]]
project = "weighted"
policy = "weighted"

[[routes]]
project = "kit"
policy = "least-loaded"
"#;
    let mut site = Site::start(
        &[
            ("a", "region = \"eu\"", 1),
            ("b", "region = \"us\"", 3),
            ("c", "region = \"eu\"", 1),
        ],
        routes,
    )
    .await;
    for p in ["pinned", "eu", "weighted", "free", "kit"] {
        site.project(p).await;
    }
    // Copies go exactly where each route can send runs.
    let copied = |w: &[String]| -> BTreeSet<String> {
        w.iter()
            .filter_map(|w| w.strip_prefix("copied to cluster "))
            .map(|w| w[..1].to_owned())
            .collect()
    };
    let w = site.apply("pinned", &shell("job", "0")).await;
    assert_eq!(copied(&w), ["b", "c"].map(String::from).into(), "{w:?}");
    let w = site.apply("eu", &shell("job", "0")).await;
    assert_eq!(copied(&w), ["a", "c"].map(String::from).into(), "{w:?}");
    for p in ["weighted", "free"] {
        let w = site.apply(p, &shell("job", "0")).await;
        assert_eq!(copied(&w).len(), 3, "{w:?}");
    }

    // Pinned: always b.
    for _ in 0..3 {
        let r = site.run("pinned", "job", "").await.expect(201).json();
        assert_eq!(site.landed(&r).await.0, "b", "{r}");
    }
    // Labels: only the eu clusters.
    for _ in 0..6 {
        let r = site.run("eu", "job", "").await.expect(201).json();
        let (c, _) = site.landed(&r).await;
        assert!(c == "a" || c == "c", "an eu run went to {c}");
    }
    // Weighted 1:3:1 over 40 runs: b takes the most, the others some. A cluster whose
    // health probe times out on a loaded machine is passed over meanwhile, which skews
    // the spread, so the check starts from all healthy and allows a tie.
    site.wait_healthy(&site.names()).await;
    let mut spread = BTreeMap::<String, u32>::new();
    for _ in 0..40 {
        let r = site.run("weighted", "job", "").await.expect(201).json();
        *spread.entry(site.landed(&r).await.0).or_default() += 1;
    }
    let n = |c: &str| spread.get(c).copied().unwrap_or(0);
    assert!(
        n("b") >= n("a") && n("b") >= n("c") && n("a") + n("c") > 0,
        "{spread:?}; health now {:?}",
        site.health().await
    );
    // A run may name its cluster.
    let r = site
        .run("free", "job", "?cluster=c")
        .await
        .expect(201)
        .json();
    assert_eq!(site.landed(&r).await.0, "c");
    // A route set through the API is kept in the proxy's store and wins over
    // proxy.toml's (here: none for `free`); deleting it puts the default back.
    let a = site.admin();
    let m = a
        .put(
            "/api/v1/routes",
            json!({"project": "free", "policy": "pinned"}),
        )
        .await
        .error(400, "bad-request");
    assert!(m.contains("cluster"), "{m}");
    a.put(
        "/api/v1/routes",
        json!({"project": "free", "workflow": "job", "policy": "pinned", "cluster": "a"}),
    )
    .await
    .expect(200);
    let routes = a.get("/api/v1/routes").await.expect(200).json();
    assert!(
        routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["project"] == "free" && r["source"] == "api"),
        "{routes}"
    );
    for _ in 0..3 {
        let r = site.run("free", "job", "").await.expect(201).json();
        assert_eq!(site.landed(&r).await.0, "a");
    }
    a.delete("/api/v1/routes/free?workflow=job")
        .await
        .expect(204);

    task_type_one_cluster_lacks(&site).await;
    one_view(&site, &spread).await;
    audit_and_permissions(&site).await;
    live_events(&site).await;
    drift_is_repaired(&site).await;
    loss_and_return(&mut site).await;
}

/// The testkit type exists on a and b only: its definition is copied there only, and no
/// run goes to c, even when asked.
async fn task_type_one_cluster_lacks(site: &Site) {
    let wasm = std::fs::read(shoal_tests::testkit_wasm()).unwrap();
    for c in ["a", "b"] {
        let form = reqwest::multipart::Form::new()
            .text(
                "manifest",
                "id = \"testkit\"\nversion = \"0.1.0\"\nwit = \"0.1.0\"\ncomponent = \"testkit.wasm\"\n",
            )
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm.clone()).file_name("testkit.wasm"),
            );
        let s = site.cluster(c);
        s.send(s.request(Method::POST, "/api/v1/plugins").multipart(form))
            .await
            .expect(201);
    }
    eventually(
        "the proxy to see testkit on a and b",
        Duration::from_secs(20),
        async || {
            let list = site
                .admin()
                .get("/api/v1/clusters")
                .await
                .expect(200)
                .json();
            let has: BTreeSet<String> = list["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"]["task_types"]["testkit"].is_array())
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect();
            (has == ["a", "b"].map(String::from).into()).then_some(())
        },
    )
    .await;
    let kit = "workflow:\n  name: kit\ntasks:\n  - name: t\n    task_type: testkit\n    mode: print\n    text: hi\n";
    let w = site.apply("kit", kit).await;
    assert!(
        w.iter().any(|w| w.starts_with("copied to cluster a"))
            && w.iter().any(|w| w.starts_with("copied to cluster b"))
            && !w.iter().any(|w| w.contains("cluster c")),
        "{w:?}"
    );
    for _ in 0..10 {
        let r = site.run("kit", "kit", "").await.expect(201).json();
        assert_ne!(site.landed(&r).await.0, "c");
    }
    let m = site.run("kit", "kit", "?cluster=c").await.json();
    let m = m["message"].as_str().unwrap_or_default().to_owned();
    assert!(m.contains("no task type testkit"), "{m}");
    assert_eq!(site.count_on("c", "kit", "kit").await, 0);
}

/// Listings across clusters, with cluster-qualified ids that route back.
async fn one_view(site: &Site, spread: &BTreeMap<String, u32>) {
    let a = site.admin();
    let page = a
        .get("/api/v1/instances?project=weighted&limit=100")
        .await
        .expect(200)
        .json();
    assert_eq!(page["total"], 40, "{page}");
    let items = page["items"].as_array().unwrap();
    let mut per = BTreeMap::<String, u32>::new();
    for i in items {
        *per.entry(i["cluster"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(&per, spread);
    let second = a
        .get("/api/v1/instances?project=weighted&limit=10&offset=10")
        .await
        .expect(200)
        .json();
    let ids = |p: &Value| -> Vec<i64> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&second), ids(&page)[10..20].to_vec());
    // The UI's cluster filter: one cluster's share only; an unknown name is an error.
    for (cluster, count) in spread {
        let only = a
            .get(&format!(
                "/api/v1/instances?project=weighted&limit=100&cluster={cluster}"
            ))
            .await
            .expect(200)
            .json();
        assert_eq!(only["total"], *count, "{only}");
        assert!(
            only["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["cluster"] == cluster.as_str()),
            "{only}"
        );
    }
    a.get("/api/v1/instances?project=weighted&cluster=nowhere")
        .await
        .expect(400);
    // The proxy serves the web UI too, confined to its own origin.
    let ui = a.get("/").await.expect(200);
    assert!(ui.body.contains("id=\"app\""), "{}", ui.body);
    let csp = ui.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    // Secrets written through the proxy reach every cluster; the proxy lists their
    // names (never values) as the union over them.
    let put = a
        .put(
            "/api/v1/projects/weighted/secrets/ui_key",
            json!({"value": "not-for-listing"}),
        )
        .await;
    assert!(put.status < 300, "{}", put.body);
    let names = a.get("/api/v1/projects/weighted/secrets").await.expect(200);
    assert!(names.body.contains("\"ui_key\""), "{}", names.body);
    assert!(!names.body.contains("not-for-listing"), "{}", names.body);
    a.get("/api/v1/projects/weighted/datasources")
        .await
        .expect(200);
    // The same pages in a browser, with a cluster column and filter.
    if let Some(tools) = shoal_tests::browser::tools() {
        let names: Vec<&str> = spread.keys().map(String::as_str).collect();
        shoal_tests::browser::run(
            &tools,
            "proxy.mjs",
            &site.proxy().url,
            PROXY_ADMIN,
            &[("SHOAL_CLUSTERS", names.join(","))],
            String::new,
        );
    }
    // An id names its cluster: detail, task and log come from there.
    let id = items[0]["id"].as_i64().unwrap();
    let d = shoal_tests::server::settle(&a, id).await;
    assert_eq!(d["state"], "succeeded", "{d}");
    assert_eq!(d["cluster"], items[0]["cluster"]);
    let task = d["tasks"][0]["id"].as_i64().unwrap();
    assert!(task > 1_000_000_000_000, "task ids are qualified: {task}");
    let log = a
        .get(&format!("/api/v1/tasks/{task}/log"))
        .await
        .expect(200)
        .body;
    assert!(log.contains("ran job"), "{log}");
    // Operations route back too.
    a.post(
        &format!("/api/v1/instances/{id}/operations"),
        json!({"op": "rerun"}),
    )
    .await
    .expect(200);
    let nodes = a.get("/api/v1/nodes").await.expect(200).json();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 3, "{nodes}");
    // The CLI works against the proxy unchanged.
    let out = Command::new(shoal_bin())
        .args([
            "--server",
            &site.proxy().url,
            "--token",
            PROXY_ADMIN,
            "--project",
            "free",
        ])
        .args(["instances", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(shoal_bin())
        .args([
            "--server",
            &site.proxy().url,
            "--token",
            PROXY_ADMIN,
            "clusters",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("healthy"), "{text}");
}

async fn audit_and_permissions(site: &Site) {
    let a = site.admin();
    let audit = a.get("/api/v1/audit?limit=1000").await.expect(200).json();
    let entries = audit["items"].as_array().unwrap();
    assert!(
        entries.iter().any(
            |e| e["action"] == "POST /projects/weighted/definitions/job/runs"
                && e["user"] == "admin"
                && e["cluster"].is_string()
                && e["result"].as_str().unwrap().contains("instance")
        ),
        "{audit}"
    );
    a.post("/api/v1/users", json!({"name": "ana", "role": "user"}))
        .await
        .expect(201);
    let t = a
        .post("/api/v1/users/ana/tokens", json!({}))
        .await
        .expect(201)
        .json();
    let ana = site.proxy().client(t["token"].as_str().unwrap());
    a.put(
        "/api/v1/projects/free/permissions/ana",
        json!({"level": "read"}),
    )
    .await
    .expect(204);
    ana.get("/api/v1/audit").await.error(403, "forbidden");
    ana.get("/api/v1/instances?project=free").await.expect(200);
    ana.get("/api/v1/instances?project=weighted")
        .await
        .error(403, "forbidden");
    ana.post("/api/v1/projects/free/definitions/job/runs", json!({}))
        .await
        .error(403, "forbidden");
    site.proxy()
        .client("not-a-token")
        .get("/api/v1/instances?project=free")
        .await
        .error(401, "unauthenticated");
}

/// The clusters' live events, merged by the proxy with proxy ids.
async fn live_events(site: &Site) {
    use futures_util::StreamExt as _;
    let a = site.admin();
    let resp = a
        .request(Method::GET, "/api/v1/events?project=free")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let r = site.run("free", "job", "").await.expect(201).json();
    let (_, id) = site.landed(&r).await;
    let done = format!("\"instance\":{id},\"state\":\"succeeded\"");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text.contains(&done) {
        let chunk = tokio::time::timeout_at(deadline.into(), body.next())
            .await
            .unwrap_or_else(|_| panic!("no succeeded event for {id} through the proxy:\n{text}"))
            .expect("the stream ended")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: task"), "{text}");
}

/// A cluster holding another version than the proxy's is repaired by the sync pass.
async fn drift_is_repaired(site: &Site) {
    let direct = site.cluster("a");
    direct
        .post_yaml(
            "free",
            &shell("job", "0").replace("echo ran", "echo drifted"),
        )
        .await
        .expect(201);
    eventually(
        "the drifted copy on a to be repaired",
        Duration::from_secs(30),
        async || {
            let d = direct
                .get("/api/v1/projects/free/definitions/job")
                .await
                .expect(200)
                .json();
            let cmd = d["spec"]["tasks"][0]["params"]["command"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (cmd.contains("echo ran") && d["online"] == true).then_some(())
        },
    )
    .await;
    let audit = site
        .admin()
        .get("/api/v1/audit?limit=1000")
        .await
        .expect(200)
        .json();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["user"] == "proxy-sync" && e["cluster"] == "a"),
        "{audit}"
    );
}

/// b dies: new runs of its pinned project go to its failover within one health
/// interval plus 2 s; its instances show as unreachable; it returns and reconciles.
async fn loss_and_return(site: &mut Site) {
    site.kill("b");
    let lost = Instant::now();
    let mut rerouted = None;
    while rerouted.is_none() {
        let r = site.run("pinned", "job", "").await;
        assert!(r.status == 201 || r.status == 202, "{}", r.body);
        let (c, _) = site.landed(&r.json()).await;
        if c == "c" {
            rerouted = Some(lost.elapsed());
        }
        assert!(
            lost.elapsed() < Duration::from_secs(30),
            "runs never left b"
        );
    }
    let took = rerouted.unwrap();
    assert!(
        took <= Duration::from_millis(HEALTH_MS + 2000),
        "rerouting took {took:?}"
    );
    let health = site.health().await;
    assert_eq!(health["b"], "unreachable", "{health:?}");
    let page = site
        .admin()
        .get("/api/v1/instances?project=pinned&limit=100")
        .await
        .expect(200)
        .json();
    assert_eq!(page["missing"][0]["cluster"], "b", "{page}");
    let states: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["cluster"].as_str().unwrap(), i["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states
            .iter()
            .filter(|(c, s)| *c == "b" && *s == "unreachable")
            .count(),
        3,
        "the three runs on b are shown as unreachable, not lost: {states:?}"
    );
    // A slow or dead cluster does not stall the listing.
    site.restart("b").await;
    site.wait_healthy(&["b".into()]).await;
    let page = site
        .admin()
        .get("/api/v1/instances?project=pinned&limit=100")
        .await
        .expect(200)
        .json();
    assert!(page.get("missing").is_none(), "{page}");
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["state"] != "unreachable"),
        "{page}"
    );
}

/// A forward whose answer is lost, and a proxy killed mid-forward, start one run each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_start_exactly_once() {
    let routes = "[[routes]]\nproject = \"once\"\npolicy = \"pinned\"\ncluster = \"b\"\n";
    let mut site = Site::start(&[("a", "", 1), ("b", "", 1)], routes).await;
    site.project("once").await;
    site.apply("once", &shell("lost", "0")).await;
    site.apply("once", &shell("crash", "0")).await;
    site.apply("once", &shell("waiting", "0")).await;

    // b freezes with the request in its socket: the forward times out (the answer is
    // lost), the caller gets 202, and the retry after b thaws finds the same run.
    site.cluster("b").signal(libc::SIGSTOP);
    let r = site.run("once", "lost", "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    site.cluster("b").signal(libc::SIGCONT);
    let (c, _) = site.landed(&r.json()).await;
    assert_eq!(c, "b");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.count_on("b", "once", "lost").await, 1);

    // The proxy is killed while its forward hangs on a frozen b; after the restart the
    // run (found by the caller's own Idempotency-Key) starts once.
    site.cluster("b").signal(libc::SIGSTOP);
    let admin = site.admin();
    let send = admin.send(
        admin
            .request(Method::POST, "/api/v1/projects/once/definitions/crash/runs")
            .header("Idempotency-Key", "crash-1")
            .json(&json!({})),
    );
    let _ = tokio::time::timeout(Duration::from_millis(400), send).await;
    site.proxy.as_mut().unwrap().kill();
    site.cluster("b").signal(libc::SIGCONT);
    site.restart_proxy().await;
    let placed = site.landed(&json!({"run": "user-1-crash-1"})).await;
    assert_eq!(placed.0, "b");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.count_on("b", "once", "crash").await, 1);
    // The same key again returns that run.
    let again = admin_post_keyed(&site, "crash", "crash-1").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(site.count_on("b", "once", "crash").await, 1);

    // Accepted while its only cluster is unreachable: kept, and started once when the
    // cluster comes back, across a proxy crash.
    site.cluster("b").signal(libc::SIGSTOP);
    eventually("b to be unreachable", Duration::from_secs(20), async || {
        (site.health().await["b"] == "unreachable").then_some(())
    })
    .await;
    let r = site.run("once", "waiting", "").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let key = r.json()["run"].as_str().unwrap().to_owned();
    site.proxy.as_mut().unwrap().kill();
    site.cluster("b").signal(libc::SIGCONT);
    site.restart_proxy().await;
    site.landed(&json!({"run": key})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.count_on("b", "once", "waiting").await, 1);
    assert_eq!(site.count_on("a", "once", "waiting").await, 0);
}

async fn admin_post_keyed(site: &Site, workflow: &str, key: &str) -> Reply {
    let admin = site.admin();
    admin
        .send(
            admin
                .request(
                    Method::POST,
                    &format!("/api/v1/projects/once/definitions/{workflow}/runs"),
                )
                .header("Idempotency-Key", key)
                .json(&json!({})),
        )
        .await
}

/// A global schedule fires once per fire time, to whichever cluster can take it, while
/// the cluster that took the last fire dies. The proxy's own store is PostgreSQL here
/// (when there is one; CI has), SQLite in the other tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn global_schedule_fires_once_per_fire_time() {
    let pg = shoal_store::testing::fresh_pg().await;
    if pg.is_none() {
        eprintln!("SKIPPED: the proxy on PostgreSQL (no server); its store is SQLite here");
    }
    global_schedule(pg.as_ref().map(|(url, _)| url.clone())).await;
    if let Some((_, name)) = pg {
        shoal_store::testing::drop_pg(&name).await;
    }
}

async fn global_schedule(database: Option<String>) {
    let mut site = Site::start_with(&[("a", "", 1), ("b", "", 1)], "", database).await;
    site.project("cron").await;
    site.apply("cron", &shell("tick", "0")).await;
    let a = site.admin();
    let s = a
        .put(
            "/api/v1/projects/cron/definitions/tick/schedule",
            json!({"cron": "*/2 * * * * ?", "timezone": "UTC"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(s["upcoming"].as_array().unwrap().len(), 5, "{s}");
    // A cluster's own schedule stays its own, and the proxy lists both kinds.
    site.apply("cron", &shell("tock", "0")).await;
    site.cluster("a")
        .put(
            "/api/v1/projects/cron/definitions/tock/schedule",
            json!({"cron": "0 0 3 1 1 ?"}),
        )
        .await
        .expect(200);
    let all = a
        .get("/api/v1/projects/cron/schedules")
        .await
        .expect(200)
        .json();
    let kinds: BTreeSet<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["workflow"].as_str().unwrap().to_owned(),
                v["cluster"].as_str().unwrap_or("global").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("tick", "global"), ("tock", "a")]
            .map(|(w, c)| (w.to_owned(), c.to_owned()))
            .into(),
        "{all}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let page = a
        .get("/api/v1/instances?project=cron&workflow=tick&limit=1")
        .await
        .expect(200)
        .json();
    let victim = page["items"][0]["cluster"].as_str().unwrap().to_owned();
    site.kill(&victim);
    tokio::time::sleep(Duration::from_secs(7)).await;
    site.restart(&victim).await;
    a.post_empty("/api/v1/projects/cron/definitions/tick/schedule/offline")
        .await
        .expect(200);
    site.wait_healthy(&site.names()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times = Vec::new();
    for c in ["a", "b"] {
        let page = site
            .cluster(c)
            .get("/api/v1/instances?project=cron&workflow=tick&limit=1000")
            .await
            .expect(200)
            .json();
        for i in page["items"].as_array().unwrap() {
            times.push(i["schedule_time"].as_i64().unwrap());
        }
    }
    times.sort();
    let distinct: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        times.len(),
        "a fire time ran twice: {times:?}"
    );
    assert!(times.len() >= 5, "{times:?}");
    for w in times.windows(2) {
        assert_eq!(w[1] - w[0], 2000, "a fire time was skipped: {times:?}");
    }
}
