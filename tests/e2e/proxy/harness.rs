//! Clusters (each a real `shoal server` with its own SQLite data dir and fixed port)
//! behind a real `shoal proxy` process, all on 127.0.0.1.

use super::*;

pub(crate) const CLUSTER_TOKEN: &str = "cluster-admin-token-for-proxy-tests";
pub(crate) const PROXY_ADMIN: &str = "proxy-admin-token-for-tests";
/// The proxy's health interval in these tests.
pub(crate) const HEALTH_MS: u64 = 500;

/// One cluster of a site.
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) labels: String,
    pub(crate) weight: u32,
    pub(crate) server: Option<Server>,
}

/// Clusters and the proxy in front of them.
pub(crate) struct Site {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) members: Vec<Member>,
    pub(crate) proxy: Option<ProxyProcess>,
    pub(crate) config: PathBuf,
    /// The proxy's own store when it is PostgreSQL (else SQLite in its data dir).
    pub(crate) database: Option<String>,
}

/// A `shoal proxy` child process.
pub(crate) struct ProxyProcess {
    child: Child,
    pub(crate) url: String,
    log: PathBuf,
}

impl ProxyProcess {
    pub(crate) async fn start(config: &Path, log: &Path) -> ProxyProcess {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let start = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) as usize;
        let child = Command::new(shoal_bin())
            .args(["proxy", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting shoal proxy");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(line) = text[start.min(text.len())..]
                .lines()
                .find(|l| l.starts_with("shoal proxy listening on "))
            {
                break line
                    .trim_start_matches("shoal proxy listening on ")
                    .to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "shoal proxy did not start:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ProxyProcess {
            child,
            url,
            log: log.to_owned(),
        }
    }

    pub(crate) fn client(&self, token: &str) -> Client {
        Client::new(&self.url, Some(token))
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would end it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = log
                .chars()
                .skip(log.chars().count().saturating_sub(12_000))
                .collect();
            eprintln!("---- shoal proxy log ----\n{tail}");
        }
    }
}

impl Site {
    /// Start `clusters` (name, labels as TOML inline-table body, weight) and a proxy
    /// with `routes` (TOML `[[routes]]` tables).
    pub(crate) async fn start(clusters: &[(&str, &str, u32)], routes: &str) -> Site {
        Self::start_with(clusters, routes, None).await
    }

