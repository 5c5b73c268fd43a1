//! Deliveries against real listeners on 127.0.0.1: an axum server for the webhook and Slack
//! channels, and a small SMTP server written here for email.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use shoal_alert::{
    Alert, AlertChannel, AlertDispatcher, AlertError, AlertKind, AlertStats, ChannelConfig,
    RetryPolicy, WebhookHosts, deliver_allowing,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The listeners here are on 127.0.0.1, which webhooks reach only when it is listed.
fn loopback() -> WebhookHosts {
    WebhookHosts::parse(&["127.0.0.1".into()]).unwrap()
}

async fn deliver(
    config: &ChannelConfig,
    alert: &Alert,
    timeout: Duration,
) -> Result<(), AlertError> {
    deliver_allowing(config, alert, timeout, &loopback()).await
}

fn alert(kind: AlertKind) -> Alert {
    Alert {
        kind,
        project: "etl".into(),
        workflow: "daily".into(),
        instance_id: 12,
        task: Some("extract".into()),
        message: "exit code 3".into(),
        at_ms: 1_714_557_600_000,
    }
}

fn channel(name: &str, config: ChannelConfig) -> AlertChannel {
    AlertChannel {
        name: name.into(),
        config,
        events: vec![],
    }
}

fn webhook(addr: SocketAddr, path: &str) -> ChannelConfig {
    ChannelConfig::Webhook {
        url: format!("http://{addr}{path}"),
        headers: BTreeMap::new(),
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A request as the test server saw it.
#[derive(Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A server that answers every POST with 200 and hands each request to the test.
async fn recording_server() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    async fn record(
        State(sink): State<mpsc::UnboundedSender<Received>>,
        uri: Uri,
        headers: HeaderMap,
        body: String,
    ) -> StatusCode {
        let path = uri.path().to_string();
        sink.send(Received {
            path,
            headers,
            body,
        })
        .unwrap();
        StatusCode::OK
    }
    let (sink, received) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/{*path}", post(record))
        .with_state(sink);
    (serve(router).await, received)
}

/// A server that answers the first `failures` requests with `status`, later ones with 200,
/// and counts them all.
async fn flaky_server(status: StatusCode, failures: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let router = Router::new().route(
        "/hook",
        post(move || {
            let counter = Arc::clone(&counter);
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < failures {
                    (status, "try later")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        }),
    );
    (serve(router).await, hits)
}

/// An address where nothing listens: bound, then released.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn quick_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        timeout: TIMEOUT,
    }
}

async fn wait_for_outcomes(dispatcher: &AlertDispatcher, outcomes: u64) -> AlertStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = dispatcher.stats();
        if stats.delivered + stats.failed >= outcomes {
            return stats;
        }
        assert!(Instant::now() < deadline, "no outcome in time: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn shut_down(dispatcher: AlertDispatcher, task: JoinHandle<()>) {
    drop(dispatcher);
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the dispatcher did not stop after its last handle was dropped")
        .unwrap();
}

// ---- webhook and Slack ----

#[tokio::test]
async fn webhook_posts_the_alert_as_json_with_its_headers() {
    let (addr, mut received) = recording_server().await;
    let config = ChannelConfig::Webhook {
        url: format!("http://{addr}/hooks/shoal"),
        headers: BTreeMap::from([("X-Shoal-Token".into(), "t0ken".into())]),
    };
    let sent = alert(AlertKind::TaskFailed);
    deliver(&config, &sent, TIMEOUT).await.unwrap();

    let request = received.recv().await.unwrap();
    assert_eq!(request.path, "/hooks/shoal");
    assert_eq!(request.headers["x-shoal-token"], "t0ken");
    assert_eq!(request.headers["content-type"], "application/json");
    let got: Alert = serde_json::from_str(&request.body).unwrap();
    assert_eq!(got, sent);
}

#[tokio::test]
async fn slack_posts_a_text_message_naming_the_workflow() {
    let (addr, mut received) = recording_server().await;
    let config = ChannelConfig::Slack {
        url: format!("http://{addr}/services/T0/B0/x"),
    };
    let sent = alert(AlertKind::WorkflowFailed);
    deliver(&config, &sent, TIMEOUT).await.unwrap();

    let request = received.recv().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    let text = body["text"].as_str().expect("a `text` field");
    assert!(text.contains("daily"), "{text}");
    assert!(text.starts_with(&sent.title()), "{text}");
    assert!(text.contains("exit code 3"), "{text}");
}

