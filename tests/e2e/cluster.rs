//! Distributed mode with real processes: `shoal master` and `shoal worker` on
//! 127.0.0.1 over one fresh PostgreSQL database, killed (SIGKILL), paused past their
//! lease (SIGSTOP) and restarted while a mixed workflow runs. Each test ends with the
//! workflow finished, every task having run exactly once — proved by the recorder's
//! file, which the tasks themselves write to over HTTP — and no task row without a
//! host. Heartbeats are 200 ms and leases 2 s, so a failover takes seconds.

use std::time::Duration;

use serde_json::{Value, json};
use shoal_tests::cluster::{Cluster, LEASE_MS};
use shoal_tests::server::{Client, eventually};

const PROJECT: &str = "default";

/// One cluster at a time: five processes each on a 2-core machine is plenty, and a
/// second cluster's load would stretch heartbeats toward the 2 s lease.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The tags a finished mixed run reports, each exactly once.
const TAGS: [&str; 8] = [
    "slow-a",
    "slow-b",
    "slow-c",
    "etl",
    "grouped",
    "job",
    "child-task",
    "end",
];

/// The tags of run `round` (`r3-slow-a`, ...); round 0 is the plain names.
fn tags(round: usize) -> Vec<String> {
    TAGS.iter().map(|t| tagged(round, t)).collect()
}

fn tagged(round: usize, tag: &str) -> String {
    if round == 0 {
        tag.to_owned()
    } else {
        format!("r{round}-{tag}")
    }
}

async fn setup(c: &Client) {
    c.post("/api/v1/projects", json!({"name": PROJECT}))
        .await
        .expect(201);
    c.send(
        c.request(
            reqwest::Method::PATCH,
            &format!("/api/v1/projects/{PROJECT}/tenancy"),
        )
        .json(&json!({"allow_process": true})),
    )
    .await
    .expect(200);
}

async fn define(c: &Client, yaml: &str) -> String {
    let saved = c.post_yaml(PROJECT, yaml).await.expect(201).json();
    let name = saved["name"].as_str().unwrap().to_owned();
    c.post_empty(&format!(
        "/api/v1/projects/{PROJECT}/definitions/{name}/online"
    ))
    .await
    .expect(200);
    name
}

