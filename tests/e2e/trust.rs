//! The trust boundary of `shoal server`, tried as a new plain user would: a `user`
//! account that made its own project uploads definitions and runs Shell tasks meant to
//! read the host. Every attempt fails with a clear error and the server keeps serving,
//! on a real server process over SQLite and over a fresh PostgreSQL database.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use shoal_tests::server::{Client, Server, on_both_databases};

const ADMIN: &str = "shoal-admin-token-for-trust-tests";

async fn patch(c: &Client, path: &str, body: Value) -> shoal_tests::server::Reply {
    c.send(c.request(Method::PATCH, path).json(&body)).await
}

/// A plain user with a token, owning project `mine`.
async fn plain_user(s: &Server) -> Client {
    s.post("/api/v1/users", json!({"name": "mallory", "role": "user"}))
        .await
        .expect(201);
    let t = s
        .post("/api/v1/users/mallory/tokens", json!({}))
        .await
        .expect(201)
        .json();
    let user = s.client(Some(t["token"].as_str().unwrap()));
    user.post("/api/v1/projects", json!({"name": "mine"}))
        .await
        .expect(201);
    user
}

async fn run_to_end(c: &Client, yaml: &str) -> Value {
    let saved = c.post_yaml("mine", yaml).await.expect(201).json();
    let name = saved["name"].as_str().unwrap().to_owned();
    c.post_empty(&format!("/api/v1/projects/mine/definitions/{name}/online"))
        .await
        .expect(200);
    let l = c
        .post(
            &format!("/api/v1/projects/mine/definitions/{name}/runs"),
            json!({}),
        )
        .await
        .expect(201)
        .json();
    let id = l["instance"].as_i64().unwrap();
    // Generous: the output flood below pushes 400 MB through the task's bounded log,
    // ~40 s alone on a slow day here, and the suite runs other tests beside it.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let d = c
            .get(&format!("/api/v1/instances/{id}"))
            .await
            .expect(200)
            .json();
        if ["succeeded", "failed", "stopped"].contains(&d["state"].as_str().unwrap()) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "instance {id} never finished: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn only_task(d: &Value) -> &Value {
    &d["tasks"].as_array().unwrap()[0]
}

async fn task_log(c: &Client, d: &Value) -> String {
    let id = only_task(d)["id"].as_i64().unwrap();
    c.get(&format!("/api/v1/tasks/{id}/log"))
        .await
        .expect(200)
        .body
}