#[tokio::test]
async fn a_webhook_to_an_unlisted_non_public_address_is_refused_unsent() {
    let (addr, mut received) = recording_server().await;
    for url in [
        format!("http://{addr}/hook"),
        format!("http://localhost:{}/hook", addr.port()),
    ] {
        let config = ChannelConfig::Webhook {
            url,
            headers: BTreeMap::new(),
        };
        let err = shoal_alert::deliver(&config, &alert(AlertKind::WorkflowFailed), TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, AlertError::Refused { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("127.0.0.1 (loopback)"), "{err}");
        assert!(
            !err.to_string().contains("/hook"),
            "the URL path stays out: {err}"
        );
    }
    // Another address than the one listed is refused too.
    let other = WebhookHosts::parse(&["127.0.0.2".into()]).unwrap();
    let config = webhook(addr, "/hook");
    let err = deliver_allowing(&config, &alert(AlertKind::WorkflowFailed), TIMEOUT, &other)
        .await
        .unwrap_err();
    assert!(matches!(err, AlertError::Refused { .. }), "{err:?}");
    assert!(received.try_recv().is_err(), "nothing reached the listener");

    let (dispatcher, task) = AlertDispatcher::start(quick_policy(3), 16);
    dispatcher.send(
        vec![channel("ops", webhook(addr, "/hook"))],
        alert(AlertKind::WorkflowFailed),
    );
    let stats = wait_for_outcomes(&dispatcher, 1).await;
    assert_eq!((stats.delivered, stats.failed), (0, 1));
    shut_down(dispatcher, task).await;
    assert!(received.try_recv().is_err(), "nothing reached the listener");
}

#[tokio::test]
async fn a_refusal_keeps_the_status_and_the_reason() {
    let (addr, hits) = flaky_server(StatusCode::FORBIDDEN, usize::MAX).await;
    let config = ChannelConfig::Slack {
        url: format!("http://{addr}/hook"),
    };
    let err = deliver(&config, &alert(AlertKind::WorkflowFailed), TIMEOUT)
        .await
        .unwrap_err();
    match &err {
        AlertError::Http { status, body } => {
            assert_eq!(*status, 403);
            assert_eq!(body, "try later");
        }
        other => panic!("expected an HTTP status error, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let err = deliver(
        &webhook(addr, "/hook"),
        &alert(AlertKind::TaskTimeout),
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AlertError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.abort();
}

#[tokio::test]
async fn an_invalid_channel_fails_before_any_request() {
    let config = ChannelConfig::Webhook {
        url: "file:///etc/passwd".into(),
        headers: BTreeMap::new(),
    };
    let err = deliver(&config, &alert(AlertKind::WorkflowFailed), TIMEOUT)
        .await
        .unwrap_err();
    match &err {
        AlertError::Invalid { field, .. } => assert_eq!(field, "url"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(!err.is_retryable());
}

// ---- the dispatcher ----

#[tokio::test]
async fn the_dispatcher_retries_until_the_endpoint_accepts() {
    let (addr, hits) = flaky_server(StatusCode::INTERNAL_SERVER_ERROR, 2).await;
    let (dispatcher, task) = AlertDispatcher::start_allowing(quick_policy(5), 16, loopback());
    dispatcher.send(
        vec![channel("ops", webhook(addr, "/hook"))],
        alert(AlertKind::WorkflowFailed),
    );
    let stats = wait_for_outcomes(&dispatcher, 1).await;
    assert_eq!(
        stats,
        AlertStats {
            delivered: 1,
            failed: 0,
            dropped: 0
        }
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    shut_down(dispatcher, task).await;
}

#[tokio::test]
async fn the_dispatcher_gives_up_after_its_attempts() {
    let (addr, hits) = flaky_server(StatusCode::SERVICE_UNAVAILABLE, usize::MAX).await;
    let (dispatcher, task) = AlertDispatcher::start_allowing(quick_policy(3), 16, loopback());
    dispatcher.send(
        vec![channel("ops", webhook(addr, "/hook"))],
        alert(AlertKind::TaskTimeout),
    );
    let stats = wait_for_outcomes(&dispatcher, 1).await;
    assert_eq!(
        stats,
        AlertStats {
            delivered: 0,
            failed: 1,
            dropped: 0
        }
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    shut_down(dispatcher, task).await;
}

#[tokio::test]
async fn a_closed_port_is_retried_then_counted_as_failed() {
    let addr = closed_port().await;
    let (dispatcher, task) = AlertDispatcher::start_allowing(quick_policy(3), 16, loopback());
    let started = Instant::now();
    dispatcher.send(
        vec![channel("nowhere", webhook(addr, "/hook"))],
        alert(AlertKind::WorkflowFailed),
    );
    let stats = wait_for_outcomes(&dispatcher, 1).await;
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.delivered, 0);
    // Three attempts means two backoffs, 10 ms and 20 ms.
    assert!(started.elapsed() >= Duration::from_millis(30));
    shut_down(dispatcher, task).await;
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried() {
    let (addr, hits) = flaky_server(StatusCode::NOT_FOUND, usize::MAX).await;
    let (dispatcher, task) = AlertDispatcher::start_allowing(quick_policy(5), 16, loopback());
    dispatcher.send(
        vec![channel("ops", webhook(addr, "/hook"))],
        alert(AlertKind::WorkflowFailed),
    );
    let stats = wait_for_outcomes(&dispatcher, 1).await;
    assert_eq!(stats.failed, 1);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    shut_down(dispatcher, task).await;
}

/// `#[tokio::test]` runs on one thread, so the dispatcher's task cannot take anything off
/// the queue between these `send` calls: the second and third find it full.
#[tokio::test]
async fn send_never_waits_and_a_full_queue_drops() {
    let (addr, mut received) = recording_server().await;
    let (dispatcher, task) = AlertDispatcher::start_allowing(quick_policy(1), 1, loopback());
    let ops = vec![channel("ops", webhook(addr, "/hook"))];

    let started = Instant::now();
    for _ in 0..3 {
        dispatcher.send(ops.clone(), alert(AlertKind::WorkflowFailed));
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(
        dispatcher.stats(),
        AlertStats {
            delivered: 0,
            failed: 0,
            dropped: 2
        }
    );

    // Dropping the last handle still delivers what was queued.
    shut_down(dispatcher, task).await;
    let request = tokio::time::timeout(TIMEOUT, received.recv()).await;
    assert_eq!(request.expect("the queued alert").unwrap().path, "/hook");
    assert!(
        received.try_recv().is_err(),
        "only the queued alert is delivered"
    );
}

#[tokio::test]
async fn only_channels_that_want_the_kind_receive_it() {
    let (addr, mut received) = recording_server().await;
    let (dispatcher, task) = AlertDispatcher::start_allowing(quick_policy(1), 16, loopback());
    let mut opted_in = channel("succeeded", webhook(addr, "/opted-in"));
    opted_in.events = vec![AlertKind::WorkflowSucceeded];
    let defaults = channel("failures", webhook(addr, "/defaults"));
    let channels = vec![defaults, opted_in];

    dispatcher.send(channels.clone(), alert(AlertKind::WorkflowSucceeded));
    dispatcher.send(channels, alert(AlertKind::TaskFailed));
    let stats = wait_for_outcomes(&dispatcher, 2).await;
    assert_eq!(stats.delivered, 2);
    shut_down(dispatcher, task).await;

    let mut seen = Vec::new();
    while let Ok(request) = received.try_recv() {
        let alert: Alert = serde_json::from_str(&request.body).unwrap();
        seen.push((request.path, alert.kind));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("/defaults".to_string(), AlertKind::TaskFailed),
            ("/opted-in".to_string(), AlertKind::WorkflowSucceeded),
        ]
    );
}

// ---- email ----

/// What the SMTP server saw in one session.
#[derive(Debug, Default)]
struct SmtpSession {
    commands: Vec<String>,
    recipients: Vec<String>,
    data: String,
}

/// Accepts one connection on 127.0.0.1 and speaks enough of RFC 5321 for one mail,
/// advertising `extensions` in its EHLO reply.
async fn smtp_server(extensions: &'static [&'static str]) -> (u16, JoinHandle<SmtpSession>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let session = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        smtp_session(stream, extensions).await
    });
    (port, session)
}

async fn smtp_session(stream: TcpStream, extensions: &[&str]) -> SmtpSession {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut session = SmtpSession::default();
    write.write_all(b"220 127.0.0.1 ESMTP\r\n").await.unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            break;
        }
        let command = line.trim_end().to_string();
        session.commands.push(command.clone());
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => {
                let mut reply = String::from("250-127.0.0.1\r\n");
                for extension in extensions {
                    reply.push_str(&format!("250-{extension}\r\n"));
                }
                reply.push_str("250 8BITMIME\r\n");
                reply
            }
            "HELO" | "MAIL" | "RSET" | "NOOP" => "250 OK\r\n".into(),
            "RCPT" => {
                let address = command
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address.to_string())
                    .unwrap_or_default();
                session.recipients.push(address);
                "250 OK\r\n".into()
            }
            "AUTH" => "235 2.7.0 Authentication successful\r\n".into(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await
                    .unwrap();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap() == 0 {
                        return session;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    session.data.push_str(unstuffed);
                }
                "250 OK queued\r\n".into()
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await.unwrap();
                break;
            }
            _ => "502 Command not implemented\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await.unwrap();
    }
    session
}

fn email(port: u16, username: Option<&str>, starttls: bool) -> ChannelConfig {
    ChannelConfig::Email {
        host: "127.0.0.1".into(),
        port,
        from: "Shoal <shoal@example.com>".into(),
        to: vec![
            "ops@example.com".into(),
            "On Call <oncall@example.com>".into(),
        ],
        username: username.map(String::from),
        password: username.map(|_| "pw".into()),
        starttls,
    }
}

#[tokio::test]
async fn email_reaches_every_recipient_with_the_workflow_in_subject_and_body() {
    let (port, server) = smtp_server(&[]).await;
    let sent = alert(AlertKind::TaskFailed);
    deliver(&email(port, None, false), &sent, TIMEOUT)
        .await
        .unwrap();
    let session = tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(
        session.recipients,
        vec!["ops@example.com", "oncall@example.com"]
    );
    assert!(
        session
            .commands
            .iter()
            .any(|c| c == "MAIL FROM:<shoal@example.com>"),
        "{:?}",
        session.commands
    );
    let subject = session
        .data
        .lines()
        .find(|line| line.starts_with("Subject: "))
        .expect("a Subject header");
    assert_eq!(subject, format!("Subject: {}", sent.title()));
    assert!(subject.contains("daily"));
    let (_, body) = session
        .data
        .split_once("\r\n\r\n")
        .expect("headers and body");
    assert!(body.contains("workflow: daily"), "{body}");
    assert!(body.contains("exit code 3"), "{body}");
    assert_eq!(session.commands.last().map(String::as_str), Some("QUIT"));
}

#[tokio::test]
async fn email_logs_in_when_a_username_is_set() {
    let (port, server) = smtp_server(&["AUTH PLAIN LOGIN"]).await;
    deliver(
        &email(port, Some("shoal"), false),
        &alert(AlertKind::WorkflowFailed),
        TIMEOUT,
    )
    .await
    .unwrap();
    let session = tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
    // base64 of "\0shoal\0pw"
    assert!(
        session
            .commands
            .iter()
            .any(|c| c == "AUTH PLAIN AHNob2FsAHB3"),
        "{:?}",
        session.commands
    );
    assert_eq!(session.recipients.len(), 2);
}

#[tokio::test]
async fn required_starttls_sends_nothing_to_a_server_without_it() {
    let (port, server) = smtp_server(&["AUTH PLAIN LOGIN"]).await;
    let err = deliver(
        &email(port, Some("shoal"), true),
        &alert(AlertKind::WorkflowFailed),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AlertError::Smtp(_)), "{err:?}");
    assert!(!err.is_retryable());
    let session = tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        session
            .commands
            .iter()
            .all(|c| !c.starts_with("AUTH") && !c.starts_with("MAIL")),
        "{:?}",
        session.commands
    );
    assert!(session.data.is_empty());
}

#[tokio::test]
async fn an_smtp_server_that_never_greets_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let err = deliver(
        &email(port, None, false),
        &alert(AlertKind::WorkflowFailed),
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.abort();
}

#[tokio::test]
async fn email_to_an_unlisted_non_public_mail_server_is_refused_unsent() {
    let (port, _server) = smtp_server(&[]).await;
    for host in ["127.0.0.1", "localhost"] {
        let mut config = email(port, None, false);
        if let ChannelConfig::Email { host: h, .. } = &mut config {
            *h = host.into();
        }
        let err = shoal_alert::deliver(&config, &alert(AlertKind::WorkflowFailed), TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, AlertError::Refused { .. }), "{host}: {err:?}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
