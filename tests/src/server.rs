//! A real `shoal server` process for the API tests: started on a free port of 127.0.0.1
//! over a data dir (and optionally a PostgreSQL database), spoken to over HTTP, stopped
//! with SIGTERM. Plus the listeners the alert tests need: a webhook receiver and a small
//! SMTP server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::shoal_bin;

/// How long a server gets to come up (the first start compiles the built-in plugins).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Run `test` with a fresh data dir over SQLite (no URL), then with another and a fresh
/// PostgreSQL database (its URL; skipped without a server, except under CI=true, as
/// `fresh_pg` decides). The database is dropped afterwards.
pub async fn on_both_databases<F, Fut>(test: F)
where
    F: Fn(tempfile::TempDir, Option<String>) -> Fut,
    Fut: Future<Output = ()>,
{
    test(tempfile::tempdir().unwrap(), None).await;
    if let Some((url, name)) = shoal_store::testing::fresh_pg().await {
        test(tempfile::tempdir().unwrap(), Some(url)).await;
        shoal_store::testing::drop_pg(&name).await;
    }
}

/// Poll `probe` until it returns Some, or panic after `within`.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The states an instance ends in.
pub const FINISHED: [&str; 4] = ["succeeded", "failed", "stopped", "paused"];

/// An instance's detail as the API gives it.
pub async fn instance(c: &Client, id: i64) -> Value {
    c.get(&format!("/api/v1/instances/{id}"))
        .await
        .expect(200)
        .json()
}

/// Wait (up to a minute) until instance `id` is in one of `states`; its detail.
pub async fn wait_state(c: &Client, id: i64, states: &[&str]) -> Value {
    eventually(
        &format!("instance {id} to be {states:?}"),
        Duration::from_secs(60),
        async || {
            let d = instance(c, id).await;
            states
                .contains(&d["state"].as_str().unwrap_or_default())
                .then_some(d)
        },
    )
    .await
}

/// Wait until instance `id` has finished; its detail.
pub async fn settle(c: &Client, id: i64) -> Value {
    wait_state(c, id, &FINISHED).await
}

/// One `shoal server` process.
pub struct Server {
    pub data: PathBuf,
    pub db: Option<String>,
    pub url: String,
    pub pid: u32,
    /// A client holding the admin token.
    pub admin: Client,
    child: Option<Child>,
}

impl Server {
    /// Start `shoal --data-dir DATA [--db DB] server --port 0` with `SHOAL_ADMIN_TOKEN`
    /// and wait until it answers `/health`. A `server.toml` in `data` configures it.
    pub async fn start(data: &Path, db: Option<&str>, admin_token: &str) -> Server {
        Self::start_on(data, db, admin_token, 0).await
    }