    /// [`Site::start`] with the proxy's store at `database` (a PostgreSQL URL).
    pub(crate) async fn start_with(
        clusters: &[(&str, &str, u32)],
        routes: &str,
        database: Option<String>,
    ) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let mut members = Vec::new();
        let starts = clusters.iter().map(|(name, labels, weight)| {
            let data = dir.path().join(name);
            let port = free_port();
            async move {
                let server = Server::start_on(&data, None, CLUSTER_TOKEN, port).await;
                (name.to_string(), port, labels.to_string(), *weight, server)
            }
        });
        for (name, port, labels, weight, server) in futures_util::future::join_all(starts).await {
            members.push(Member {
                name,
                port,
                labels,
                weight,
                server: Some(server),
            });
        }
        let config = dir.path().join("proxy.toml");
        let mut site = Site {
            dir,
            members,
            proxy: None,
            config,
            database,
        };
        site.write_config(routes);
        site.proxy =
            Some(ProxyProcess::start(&site.config, &site.dir.path().join("proxy.log")).await);
        site.wait_healthy(&site.names()).await;
        site
    }

    fn write_config(&self, routes: &str) {
        let mut toml = format!(
            "port = {}\nadmin-token = \"{PROXY_ADMIN}\"\nhealth-interval-ms = {HEALTH_MS}\ncluster-timeout-ms = 1000\nforward-timeout-ms = 1000\n",
            free_port()
        );
        if let Some(url) = &self.database {
            toml.push_str(&format!("database = \"{url}\"\n"));
        }
        for m in &self.members {
            let sealed = seal(&self.config, &m.name, CLUSTER_TOKEN);
            toml.push_str(&format!(
                "\n[[clusters]]\nname = \"{}\"\nurl = \"http://127.0.0.1:{}\"\ntoken = \"{sealed}\"\nlabels = {{ {} }}\nweight = {}\n",
                m.name, m.port, m.labels, m.weight
            ));
        }
        toml.push('\n');
        toml.push_str(routes);
        std::fs::write(&self.config, toml).unwrap();
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    pub(crate) fn proxy(&self) -> &ProxyProcess {
        self.proxy.as_ref().expect("the proxy runs")
    }

    /// The proxy as its admin.
    pub(crate) fn admin(&self) -> Client {
        self.proxy().client(PROXY_ADMIN)
    }

    pub(crate) fn member(&mut self, name: &str) -> &mut Member {
        self.members.iter_mut().find(|m| m.name == name).unwrap()
    }

    /// A cluster's own API, as its admin.
    pub(crate) fn cluster(&self, name: &str) -> &Server {
        self.members
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.server.as_ref())
            .unwrap_or_else(|| panic!("cluster {name} is not running"))
    }

    pub(crate) fn kill(&mut self, name: &str) {
        self.member(name).server.take().expect("running").kill();
    }

    /// Start a killed cluster again on its data dir and port.
    pub(crate) async fn restart(&mut self, name: &str) {
        let data = self.dir.path().join(name);
        let port = self.member(name).port;
        let server = Server::start_on(&data, None, CLUSTER_TOKEN, port).await;
        self.member(name).server = Some(server);
    }

    pub(crate) async fn restart_proxy(&mut self) {
        if let Some(mut p) = self.proxy.take() {
            p.kill();
        }
        self.proxy =
            Some(ProxyProcess::start(&self.config, &self.dir.path().join("proxy.log")).await);
    }

    pub(crate) async fn health(&self) -> BTreeMap<String, String> {
        let list = self
            .admin()
            .get("/api/v1/clusters")
            .await
            .expect(200)
            .json();
        list["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["health"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Wait until every one of `names` is reachable from the proxy.
    pub(crate) async fn wait_healthy(&self, names: &[String]) {
        eventually(
            "clusters to be healthy",
            Duration::from_secs(30),
            async || {
                let h = self.health().await;
                names
                    .iter()
                    .all(|n| h.get(n).is_some_and(|s| s != "unreachable"))
                    .then_some(())
            },
        )
        .await;
    }

    /// Create `project` through the proxy and let it run process task types.
    pub(crate) async fn project(&self, project: &str) {
        let a = self.admin();
        a.post("/api/v1/projects", json!({"name": project}))
            .await
            .expect(201);
        a.send(
            a.request(
                Method::PATCH,
                &format!("/api/v1/projects/{project}/tenancy"),
            )
            .json(&json!({"allow_process": true})),
        )
        .await
        .expect(200);
    }

    /// Apply `yaml` through the proxy and put it online; returns the copy warnings.
    pub(crate) async fn apply(&self, project: &str, yaml: &str) -> Vec<String> {
        let a = self.admin();
        let saved = a.post_yaml(project, yaml).await.json();
        let name = saved["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{saved}"))
            .to_owned();
        a.post_empty(&format!(
            "/api/v1/projects/{project}/definitions/{name}/online"
        ))
        .await
        .expect(200);
        saved["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect()
    }

    /// Start a run through the proxy (`query` like `?cluster=b`); the launch reply.
    pub(crate) async fn run(&self, project: &str, workflow: &str, query: &str) -> Reply {
        self.admin()
            .post(
                &format!("/api/v1/projects/{project}/definitions/{workflow}/runs{query}"),
                json!({}),
            )
            .await
    }

    /// The cluster a placed run landed on (waiting for an accepted one to be placed).
    pub(crate) async fn landed(&self, reply: &Value) -> (String, i64) {
        if let (Some(c), Some(i)) = (reply["cluster"].as_str(), reply["instance"].as_i64()) {
            return (c.to_owned(), i);
        }
        let key = reply["run"]
            .as_str()
            .unwrap_or_else(|| panic!("{reply}"))
            .to_owned();
        eventually(
            &format!("run {key} to be placed"),
            Duration::from_secs(30),
            async || {
                let r = self
                    .admin()
                    .get(&format!("/api/v1/proxy-runs/{key}"))
                    .await
                    .expect(200)
                    .json();
                (r["state"] == "placed").then(|| {
                    (
                        r["cluster"].as_str().unwrap().to_owned(),
                        r["instance"].as_i64().unwrap(),
                    )
                })
            },
        )
        .await
    }

    /// How many instances of `workflow` a cluster holds, asked directly.
    pub(crate) async fn count_on(&self, cluster: &str, project: &str, workflow: &str) -> usize {
        let page = self
            .cluster(cluster)
            .get(&format!(
                "/api/v1/instances?project={project}&workflow={workflow}&limit=1000"
            ))
            .await;
        if page.status == 404 {
            return 0;
        }
        page.expect(200).json()["items"].as_array().unwrap().len()
    }
}

/// `shoal proxy seal-token`, as an operator would run it.
fn seal(config: &Path, cluster: &str, token: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(shoal_bin())
        .args(["proxy", "--config"])
        .arg(config)
        .args(["seal-token", "--cluster", cluster])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sealed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        sealed.starts_with("sealed:") && !sealed.contains(token),
        "{sealed}"
    );
    sealed
}

/// A one-task Shell workflow named `name` that echoes and sleeps `secs`.
pub(crate) fn shell(name: &str, secs: &str) -> String {
    format!(
        "workflow:\n  name: {name}\ntasks:\n  - name: t\n    task_type: Shell\n    command: echo ran {name} && sleep {secs}\n"
    )
}
