//! Alert channels (webhook, Slack-style, SMTP) fed by real runs.

use super::*;

/// Receive from `rx` until `want` holds for what was received, or panic after `within`.
pub(crate) async fn receive_until<T: Clone + std::fmt::Debug>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    got: &mut Vec<T>,
    within: Duration,
    what: &str,
    want: impl Fn(&[T]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !want(got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(v)) => got.push(v),
            Ok(None) => panic!("the receiver closed while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}; got {got:#?}"),
        }
    }
}

pub(crate) async fn alerts(s: &Server) {
    let (hooks_at, mut hooks) = webhook_receiver().await;
    let (smtp_port, mut mails) = smtp_receiver().await;
    let base = "/api/v1/projects/alerts/alerts";
    let hook_url = |path: &str| format!("http://{hooks_at}/{path}");
    for (name, body) in [
        (
            "failures",
            json!({"config": {"kind": "webhook", "url": hook_url("failures")},
                   "events": ["workflow-failed", "task-failed"]}),
        ),
        (
            "mail",
            json!({"config": {"kind": "email", "host": "127.0.0.1", "port": smtp_port,
                              "from": "Shoal <shoal@example.com>", "to": ["ops@example.com"]}}),
        ),
        (
            "wins",
            json!({"config": {"kind": "webhook", "url": hook_url("wins")},
                   "events": ["workflow-succeeded"]}),
        ),
        (
            "slow",
            json!({"config": {"kind": "webhook", "url": hook_url("slow")},
                   "events": ["task-timeout"]}),
        ),
    ] {
        s.put(&format!("{base}/{name}"), body).await.expect(204);
    }
    // Channel configs hold credentials: stored sealed, like secrets.
    let url = hook_url("failures");
    for file in files_under(&s.data) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(url.len()).any(|w| w == url.as_bytes()),
            "{} holds a webhook URL in the clear",
            file.display()
        );
    }
    for (body, field) in [
        (json!({"config": {"kind": "pigeon", "url": "x"}}), "config"),
        (
            json!({"config": {"kind": "webhook", "url": "not a url"}}),
            "config",
        ),
        (
            json!({"config": {"kind": "webhook", "url": hook_url("x")}, "events": ["sometimes"]}),
            "events[0]",
        ),
    ] {
        let m = s
            .put(&format!("{base}/bad"), body.clone())
            .await
            .error(400, "bad-request");
        assert!(m.contains(field), "{body}: {m}");
    }
    let listed = s.get(base).await.expect(200);
    let kinds: BTreeMap<String, String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("failures".to_owned(), "webhook".to_owned()),
            ("mail".to_owned(), "email".to_owned()),
            ("slow".to_owned(), "webhook".to_owned()),
            ("wins".to_owned(), "webhook".to_owned()),
        ])
    );
    assert!(
        !listed.body.contains("127.0.0.1"),
        "addresses are not echoed: {}",
        listed.body
    );

    let boom = define_online(
        s,
        "alerts",
        "workflow:\n  name: boom\ntasks:\n  - name: explode\n    task_type: Shell\n    command: echo failing; exit 3\n",
    )
    .await;
    let fine = define_online(s, "alerts", &shell("fine", "echo fine")).await;
    let slowpoke = define_online(
        s,
        "alerts",
        "workflow:\n  name: slowpoke\ntasks:\n  - name: dawdle\n    task_type: Shell\n    timeout: 300ms\n    timeout_strategy: warn\n    command: sleep 1.2\n",
    )
    .await;

    // A failure: the failure channel gets both kinds, the mail names the workflow.
    let failed = start(s, "alerts", &boom, json!({})).await;
    assert_eq!(state_of(&settle(s, failed).await), "failed");
    let mut got: Vec<Hook> = Vec::new();
    let kinds_at = |got: &[Hook], path: &str| -> BTreeSet<String> {
        got.iter()
            .filter(|h| h.path == format!("/{path}"))
            .map(|h| h.body["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    receive_until(
        &mut hooks,
        &mut got,
        Duration::from_secs(15),
        "workflow-failed and task-failed alerts",
        |got| {
            kinds_at(got, "failures")
                == BTreeSet::from(["workflow-failed".to_owned(), "task-failed".to_owned()])
        },
    )
    .await;
    for h in got.iter().filter(|h| h.path == "/failures") {
        assert_eq!(h.body["workflow"], "boom", "{:?}", h.body);
        assert_eq!(h.body["project"], "alerts");
        assert_eq!(h.body["instance-id"], failed);
        if h.body["kind"] == "task-failed" {
            assert_eq!(h.body["task"], "explode", "{:?}", h.body);
        }
    }
    let mut mail: Vec<Mail> = Vec::new();
    receive_until(
        &mut mails,
        &mut mail,
        Duration::from_secs(15),
        "an alert mail naming `boom`",
        |m| m.iter().any(|m| m.data.contains("boom")),
    )
    .await;
    let m = mail.iter().find(|m| m.data.contains("boom")).unwrap();
    assert_eq!(m.to, vec!["ops@example.com"]);
    assert_eq!(m.from, "shoal@example.com");
    assert!(
        m.data
            .lines()
            .any(|l| l.starts_with("Subject:") && l.contains("boom")),
        "{}",
        m.data
    );

    // A success reaches only the channel that opted in; a warn timeout its channel.
    let ok = start(s, "alerts", &fine, json!({})).await;
    assert_eq!(state_of(&settle(s, ok).await), "succeeded");
    let slow = start(s, "alerts", &slowpoke, json!({})).await;
    receive_until(
        &mut hooks,
        &mut got,
        Duration::from_secs(15),
        "workflow-succeeded and task-timeout alerts",
        |got| {
            got.iter()
                .any(|h| h.path == "/wins" && h.body["workflow"] == "fine")
                && got.iter().any(|h| h.path == "/slow")
        },
    )
    .await;
    let win = got.iter().find(|h| h.path == "/wins").unwrap();
    assert_eq!(win.body["kind"], "workflow-succeeded");
    assert_eq!(win.body["instance-id"], ok);
    let late = got.iter().find(|h| h.path == "/slow").unwrap();
    assert_eq!(late.body["kind"], "task-timeout", "{:?}", late.body);
    assert_eq!(late.body["task"], "dawdle");
    assert_eq!(late.body["workflow"], "slowpoke");
    // Warn only: the slow run still succeeds.
    assert_eq!(state_of(&settle(s, slow).await), "succeeded");
    // Nothing went where it was not wanted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(h) = hooks.try_recv() {
        got.push(h);
    }
    assert_eq!(
        kinds_at(&got, "wins"),
        BTreeSet::from(["workflow-succeeded".to_owned()]),
        "{got:#?}"
    );
    assert_eq!(
        kinds_at(&got, "failures"),
        BTreeSet::from(["workflow-failed".to_owned(), "task-failed".to_owned()]),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .filter(|h| h.path == "/wins")
            .all(|h| h.body["workflow"] != "boom"),
        "{got:#?}"
    );
    while let Ok(m) = mails.try_recv() {
        mail.push(m);
    }
    assert!(
        mail.iter().all(|m| !m.data.contains("fine")),
        "a success went to the mail channel: {mail:#?}"
    );

    s.delete(&format!("{base}/wins")).await.expect(204);
    s.delete(&format!("{base}/wins"))
        .await
        .error(404, "not-found");
}

// ======================================================================================
// 8: plugins uploaded into the running server.
// ======================================================================================