    /// [`Server::start`] on a given port (0: any free one), so a restart keeps its URL.
    pub async fn start_on(data: &Path, db: Option<&str>, admin_token: &str, port: u16) -> Server {
        std::fs::create_dir_all(data).unwrap();
        let info = data.join("server.json");
        let _ = std::fs::remove_file(&info);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))
            .unwrap();
        let mut cmd = Command::new(shoal_bin());
        cmd.arg("--data-dir").arg(data);
        if let Some(db) = db {
            cmd.arg("--db").arg(db);
        }
        cmd.args(["server", "--port", &port.to_string()])
            .env("SHOAL_ADMIN_TOKEN", admin_token)
            .env("SHOAL_POLL_MS", "50")
            .env_remove("SHOAL_CONFIG")
            .env_remove("SHOAL_PORT")
            .env_remove("SHOAL_BIND")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd.spawn().expect("starting shoal server");
        let pid = child.id();
        let deadline = Instant::now() + START_DEADLINE;
        let url = loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "shoal server exited during start-up ({status}):\n{}",
                    read_log(data)
                );
            }
            if let Ok(text) = std::fs::read_to_string(&info)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && v["pid"].as_u64() == Some(pid as u64)
            {
                break v["url"].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "shoal server did not write server.json in time:\n{}",
                read_log(data)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let admin = Client::new(&url, Some(admin_token));
        let server = Server {
            data: data.to_path_buf(),
            db: db.map(str::to_owned),
            url,
            pid,
            admin,
            child: Some(child),
        };
        loop {
            if let Ok(r) = server.anonymous().try_get("/api/v1/health").await
                && r.status == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "shoal server never answered /health:\n{}",
                read_log(data)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// A client with `token` (None: no Authorization header).
    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.url, token)
    }

    pub fn anonymous(&self) -> Client {
        self.client(None)
    }

    /// The server's stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.data)
    }

    /// SIGKILL the server, as a crash would end it, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Send `sig` to the server (SIGSTOP and SIGCONT freeze and thaw it).
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid, sig);
    }

    /// SIGTERM, then wait up to `within` for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "shoal server did not exit within {within:?} of SIGTERM:\n{}",
                    read_log(&self.data)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl std::ops::Deref for Server {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.admin
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::thread::panicking() {
            eprintln!(
                "---- shoal server log ({}) ----\n{}",
                self.data.display(),
                tail(&read_log(&self.data), 12_000)
            );
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child we started and have not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

fn read_log(data: &Path) -> String {
    std::fs::read_to_string(data.join("server.log")).unwrap_or_default()
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// An HTTP client of one server, with or without a token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {} answered {} with a body that is not JSON ({e}): {}",
                self.method, self.path, self.status, self.body
            )
        })
    }

    /// Panic unless the status is `status`; returns self for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "{} {} answered {} (wanted {status}): {}",
            self.method, self.path, self.status, self.body
        );
        self
    }

    /// Panic unless this is an error reply with `status` and JSON `{code, message}`
    /// carrying `code`; returns the message.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(
            self.status, status,
            "{} {} answered {} (wanted {status} {code}): {}",
            self.method, self.path, self.status, self.body
        );
        assert!(
            self.content_type.starts_with("application/json"),
            "{} {}: an error must be JSON, got `{}`: {}",
            self.method,
            self.path,
            self.content_type,
            self.body
        );
        let v = self.json();
        assert_eq!(
            v["code"], code,
            "{} {}: {}",
            self.method, self.path, self.body
        );
        let message = v["message"].as_str().unwrap_or_else(|| {
            panic!(
                "{} {}: error without a message: {}",
                self.method, self.path, self.body
            )
        });
        assert!(!message.is_empty());
        message.to_owned()
    }
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (under the server's URL), with the token if any.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        let request = builder.build().expect("a well-formed request");
        let method = request.method().to_string();
        let path = request.url().path().to_owned()
            + &request
                .url()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
        let response = self
            .http
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Reply {
            method,
            path,
            status,
            content_type,
            headers,
            body,
        }
    }

    pub async fn try_get(&self, path: &str) -> reqwest::Result<Reply> {
        let r = self.request(reqwest::Method::GET, path).send().await?;
        Ok(Reply {
            method: "GET".into(),
            path: path.into(),
            status: r.status().as_u16(),
            content_type: String::new(),
            headers: r.headers().clone(),
            body: r.text().await?,
        })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    /// POST without a body.
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::POST, path)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(reqwest::Method::PUT, path).json(&body))
            .await
    }

    /// `body` sent as-is with `content_type`.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        self.send(
            self.request(method, path)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// POST a workflow definition as YAML to `project`.
    pub async fn post_yaml(&self, project: &str, yaml: &str) -> Reply {
        self.send_raw(
            reqwest::Method::POST,
            &format!("/api/v1/projects/{project}/definitions"),
            "application/yaml",
            yaml.to_owned(),
        )
        .await
    }
}

// ---- alert listeners ----

/// What a webhook receiver got: the path and the JSON body.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    pub body: Value,
}

/// An HTTP server on 127.0.0.1 that records every POSTed JSON body.
pub async fn webhook_receiver() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Hook>) {
    use axum::extract::State;
    let (tx, rx) = mpsc::unbounded_channel();
    async fn record(
        State(tx): State<mpsc::UnboundedSender<Hook>>,
        uri: axum::http::Uri,
        body: String,
    ) -> &'static str {
        let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
        let _ = tx.send(Hook {
            path: uri.path().to_owned(),
            body,
        });
        "ok"
    }
    let app = axum::Router::new()
        .fallback(axum::routing::post(record))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rx)
}

/// One mail as an SMTP server received it.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A small SMTP server on 127.0.0.1: accepts every connection and every mail, and hands
/// each mail on. Enough of RFC 5321 for a client that sends plain mail without TLS.
pub async fn smtp_receiver() -> (u16, mpsc::UnboundedReceiver<Mail>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = smtp_session(stream, tx).await;
            });
        }
    });
    (port, rx)
}

async fn smtp_session(
    stream: tokio::net::TcpStream,
    tx: mpsc::UnboundedSender<Mail>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 127.0.0.1 ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let address = || {
            command
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(a, _)| a.to_owned())
                .unwrap_or_default()
        };
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-127.0.0.1\r\n250 8BITMIME\r\n",
            "HELO" | "RSET" | "NOOP" => b"250 OK\r\n",
            "MAIL" => {
                mail = Mail {
                    from: address(),
                    ..Mail::default()
                };
                b"250 OK\r\n"
            }
            "RCPT" => {
                mail.to.push(address());
                b"250 OK\r\n"
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                loop {
                    line.clear();
                    if read.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    mail.data.push_str(unstuffed);
                }
                let _ = tx.send(std::mem::take(&mut mail));
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}