async fn start(c: &Client, name: &str) -> i64 {
    let l = c
        .post(
            &format!("/api/v1/projects/{PROJECT}/definitions/{name}/runs"),
            json!({}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(l["outcome"], "started", "{l}");
    l["instance"].as_i64().unwrap()
}

/// Shell tasks (three slow ones side by side, one on worker group `etl`, one in task
/// group `tg`), a noop, an external job, a sub-workflow, and a task after all of them.
fn mixed(cluster: &Cluster, slow_s: f64, round: usize) -> (String, String) {
    let child_name = tagged(round, "child");
    let child = format!(
        "workflow:\n  name: {child_name}\ntasks:\n  - name: inner\n    task_type: Shell\n    command: \"{}\"\n",
        cluster.report(&tagged(round, "child-task"), 0.2)
    );
    let shell = |name: &str, extra: &str, secs: f64| {
        format!(
            "  - name: {name}\n    task_type: Shell\n{extra}    command: \"{}\"\n",
            cluster.report(&tagged(round, name), secs)
        )
    };
    let mut parent = format!("workflow:\n  name: {}\ntasks:\n", tagged(round, "mixed"));
    for name in ["slow-a", "slow-b", "slow-c"] {
        parent.push_str(&shell(name, "", slow_s));
    }
    parent.push_str(&shell("etl", "    worker_group: etl\n", 0.5));
    parent.push_str(&shell("grouped", "    task_group: tg\n", 0.5));
    parent.push_str("  - name: quick\n    task_type: noop\n");
    parent.push_str(&format!(
        "  - name: job\n    task_type: testkit\n    mode: external-notify\n    polls: {}\n    url: \"{}/ran/{}\"\n",
        (slow_s * 20.0) as u32 + 10,
        cluster.recorder.base(),
        tagged(round, "job")
    ));
    parent.push_str(&format!(
        "  - name: sub\n    task_type: SubWorkflow\n    workflow_name: {child_name}\n"
    ));
    parent.push_str(&format!(
        "  - name: end\n    task_type: Shell\n    deps: [slow-a, slow-b, slow-c, etl, grouped, quick, job, sub]\n    command: \"{}\"\n",
        cluster.report(&tagged(round, "end"), 0.0)
    ));
    (child, parent)
}

/// A task's log as `master`'s API serves it.
async fn task_log(c: &Cluster, master: &str, task_instance_id: i64) -> String {
    c.api(master)
        .get(&format!("/api/v1/tasks/{task_instance_id}/log"))
        .await
        .expect(200)
        .body
}

/// Two masters and three workers (`w3` alone serves group `etl`), and this test's turn.
async fn cluster() -> Option<(Cluster, tokio::sync::MutexGuard<'static, ()>)> {
    let turn = ONE_AT_A_TIME.lock().await;
    let mut c = Cluster::new().await?;
    c.add_master("m1").await;
    c.add_master("m2").await;
    c.add_worker("w1", &["default"], 8, "tg = 1").await;
    c.add_worker("w2", &["default"], 8, "tg = 1").await;
    c.add_worker("w3", &["default", "etl"], 8, "tg = 1").await;
    setup(&c.api("m1")).await;
    Some((c, turn))
}

async fn define_mixed(c: &Cluster, slow_s: f64) -> String {
    define_round(c, "m1", slow_s, 0).await
}

async fn define_round(c: &Cluster, master: &str, slow_s: f64, round: usize) -> String {
    let api = c.api(master);
    let (child, parent) = mixed(c, slow_s, round);
    define(&api, &child).await;
    define(&api, &parent).await
}

/// Wait (up to `within`) until instance `id` finished, asking whichever master of
/// `masters` answers.
async fn settled(c: &Cluster, masters: &[&str], id: i64, within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        for m in masters {
            if c.nodes[*m].api.is_none() {
                continue;
            }
            let Ok(r) = c.api(m).try_get(&format!("/api/v1/instances/{id}")).await else {
                continue;
            };
            if r.status != 200 {
                continue;
            }
            let d = r.json();
            if ["succeeded", "failed", "stopped", "paused"]
                .contains(&d["state"].as_str().unwrap_or_default())
            {
                return d;
            }
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "instance {id} did not finish within {within:?}:\n{}\n{}",
                c.summary(id).await,
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The end of every scenario: succeeded, each task ran once, every attempt has a host,
/// the `etl` task ran on `w3`.
async fn assert_clean_finish(c: &Cluster, id: i64, detail: &Value) {
    assert_round_finished(c, id, detail, 0).await;
    assert_eq!(
        c.recorder.counts().len(),
        TAGS.len(),
        "{:?}",
        c.recorder.counts()
    );
}

async fn assert_round_finished(c: &Cluster, id: i64, detail: &Value, round: usize) {
    assert_eq!(detail["state"], "succeeded", "{detail:#}\n{}", c.logs());
    let tags = tags(round);
    // The child's end may reach the recorder just after the parent reads it.
    let counts = eventually("every task's report", Duration::from_secs(5), async || {
        let counts = c.recorder.counts();
        tags.iter()
            .all(|t| counts.contains_key(t))
            .then_some(counts)
    })
    .await;
    for tag in &tags {
        assert_eq!(
            counts.get(tag).copied(),
            Some(1),
            "`{tag}` must have run exactly once: {counts:?}\n{:#?}\n{}",
            c.store().await.task_instances(id).await.unwrap(),
            c.logs()
        );
    }
    let store = c.store().await;
    let child = store
        .workflow_instances(&[], 1000, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.parent_task_instance_id.is_some() && w.id > id)
        .map(|w| w.id)
        .unwrap_or(id + 1);
    for instance in [id, child] {
        for t in store.task_instances(instance).await.unwrap() {
            if t.state != "skipped" {
                assert!(
                    t.host.as_deref().is_some_and(|h| !h.is_empty()),
                    "task {} ({}) has no host",
                    t.id,
                    t.task_name
                );
            }
            if t.task_name == "etl" {
                assert_eq!(t.host.as_deref(), Some("w3"), "etl runs on its group");
            }
        }
    }
    let stuck = store.unfinished_instances().await.unwrap();
    assert!(stuck.is_empty(), "instances left unfinished: {stuck:?}");
}

/// Wait until the short tasks (everything but the slow ones, the job and `end`) have
/// succeeded: a node killed after that finds only the slow tasks mid-run. (A task that
/// finished its work but whose end its dead node had not yet reported runs again: no
/// scheduler can tell that apart from one that never finished.)
async fn short_ones_done(c: &Cluster, id: i64) {
    let store = c.store().await;
    let rows = eventually(
        "the short tasks to finish",
        Duration::from_secs(30),
        async || {
            let rows = store.task_instances(id).await.unwrap();
            ["etl", "grouped", "quick", "sub"]
                .iter()
                .all(|name| {
                    rows.iter()
                        .any(|t| t.task_name == *name && t.state == "succeeded")
                })
                .then_some(rows)
        },
    )
    .await;
    let slow = rows.iter().find(|t| t.task_name == "slow-a").unwrap();
    assert_eq!(
        slow.state, "running",
        "the slow tasks must still run: make them slower"
    );
}

/// The node running `task`'s current attempt, once it runs.
async fn host_of(c: &Cluster, id: i64, task: &str) -> String {
    let store = c.store().await;
    eventually(
        &format!("{task} to run"),
        Duration::from_secs(30),
        async || {
            store
                .task_instances(id)
                .await
                .unwrap()
                .into_iter()
                .rev()
                .find(|t| t.task_name == task && t.state == "running")
                .and_then(|t| t.host)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_workload_runs_across_two_masters_and_three_workers() {
    let Some((c, _turn)) = cluster().await else {
        return;
    };
    let name = define_mixed(&c, 0.5).await;
    let id = start(&c.api("m1"), &name).await;
    let detail = settled(&c, &["m1", "m2"], id, Duration::from_secs(60)).await;
    assert_clean_finish(&c, id, &detail).await;
    // Both masters serve the API, and see the same instance and the nodes.
    let other = c
        .api("m2")
        .get(&format!("/api/v1/instances/{id}"))
        .await
        .expect(200)
        .json();
    assert_eq!(other["state"], "succeeded");
    let nodes = c.api("m2").get("/api/v1/nodes").await.expect(200).json();
    let ids: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m1", "m2", "w1", "w2", "w3"]);
    let hosts: std::collections::BTreeSet<String> = c
        .store()
        .await
        .task_instances(id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|t| t.host)
        .collect();
    assert!(hosts.len() >= 3, "tasks spread over the nodes: {hosts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_loses_nothing_and_runs_nothing_twice() {
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    let name = define_mixed(&c, 4.0).await;
    let id = start(&c.api("m1"), &name).await;
    let victim = host_of(&c, id, "slow-a").await;
    short_ones_done(&c, id).await;
    c.kill(&victim);
    let detail = settled(&c, &["m1", "m2"], id, Duration::from_secs(90)).await;
    assert_clean_finish(&c, id, &detail).await;
    let rows = c.store().await.task_instances(id).await.unwrap();
    let failovers: Vec<_> = rows.iter().filter(|t| t.failover).collect();
    assert!(
        failovers.iter().any(|t| t.task_name == "slow-a"),
        "slow-a ran again as a failover attempt: {rows:#?}"
    );
    for t in &failovers {
        assert_ne!(t.host.as_deref(), Some(victim.as_str()));
    }
    // The logs, read through a master once the nodes' disks are gone: what the killed
    // worker shipped, and a line saying the rest is unavailable; a finished task's
    // whole log.
    for node in ["w1", "w2", "w3"] {
        let _ = std::fs::remove_dir_all(c.nodes[node].data.join("logs"));
    }
    let lost = rows
        .iter()
        .find(|t| t.task_name == "slow-a" && t.attempt == 1)
        .unwrap();
    let log = task_log(&c, "m2", lost.id).await;
    assert!(log.contains("start slow-a"), "{log}");
    assert!(!log.contains("done slow-a"), "{log}");
    assert!(
        log.contains(&format!(
            "the rest of this log is unavailable: it was on node {victim}"
        )),
        "{log}"
    );
    let etl = rows.iter().find(|t| t.task_name == "etl").unwrap();
    let log = task_log(&c, "m1", etl.id).await;
    assert!(
        log.contains("start etl") && log.contains("done etl"),
        "{log}"
    );
    assert!(!log.contains("unavailable"), "{log}");
    // A short task's lines, sorted out of its instance's shared log on the worker.
    let quick = rows.iter().find(|t| t.task_name == "quick").unwrap();
    let log = task_log(&c, "m2", quick.id).await;
    assert!(
        log.contains("runs on plugin noop") && log.contains("task succeeded"),
        "{log}"
    );
    assert!(
        !log.contains("unavailable") && !log.contains("slow-a"),
        "only its own lines, all of them: {log}"
    );
    // A logic task ran on the master that owned the instance, and its log was shipped
    // like a worker's: the other master serves all of it once the masters' disks are gone.
    for node in ["m1", "m2"] {
        let _ = std::fs::remove_dir_all(c.nodes[node].data.join("logs"));
    }
    let sub = rows.iter().find(|t| t.task_name == "sub").unwrap();
    let other = match sub.host.as_deref() {
        Some("m1") => "m2",
        Some("m2") => "m1",
        _ => panic!("a logic task runs on a master: {sub:?}"),
    };
    let log = task_log(&c, other, sub.id).await;
    assert!(
        log.contains("runs on plugin") && log.contains("task succeeded"),
        "{log}"
    );
    assert!(!log.contains("unavailable"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owning_master_killed_mid_workflow_is_adopted_and_nothing_reruns() {
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    let name = define_mixed(&c, 4.0).await;
    let id = start(&c.api("m1"), &name).await;
    host_of(&c, id, "slow-a").await;
    short_ones_done(&c, id).await;
    let killed = std::time::Instant::now();
    c.kill("m1");
    let store = c.store().await;
    eventually(
        "m2 to adopt the instance",
        Duration::from_secs(20),
        async || {
            let row = store.workflow_instance(id).await.unwrap().unwrap();
            (row.owner.as_deref() == Some("m2")).then_some(())
        },
    )
    .await;
    let adoption = killed.elapsed();
    assert!(
        adoption < Duration::from_millis(LEASE_MS + 2_000),
        "adopted within the lease plus 2 s: {adoption:?}"
    );
    let detail = settled(&c, &["m2"], id, Duration::from_secs(90)).await;
    assert_clean_finish(&c, id, &detail).await;
    let rows = store.task_instances(id).await.unwrap();
    assert!(
        rows.iter().all(|t| !t.failover && t.attempt == 1),
        "a master's death re-runs nothing: {rows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_paused_past_its_lease_is_fenced_when_it_wakes() {
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    let name = define_mixed(&c, 3.0).await;
    let id = start(&c.api("m1"), &name).await;
    host_of(&c, id, "slow-a").await;
    c.signal("m1", libc::SIGSTOP);
    let store = c.store().await;
    eventually(
        "m2 to adopt the instance",
        Duration::from_secs(20),
        async || {
            let row = store.workflow_instance(id).await.unwrap().unwrap();
            (row.owner.as_deref() == Some("m2")).then_some(())
        },
    )
    .await;
    c.signal("m1", libc::SIGCONT);
    // It learns it lost its lease and stops (a supervisor would restart it as a new
    // generation), whatever it was doing when it was paused.
    let code = eventually("m1 to stop", Duration::from_secs(15), async || {
        c.exited("m1")
    })
    .await;
    assert_eq!(code, Some(3), "{}", c.logs());
    let detail = settled(&c, &["m2"], id, Duration::from_secs(90)).await;
    assert_clean_finish(&c, id, &detail).await;
    // Restarted, it is a new generation of m1.
    c.start("m1").await;
    let m1 = store.node("m1").await.unwrap().unwrap();
    assert!(
        m1.generation >= 3,
        "declared dead (2), then registered again: {m1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_during_a_failover_leaves_it_to_the_next() {
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    c.add_master("m3").await;
    let name = define_mixed(&c, 5.0).await;
    let id = start(&c.api("m1"), &name).await;
    host_of(&c, id, "slow-a").await;
    c.kill("m1");
    let store = c.store().await;
    // Whoever adopts the instance first dies right away, mid-way through running it.
    let first = eventually(
        "a master to adopt the instance",
        Duration::from_secs(20),
        async || {
            let row = store.workflow_instance(id).await.unwrap().unwrap();
            row.owner.filter(|o| o != "m1")
        },
    )
    .await;
    c.kill(&first);
    let last = if first == "m2" { "m3" } else { "m2" };
    let detail = settled(&c, &[last], id, Duration::from_secs(90)).await;
    assert_clean_finish(&c, id, &detail).await;
    let row = store.workflow_instance(id).await.unwrap().unwrap();
    assert_eq!(row.owner.as_deref(), Some(last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_following_an_external_job_is_killed_and_the_job_is_reattached() {
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    let name = define_mixed(&c, 3.0).await;
    let id = start(&c.api("m1"), &name).await;
    let store = c.store().await;
    short_ones_done(&c, id).await;
    let victim = eventually("the job's handle", Duration::from_secs(30), async || {
        store
            .task_instances(id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.task_name == "job" && t.handle.is_some())
            .and_then(|t| t.host)
    })
    .await;
    c.kill(&victim);
    // Followed again elsewhere; then the node comes back (what else it ran, the `etl`
    // task say, may need it: a task waits for a worker of its group).
    eventually(
        "the job to be followed elsewhere",
        Duration::from_secs(30),
        async || {
            store
                .task_instances(id)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.task_name == "job")
                .filter(|t| t.host.as_deref() != Some(victim.as_str()))
                .map(|_| ())
        },
    )
    .await;
    c.start(&victim).await;
    let detail = settled(&c, &["m1", "m2"], id, Duration::from_secs(90)).await;
    assert_clean_finish(&c, id, &detail).await;
    let job: Vec<_> = store
        .task_instances(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.task_name == "job")
        .collect();
    assert_eq!(job.len(), 1, "re-attached, not submitted again: {job:#?}");
    assert_ne!(
        job[0].host.as_deref(),
        Some(victim.as_str()),
        "followed elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_restarted_at_once_finishes_the_workflow() {
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    let name = define_mixed(&c, 6.0).await;
    let id = start(&c.api("m1"), &name).await;
    host_of(&c, id, "slow-a").await;
    short_ones_done(&c, id).await;
    let names: Vec<String> = c.nodes.keys().cloned().collect();
    for n in &names {
        c.kill(n);
    }
    for n in &names {
        c.start(n).await;
    }
    let detail = settled(&c, &["m1", "m2"], id, Duration::from_secs(120)).await;
    assert_clean_finish(&c, id, &detail).await;
}

#[tokio::test]
async fn cluster_nodes_refuse_sqlite_and_a_missing_secret_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], secret: Option<&str>| {
        let mut cmd = std::process::Command::new(shoal_tests::shoal_bin());
        cmd.arg("--data-dir").arg(dir.path()).args(args);
        cmd.env_remove("SHOAL_CLUSTER_SECRET")
            .env_remove("SHOAL_DB");
        if let Some(s) = secret {
            cmd.env("SHOAL_CLUSTER_SECRET", s);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let sqlite = format!("sqlite://{}/x.db", dir.path().display());
    for role in ["master", "worker"] {
        let err = run(
            &["--db", &sqlite, role, "--rpc-listen", "127.0.0.1:0"],
            Some("a-long-enough-cluster-secret"),
        );
        assert!(err.contains("needs PostgreSQL"), "{role}: {err}");
        assert!(err.contains("shoal server"), "{role}: {err}");
        let err = run(
            &[
                "--db",
                "postgres://127.0.0.1:1/x",
                role,
                "--rpc-listen",
                "127.0.0.1:0",
            ],
            None,
        );
        assert!(err.contains("cluster secret"), "{role}: {err}");
    }
}

/// A small xorshift, seeded from the clock (printed, so a failing round can be rerun
/// with `SHOAL_SOAK_SEED`).
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = std::env::var("SHOAL_SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| shoal_store::now_ms() as u64 | 1);
        eprintln!("soak seed {seed}");
        Dice(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() % 10_000) as f64 / 10_000.0 * (hi - lo)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `tests/soak.sh N`: N rounds of the mixed workflow on one cluster, each with one
/// disruption at a random moment while the slow tasks run — SIGKILL of the worker
/// running one, SIGKILL of the owning master, or SIGSTOP of it past its lease — then
/// the node restarted. Every round must finish with each task run exactly once. Prints
/// the time from each master kill to the adoption of its instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak; run it with tests/soak.sh N"]
async fn soak() {
    let rounds: usize = std::env::var("SHOAL_SOAK_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    let mut dice = Dice::new();
    // SHOAL_SOAK_ONLY picks one disruption for every round (to measure one path).
    let only = match std::env::var("SHOAL_SOAK_ONLY").as_deref() {
        Ok("worker-kill") => Some(0),
        Ok("master-kill") => Some(1),
        Ok("master-pause") => Some(2),
        Ok(other) => {
            panic!("SHOAL_SOAK_ONLY: `{other}` is not worker-kill, master-kill or master-pause")
        }
        Err(_) => None,
    };
    let mut adoptions = Vec::new();
    let mut worker_failovers = Vec::new();
    let store = c.store().await;
    for round in 1..=rounds {
        let masters: Vec<&str> = ["m1", "m2"]
            .into_iter()
            .filter(|m| c.nodes[*m].api.is_some())
            .collect();
        let front = masters[dice.below(masters.len() as u64) as usize].to_owned();
        let slow = dice.between(3.0, 5.0);
        let name = define_round(&c, &front, slow, round).await;
        let id = start(&c.api(&front), &name).await;
        let owner = store
            .workflow_instance(id)
            .await
            .unwrap()
            .unwrap()
            .owner
            .unwrap();
        let worker = host_of(&c, id, "slow-a").await;
        short_ones_done(&c, id).await;
        // Somewhere in the slow tasks' sleep, away from its very end.
        tokio::time::sleep(Duration::from_secs_f64(
            dice.between(0.0, slow - 2.0).max(0.0),
        ))
        .await;
        let scenario = match only {
            Some(s) => s,
            None => dice.below(3),
        };
        let (victim, what) = match scenario {
            0 => (worker.clone(), "SIGKILL worker"),
            1 => (owner.clone(), "SIGKILL master"),
            _ => (owner.clone(), "SIGSTOP master"),
        };
        let acted = std::time::Instant::now();
        if scenario == 2 {
            c.signal(&victim, libc::SIGSTOP);
        } else {
            c.kill(&victim);
        }
        if scenario > 0 {
            let taken = eventually("adoption", Duration::from_secs(30), async || {
                let row = store.workflow_instance(id).await.unwrap().unwrap();
                (row.owner.as_deref() != Some(victim.as_str())).then_some(())
            })
            .await;
            let _: () = taken;
            adoptions.push(acted.elapsed());
        } else {
            let rows_before = store.task_instances(id).await.unwrap().len();
            eventually(
                "the failover attempt",
                Duration::from_secs(30),
                async || {
                    let rows = store.task_instances(id).await.unwrap();
                    (rows.len() > rows_before && rows.iter().any(|t| t.failover)).then_some(())
                },
            )
            .await;
            worker_failovers.push(acted.elapsed());
        }
        if scenario == 2 {
            c.signal(&victim, libc::SIGCONT);
            eventually(
                "the paused master to stop",
                Duration::from_secs(15),
                async || c.exited(&victim),
            )
            .await;
        }
        let live: Vec<&str> = ["m1", "m2"]
            .into_iter()
            .filter(|m| *m != victim && c.nodes[*m].api.is_some())
            .collect();
        let detail = settled(&c, &live, id, Duration::from_secs(90)).await;
        assert_round_finished(&c, id, &detail, round).await;
        eprintln!(
            "round {round}/{rounds}: {what} {victim} after the slow tasks started; finished, every task once"
        );
        c.start(&victim).await;
    }
    adoptions.sort();
    worker_failovers.sort();
    eprintln!(
        "soak: {rounds} rounds passed; master kill -> adoption over {} kills: p50 {:?}, p99 {:?} (lease {LEASE_MS} ms); worker kill -> failover attempt over {}: p50 {:?}, p99 {:?}",
        adoptions.len(),
        percentile(&adoptions, 0.5),
        percentile(&adoptions, 0.99),
        worker_failovers.len(),
        percentile(&worker_failovers, 0.5),
        percentile(&worker_failovers, 0.99),
    );
}

async fn upload_testkit(c: &Client, version: &str, caps: &str) -> Value {
    let wasm = std::fs::read(shoal_tests::testkit_wasm()).unwrap();
    let manifest = format!(
        "id = \"testkit\"\nversion = \"{version}\"\nwit = \"0.1.0\"\ncomponent = \"testkit.wasm\"\n\n[capabilities]\n{caps}\n"
    );
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest)
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm).file_name("testkit.wasm"),
        );
    c.send(
        c.request(reqwest::Method::POST, "/api/v1/plugins")
            .multipart(form),
    )
    .await
    .expect(201)
    .json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_hot_loaded_on_one_master_runs_on_every_worker_by_digest() {
    let Some((c, _turn)) = cluster().await else {
        return;
    };
    let caps = format!(
        "work-dir = true\nhttp-hosts = [\"127.0.0.1:{}\"]",
        c.recorder.port
    );
    let installed = upload_testkit(&c.api("m1"), "0.2.0", &caps).await;
    assert_eq!(installed["version"], "0.2.0", "{installed}");
    // Three tasks of the new active version, pinned to it, on three workers' slots.
    let mut yaml = String::from("workflow:\n  name: hot\ntasks:\n");
    for i in 0..6 {
        yaml.push_str(&format!(
            "  - name: t{i}\n    task_type: testkit\n    plugin_version: 0.2.0\n    mode: http\n    url: \"{}/ran/hot-{i}\"\n",
            c.recorder.base()
        ));
    }
    let name = define(&c.api("m2"), &yaml).await;
    let id = start(&c.api("m2"), &name).await;
    let detail = settled(&c, &["m2"], id, Duration::from_secs(60)).await;
    assert_eq!(detail["state"], "succeeded", "{detail:#}\n{}", c.logs());
    let rows = c.store().await.task_instances(id).await.unwrap();
    let mut workers = std::collections::BTreeSet::new();
    for t in &rows {
        assert_eq!(t.plugin_version.as_deref(), Some("0.2.0"), "{t:?}");
        workers.insert(t.host.clone().unwrap());
    }
    for w in &workers {
        assert!(
            c.nodes[w].data.join("plugins/testkit/0.2.0").is_dir(),
            "{w} copied the component from the store"
        );
    }
    let counts = c.recorder.counts();
    for i in 0..6 {
        assert_eq!(counts.get(&format!("hot-{i}")), Some(&1), "{counts:?}");
    }

    // A version whose stored bytes are not what its digest says is never run.
    let store = c.store().await;
    let fake = "0".repeat(64);
    sqlx::query("INSERT INTO plugin_blobs (sha256, bytes, size, created_at) VALUES ($1, $2, 3, 0)")
        .bind(&fake)
        .bind(b"bad".to_vec())
        .execute(store.pool())
        .await
        .unwrap();
    let manifest = store
        .plugin_versions()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.version == "0.2.0")
        .unwrap()
        .manifest
        .replace("0.2.0", "0.3.0");
    store
        .record_plugin_version(&shoal_store::PluginVersionRow {
            plugin_id: "testkit".into(),
            version: "0.3.0".into(),
            sha256: fake,
            manifest,
            installed_at: 0,
        })
        .await
        .unwrap();
    let yaml = format!(
        "workflow:\n  name: tampered\ntasks:\n  - name: t\n    task_type: testkit\n    plugin_version: 0.3.0\n    mode: http\n    url: \"{}/ran/tampered\"\n",
        c.recorder.base()
    );
    let name = define(&c.api("m1"), &yaml).await;
    let id = start(&c.api("m1"), &name).await;
    let detail = settled(&c, &["m1"], id, Duration::from_secs(60)).await;
    assert_eq!(detail["state"], "failed", "{detail:#}");
    assert!(!c.recorder.counts().contains_key("tampered"));
    let logs = c.logs();
    assert!(
        logs.contains("testkit@0.3.0: the stored component's SHA-256 is"),
        "the refusal is logged: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shut_down_cleanly_leaves_the_registry_at_once() {
    let Some((mut c, _turn)) = cluster().await else {
        return;
    };
    let store = c.store().await;
    for name in ["w1", "m2"] {
        let before = store.node(name).await.unwrap().unwrap().generation;
        c.signal(name, libc::SIGTERM);
        let code = eventually(
            &format!("{name} to exit"),
            Duration::from_secs(15),
            async || c.exited(name),
        )
        .await;
        assert_eq!(code, Some(0), "{}", c.logs());
        // Dead right away, not a lease later: its failover need not wait.
        let row = store.node(name).await.unwrap().unwrap();
        assert_eq!(row.state, shoal_store::NodeState::Dead, "{row:?}");
        assert_eq!(row.generation, before + 1);
    }
}

/// Python and SQL tasks on workers: the datasource set through one master reaches the
/// worker that runs the task (password included, over the cluster RPC), the rows land
/// in the real PostgreSQL database, and the OUT parameters come back to the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_sql_tasks_run_on_workers_with_the_projects_datasource() {
    let Some((c, _turn)) = cluster().await else {
        return;
    };
    let Some(scratch) = shoal_datasource::testing::fresh_postgres().await else {
        return;
    };
    let api = c.api("m1");
    let spec = &scratch.spec;
    api.put(
        &format!("/api/v1/projects/{PROJECT}/datasources/warehouse"),
        json!({"type": "postgresql", "host": spec.host, "port": spec.port,
               "database": spec.database, "user": spec.user,
               "password": "sealed-on-m1"}),
    )
    .await
    .expect(201);
    let name = define(
        &api,
        r#"
workflow:
  name: cluster-sql
tasks:
  - name: count
    task_type: Python
    definition: print("${setValue(n=%d)}" % (6 * 7))
    output_params: {n: INTEGER()}
  - name: fill
    task_type: Sql
    deps: [count]
    datasource_name: warehouse
    sql_type: "1"
    sql: CREATE TABLE answers (n INTEGER); INSERT INTO answers VALUES (${n}), (1)
  - name: read
    task_type: Sql
    deps: [fill]
    datasource_name: warehouse
    sql: SELECT n FROM answers ORDER BY n DESC
    local_params:
      - {prop: n, direct: OUT, type: LIST, value: ""}
"#,
    )
    .await;
    let id = start(&api, &name).await;
    let detail = settled(&c, &["m1", "m2"], id, Duration::from_secs(60)).await;
    assert_eq!(detail["state"], "succeeded", "{detail:#}\n{}", c.logs());
    let tasks = c.store().await.task_instances(id).await.unwrap();
    for t in &tasks {
        let host = t.host.as_deref().unwrap_or_default();
        assert!(
            host.starts_with('w'),
            "{} ran on {host}, not a worker",
            t.task_name
        );
    }
    let read = tasks.iter().find(|t| t.task_name == "read").unwrap();
    assert_eq!(read.out_params["n"], r#"["42","1"]"#, "{read:?}");
    let log = task_log(&c, "m1", read.id).await;
    assert!(log.contains("| 42 |"), "{log}");
    assert!(
        !c.logs().contains("sealed-on-m1"),
        "the password is in a node's log"
    );
    scratch.drop_database().await;
}
