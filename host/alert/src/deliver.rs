use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use crate::channel::{http_url, mailbox};
use crate::{Alert, AlertError, ChannelConfig, WebhookHosts};

/// How much of a refusing endpoint's answer is kept in [`AlertError::Http`]: enough for
/// its reason, not enough to flood a log line.
const ERROR_BODY_LIMIT: usize = 512;

/// Makes one attempt to deliver `alert` on `channel`, taking at most `timeout`.
///
/// The configuration is validated first, so a channel that can never work fails with
/// [`AlertError::Invalid`] (which [`AlertError::is_retryable`] rejects) instead of a
/// transport error that looks worth retrying.
///
/// Webhook and Slack URLs must reach public addresses; see [`deliver_allowing`].
pub async fn deliver(
    channel: &ChannelConfig,
    alert: &Alert,
    timeout: Duration,
) -> Result<(), AlertError> {
    deliver_allowing(channel, alert, timeout, &WebhookHosts::public_only()).await
}

/// [`deliver`], also reaching the non-public addresses `hosts` lists.
pub async fn deliver_allowing(
    channel: &ChannelConfig,
    alert: &Alert,
    timeout: Duration,
    hosts: &WebhookHosts,
) -> Result<(), AlertError> {
    Courier::new(hosts.clone())
        .deliver(channel, alert, timeout)
        .await
}

/// What deliveries share: one HTTP client, so that its connection pool and TLS roots are
/// set up once per dispatcher rather than once per alert. A URL that names its host is
/// sent through a client pinned to the addresses checked for it.
#[derive(Debug)]
pub(crate) struct Courier {
    http: Option<reqwest::Client>,
    hosts: WebhookHosts,
}

impl Courier {
    pub(crate) fn new(hosts: WebhookHosts) -> Self {
        Courier {
            http: http_builder().build().ok(),
            hosts,
        }
    }

    pub(crate) async fn deliver(
        &self,
        channel: &ChannelConfig,
        alert: &Alert,
        timeout: Duration,
    ) -> Result<(), AlertError> {
        channel.validate()?;
        match channel {
            ChannelConfig::Webhook { url, headers } => {
                self.post(url, headers, alert, timeout).await
            }
            ChannelConfig::Slack { url } => {
                let message = SlackMessage {
                    text: format!("{}\n{}", alert.title(), alert.text()),
                };
                self.post(url, &BTreeMap::new(), &message, timeout).await
            }
            ChannelConfig::Email {
                host,
                port,
                from,
                to,
                username,
                password,
                starttls,
            } => {
                let message = email_message(from, to, alert)?;
                // The mail server is checked like a webhook host and reached at the
                // address that passed; TLS still verifies the name.
                let target = smtp_target(&self.hosts, host, *port, timeout).await?;
                let mut smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target)
                    .port(*port)
                    .timeout(Some(timeout));
                if *starttls {
                    let tls = TlsParameters::new(host.clone()).map_err(AlertError::Smtp)?;
                    smtp = smtp.tls(Tls::Required(tls));
                }
                if let Some(username) = username {
                    smtp = smtp.credentials(Credentials::new(
                        username.clone(),
                        password.clone().unwrap_or_default(),
                    ));
                }
                let smtp: AsyncSmtpTransport<Tokio1Executor> = smtp.build();
                // lettre's timeout is per command; this bounds the whole conversation.
                match tokio::time::timeout(timeout, smtp.send(message)).await {
                    Ok(sent) => sent.map(drop).map_err(AlertError::Smtp),
                    Err(_) => Err(AlertError::TimedOut(timeout)),
                }
            }
        }
    }

    async fn post(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<(), AlertError> {
        let url = http_url("url", url)?;
        let http = match self.hosts.check(&url, timeout).await? {
            Some((name, addrs)) => http_builder()
                .resolve_to_addrs(&name, &addrs)
                .build()
                .map_err(AlertError::Transport)?,
            None => match &self.http {
                Some(http) => http.clone(),
                None => http_builder().build().map_err(AlertError::Transport)?,
            },
        };
        let mut request = http.post(url).timeout(timeout).json(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(AlertError::Transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(ERROR_BODY_LIMIT);
        Err(AlertError::Http {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).trim().to_string(),
        })
    }
}

/// Redirects are not followed: a POST turned into a GET by a 302 would "succeed" without
/// delivering anything, so a moved endpoint shows up as an error to fix in the configuration.
/// No proxy either: the request must go to the address that was checked.
/// The address to open an SMTP connection to: `host` resolved once and checked against
/// the same rule as webhook hosts (non-public addresses only when listed).
async fn smtp_target(
    hosts: &WebhookHosts,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<String, AlertError> {
    let bracketed = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let url = reqwest::Url::parse(&format!("smtp://{bracketed}:{port}"))
        .map_err(|e| AlertError::invalid("host", e.to_string()))?;
    Ok(match hosts.check(&url, timeout).await? {
        Some((_, addrs)) => addrs[0].ip().to_string(),
        None => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    })
}

fn http_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("shoal-alert/", env!("CARGO_PKG_VERSION")))
}

#[derive(Serialize)]
struct SlackMessage {
    text: String,
}

fn email_message(from: &str, to: &[String], alert: &Alert) -> Result<Message, AlertError> {
    let mut message = Message::builder()
        .from(mailbox("from", from)?)
        .subject(alert.title())
        .header(ContentType::TEXT_PLAIN);
    for (index, address) in to.iter().enumerate() {
        message = message.to(mailbox(&format!("to[{index}]"), address)?);
    }
    message
        .body(alert.text())
        .map_err(|err| AlertError::invalid("email", err.to_string()))
}