fn server_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_cannot_reach_the_host() {
    on_both_databases(async |data, db| {
        let s = Server::start(data.path(), db.as_deref(), ADMIN).await;
        let user = plain_user(&s).await;
        let key_path = data.path().canonicalize().unwrap().join("secret.key");
        let key = std::fs::read(&key_path).expect("the server made its secret key");

        // 1. Uploads never read the host: $FILE, $ENV and $WORKFLOW are refused.
        for (reference, field) in [
            (format!("$FILE{{\"{}\"}}", key_path.display()), "workflow.param.k"),
            ("$ENV{SHOAL_ADMIN_TOKEN}".to_owned(), "workflow.param.k"),
            ("$WORKFLOW{\"../../etc/passwd\"}".to_owned(), "workflow.param.k"),
        ] {
            let yaml = format!(
                "workflow:\n  name: steal\n  param:\n    k: {reference}\ntasks:\n  - name: t\n    task_type: Noop\n"
            );
            let m = user.post_yaml("mine", &yaml).await.error(400, "bad-request");
            assert!(m.contains(":4:") && m.contains(field), "{m}");
            assert!(!m.contains(ADMIN), "{m}");
        }
        let defs = user.get("/api/v1/projects/mine/definitions").await.expect(200).json();
        assert_eq!(defs.as_array().unwrap().len(), 0, "nothing was stored: {defs}");

        // 2. A project may not run Shell until an admin says so, and only an admin can.
        let yaml = "workflow:\n  name: hello\ntasks:\n  - name: t\n    task_type: Shell\n    command: echo hi\n";
        user.post_yaml("mine", yaml).await.expect(201);
        user.post_empty("/api/v1/projects/mine/definitions/hello/online")
            .await
            .expect(200);
        let m = user
            .post("/api/v1/projects/mine/definitions/hello/runs", json!({}))
            .await
            .error(422, "invalid-definition");
        assert!(m.contains("allow-process") && m.contains("task `t`"), "{m}");
        patch(&user, "/api/v1/projects/mine/tenancy", json!({"allow_process": true}))
            .await
            .error(403, "forbidden");
        let p = patch(&s, "/api/v1/projects/mine/tenancy", json!({"allow_process": true}))
            .await
            .expect(200)
            .json();
        assert_eq!(p["allow_process"], true);
        patch(&s, "/api/v1/projects/mine/tenancy", json!({"tenant": "root"}))
            .await
            .error(400, "bad-request");

        // 3. Shell tasks see their work dir, not the data dir.
        let data_dir = data.path().canonicalize().unwrap();
        let script = format!(
            "cat {k} || echo NO-KEY\ncat ../../secret.key || echo NO-REL-KEY\ncp /dev/null {d}/shoal.db || echo NO-DB\nls {d}/cache || echo NO-CACHE\nid -u",
            k = key_path.display(),
            d = data_dir.display()
        );
        let yaml = format!(
            "workflow:\n  name: snoop\ntasks:\n  - name: t\n    task_type: Shell\n    command: |\n{}\n",
            script.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
        );
        let d = run_to_end(&user, &yaml).await;
        assert_eq!(d["state"], "succeeded", "{d}");
        let log = task_log(&user, &d).await;
        for marker in ["NO-KEY", "NO-REL-KEY", "NO-DB", "NO-CACHE"] {
            assert!(log.contains(marker), "{marker}:\n{log}");
        }
        assert_eq!(std::fs::read(&key_path).unwrap(), key, "the key is untouched");
        // The data dir is private to the server, and a succeeded task's work dir is gone.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "data dir mode {mode:o}");
        let task_id = only_task(&d)["id"].as_i64().unwrap();
        assert!(!data_dir.join("work").join(task_id.to_string()).exists());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert!(!log.contains("[out] 0\n"), "tasks never run as root:\n{log}");
        }

        // 4. An endless line and an output flood cost the server a bounded amount.
        let before = server_rss_kib(s.pid);
        let yaml = "workflow:\n  name: flood\ntasks:\n  - name: t\n    task_type: Shell\n    command: \"yes | tr -d '\\\\n' | head -c 300000000; yes | head -c 100000000 >&2; echo done\"\n";
        let d = run_to_end(&user, yaml).await;
        assert_eq!(d["state"], "succeeded", "{d}");
        let grown = server_rss_kib(s.pid).saturating_sub(before);
        assert!(grown < 150 * 1024, "the server grew by {grown} KiB");
        // The log is read a bounded piece at a time.
        let id = only_task(&d)["id"].as_i64().unwrap();
        let r = user
            .get(&format!("/api/v1/tasks/{id}/log?offset=0&limit=4096"))
            .await
            .expect(200);
        assert!(r.body.len() <= 4096, "{}", r.body.len());
        let next: u64 = r.headers["x-log-next-offset"].to_str().unwrap().parse().unwrap();
        assert!(next > 0 && next <= 4096);
        let r2 = user
            .get(&format!("/api/v1/tasks/{id}/log?offset={next}&limit=4096"))
            .await
            .expect(200);
        assert_ne!(r.body, r2.body);

        // A fork bomb and a flood of OUT parameters fail their own tasks; a task running
        // beside them finishes.
        // SAFETY: geteuid has no preconditions.
        let as_root = unsafe { libc::geteuid() } == 0;
        let bomb = if as_root {
            "b() { b | b & }; b; sleep 3"
        } else {
            // Without root there is no per-task process bound to lean on: skip the bomb.
            "true"
        };
        let yaml = format!(
            "workflow:\n  name: hostile\n  failure_strategy: continue\ntasks:\n  - name: bomb\n    task_type: Shell\n    shell: sh\n    timeout: 10s\n    command: \"{bomb}\"\n  - name: outs\n    task_type: Shell\n    command: \"for i in $(seq 1 5000); do echo \\\"\\\\${{setValue(k$i=$i)}}\\\"; done\"\n  - name: calm\n    task_type: Shell\n    command: sleep 1; echo calm\n"
        );
        let d = run_to_end(&user, &yaml).await;
        let by_name = |n: &str| {
            d["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["task_name"] == n)
                .cloned()
                .unwrap_or_else(|| panic!("no task {n}: {d}"))
        };
        assert_eq!(by_name("calm")["state"], "succeeded", "{d}");
        let outs = by_name("outs");
        assert_eq!(outs["state"], "failed", "{d}");
        assert!(
            outs["message"].as_str().unwrap().contains("OUT parameters"),
            "{outs}"
        );
        if as_root {
            // The bomb hit its task's process cap (and died with its task), nothing more.
            let id = by_name("bomb")["id"].as_i64().unwrap();
            let log = user.get(&format!("/api/v1/tasks/{id}/log")).await.expect(200).body;
            assert!(log.contains("at most 256 processes"), "{log}");
            assert!(log.contains("fork"), "{log}");
        }
        s.anonymous().get("/api/v1/health").await.expect(200);

        // 5. A secret stays masked wherever a task's results go: its message, its OUT
        // parameters, a child run's startup parameters.
        let secret = "multi-line\nsecret-value-0123456789";
        user.put("/api/v1/projects/mine/secrets/token", json!({"value": secret}))
            .await
            .expect(204);
        user.post_yaml(
            "mine",
            "workflow:\n  name: child\ntasks:\n  - name: c\n    task_type: Noop\n",
        )
        .await
        .expect(201);
        user.post_empty("/api/v1/projects/mine/definitions/child/online")
            .await
            .expect(200);
        let yaml = "workflow:\n  name: leaky\ntasks:\n  - name: out\n    task_type: Shell\n    command: |\n      echo \"${secret.token}\"\n      echo \"\\${setValue(copy=${secret.token})}\"\n  - name: sub\n    task_type: SubWorkflow\n    deps: [out]\n    workflow_name: child\n    params:\n      passed: \"${secret.token}\"\n";
        let d = run_to_end(&user, yaml).await;
        let text = d.to_string();
        assert!(!text.contains("secret-value-0123456789"), "{d}");
        assert_eq!(d["state"], "succeeded", "{d}");
        for t in d["tasks"].as_array().unwrap() {
            let id = t["id"].as_i64().unwrap();
            let log = user.get(&format!("/api/v1/tasks/{id}/log")).await.expect(200).body;
            assert!(!log.contains("secret-value-0123456789"), "{log}");
        }
        let children = user
            .get("/api/v1/instances?project=mine&workflow=child")
            .await
            .expect(200)
            .json();
        let child = children["items"][0]["id"].as_i64().expect("a child run");
        let detail = user
            .get(&format!("/api/v1/instances/{child}"))
            .await
            .expect(200)
            .body;
        assert!(detail.contains("passed"), "{detail}");
        assert!(!detail.contains("secret-value-0123456789"), "{detail}");

        // 6. The server still serves, and still runs other work.
        s.anonymous().get("/api/v1/health").await.expect(200);
        let d = run_to_end(&user, "workflow:\n  name: after\ntasks:\n  - name: t\n    task_type: Shell\n    command: echo fine\n").await;
        assert_eq!(d["state"], "succeeded", "{d}");
    })
    .await;
}
