use std::collections::BTreeMap;
use std::fmt;

use lettre::message::Mailbox;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::{AlertError, AlertKind};

/// A named destination and the kinds of alert it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AlertChannel {
    /// Names the channel in logs, where the URL or password must not appear.
    pub name: String,
    pub config: ChannelConfig,
    /// Empty means [`AlertKind::DEFAULT_EVENTS`]; `workflow-succeeded` is only ever sent to
    /// a channel that lists it.
    #[serde(default)]
    pub events: Vec<AlertKind>,
}

impl AlertChannel {
    pub fn wants(&self, kind: AlertKind) -> bool {
        if self.events.is_empty() {
            AlertKind::DEFAULT_EVENTS.contains(&kind)
        } else {
            self.events.contains(&kind)
        }
    }
}

/// Where and how a channel's alerts go.
///
/// `Debug` leaves out what would let someone else post to the channel (URL paths and
/// queries, header values, the SMTP password), because configurations end up in logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// POST the [`crate::Alert`] as JSON.
    Webhook {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// POST a Slack incoming-webhook message (`{"text": ...}`).
    Slack { url: String },
    /// Send a plain-text mail over SMTP.
    Email {
        host: String,
        port: u16,
        from: String,
        to: Vec<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        /// Require STARTTLS before any credentials or mail are sent; a server that does not
        /// offer it fails the delivery rather than receiving the mail in the clear.
        #[serde(default)]
        starttls: bool,
    },
}

impl ChannelConfig {
    /// Checks what can be checked without contacting the channel, so a typo is reported
    /// when the configuration is loaded instead of when the first alert is lost.
    pub fn validate(&self) -> Result<(), AlertError> {
        match self {
            ChannelConfig::Webhook { url, headers } => {
                http_url("url", url)?;
                for (name, value) in headers {
                    let field = format!("headers.{name}");
                    HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| AlertError::invalid(&field, "not a valid HTTP header name"))?;
                    HeaderValue::from_str(value).map_err(|_| {
                        AlertError::invalid(&field, "the value is not a valid HTTP header value")
                    })?;
                }
                Ok(())
            }
            ChannelConfig::Slack { url } => http_url("url", url).map(drop),
            ChannelConfig::Email {
                host,
                port,
                from,
                to,
                username,
                password,
                starttls: _,
            } => {
                if host.trim().is_empty() {
                    return Err(AlertError::invalid("host", "must not be empty"));
                }
                if *port == 0 {
                    return Err(AlertError::invalid("port", "must not be 0"));
                }
                mailbox("from", from)?;
                if to.is_empty() {
                    return Err(AlertError::invalid("to", "lists no recipient"));
                }
                for (index, address) in to.iter().enumerate() {
                    mailbox(&format!("to[{index}]"), address)?;
                }
                if password.is_some() && username.is_none() {
                    return Err(AlertError::invalid(
                        "username",
                        "a password is set but no username to go with it",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Parses a channel URL. The URL itself stays out of the message: for Slack it is the
/// credential.
pub(crate) fn http_url(field: &str, url: &str) -> Result<Url, AlertError> {
    let parsed =
        Url::parse(url).map_err(|err| AlertError::invalid(field, format!("not a URL ({err})")))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(AlertError::invalid(
            field,
            format!("the scheme must be http or https, not `{other}`"),
        )),
    }
}

/// Parses an address as a mail header would carry it (`ops@example.com` or
/// `Ops <ops@example.com>`).
pub(crate) fn mailbox(field: &str, address: &str) -> Result<Mailbox, AlertError> {
    address.trim().parse::<Mailbox>().map_err(|err| {
        AlertError::invalid(
            field,
            format!("`{address}` is not an email address ({err})"),
        )
    })
}

fn redacted_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => match url.host_str() {
            Some(host) => format!("{}://{host}/…", url.scheme()),
            None => "<redacted>".into(),
        },
        Err(_) => "<not a URL>".into(),
    }
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelConfig::Webhook { url, headers } => f
                .debug_struct("Webhook")
                .field("url", &redacted_url(url))
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .finish(),
            ChannelConfig::Slack { url } => f
                .debug_struct("Slack")
                .field("url", &redacted_url(url))
                .finish(),
            ChannelConfig::Email {
                host,
                port,
                from,
                to,
                username,
                password,
                starttls,
            } => f
                .debug_struct("Email")
                .field("host", host)
                .field("port", port)
                .field("from", from)
                .field("to", to)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .field("starttls", starttls)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(to: Vec<&str>) -> ChannelConfig {
        ChannelConfig::Email {
            host: "127.0.0.1".into(),
            port: 25,
            from: "Shoal <shoal@example.com>".into(),
            to: to.into_iter().map(String::from).collect(),
            username: None,
            password: None,
            starttls: false,
        }
    }

    fn invalid_field(config: &ChannelConfig) -> String {
        match config.validate() {
            Err(AlertError::Invalid { field, message }) => {
                assert!(!message.is_empty());
                field
            }
            other => panic!("expected an Invalid error for {config:?}, got {other:?}"),
        }
    }

    #[test]
    fn valid_configurations_pass() {
        let webhook = ChannelConfig::Webhook {
            url: "https://hooks.example.com/shoal?token=x".into(),
            headers: BTreeMap::from([("X-Token".into(), "secret".into())]),
        };
        webhook.validate().unwrap();
        ChannelConfig::Slack {
            url: "http://127.0.0.1:9/services/T/B/C".into(),
        }
        .validate()
        .unwrap();
        email(vec!["ops@example.com", "On Call <oncall@example.com>"])
            .validate()
            .unwrap();
    }

    #[test]
    fn validation_errors_name_the_field() {
        let slack = |url: &str| ChannelConfig::Slack { url: url.into() };
        assert_eq!(invalid_field(&slack("not a url")), "url");
        assert_eq!(invalid_field(&slack("ftp://example.com/x")), "url");
        let webhook = ChannelConfig::Webhook {
            url: "https://example.com/".into(),
            headers: BTreeMap::from([("bad header".into(), "v".into())]),
        };
        assert_eq!(invalid_field(&webhook), "headers.bad header");
        let webhook = ChannelConfig::Webhook {
            url: "https://example.com/".into(),
            headers: BTreeMap::from([("X-Ok".into(), "line\nbreak".into())]),
        };
        assert_eq!(invalid_field(&webhook), "headers.X-Ok");

        assert_eq!(invalid_field(&email(vec![])), "to");
        assert_eq!(
            invalid_field(&email(vec!["ops@example.com", "nobody"])),
            "to[1]"
        );
        let mut bad_from = email(vec!["ops@example.com"]);
        if let ChannelConfig::Email { from, .. } = &mut bad_from {
            *from = "shoal at example".into();
        }
        assert_eq!(invalid_field(&bad_from), "from");
        let mut no_user = email(vec!["ops@example.com"]);
        if let ChannelConfig::Email { password, .. } = &mut no_user {
            *password = Some("pw".into());
        }
        assert_eq!(invalid_field(&no_user), "username");
        let mut no_host = email(vec!["ops@example.com"]);
        if let ChannelConfig::Email { host, .. } = &mut no_host {
            *host = " ".into();
        }
        assert_eq!(invalid_field(&no_host), "host");

        let err = slack("ftp://example.com/x").validate().unwrap_err();
        assert!(err.to_string().contains("`url`"), "{err}");
    }

    #[test]
    fn success_is_opt_in() {
        let channel = |events: Vec<AlertKind>| AlertChannel {
            name: "ops".into(),
            config: ChannelConfig::Slack {
                url: "https://example.com/".into(),
            },
            events,
        };
        let defaults = channel(vec![]);
        assert!(defaults.wants(AlertKind::WorkflowFailed));
        assert!(defaults.wants(AlertKind::TaskTimeout));
        assert!(defaults.wants(AlertKind::TaskFailed));
        assert!(!defaults.wants(AlertKind::WorkflowSucceeded));

        let listed = channel(vec![AlertKind::WorkflowSucceeded]);
        assert!(listed.wants(AlertKind::WorkflowSucceeded));
        assert!(!listed.wants(AlertKind::WorkflowFailed));
    }

    #[test]
    fn configuration_reads_as_tagged_kebab_case() {
        let channel: AlertChannel = serde_json::from_value(serde_json::json!({
            "name": "mail",
            "config": {
                "kind": "email",
                "host": "smtp.example.com",
                "port": 587,
                "from": "shoal@example.com",
                "to": ["ops@example.com"],
                "starttls": true
            },
            "events": ["workflow-failed", "workflow-succeeded"]
        }))
        .unwrap();
        assert_eq!(
            channel.events,
            vec![AlertKind::WorkflowFailed, AlertKind::WorkflowSucceeded]
        );
        match &channel.config {
            ChannelConfig::Email {
                port,
                starttls,
                username,
                ..
            } => {
                assert_eq!(*port, 587);
                assert!(*starttls);
                assert_eq!(*username, None);
            }
            other => panic!("expected email, got {other:?}"),
        }

        let webhook: ChannelConfig =
            serde_json::from_value(serde_json::json!({"kind": "webhook", "url": "https://x/"}))
                .unwrap();
        assert_eq!(
            webhook,
            ChannelConfig::Webhook {
                url: "https://x/".into(),
                headers: BTreeMap::new()
            }
        );
        let typo = serde_json::from_value::<ChannelConfig>(serde_json::json!({
            "kind": "email", "host": "h", "port": 25, "from": "a@b.c", "to": ["d@e.f"],
            "startls": true
        }));
        assert!(typo.is_err(), "a misspelt option must not be ignored");
    }

    #[test]
    fn debug_leaves_out_secrets() {
        let slack = ChannelConfig::Slack {
            url: "https://hooks.slack.com/services/T0/B0/s3cr3t".into(),
        };
        let email = ChannelConfig::Email {
            host: "smtp.example.com".into(),
            port: 587,
            from: "a@b.c".into(),
            to: vec!["d@e.f".into()],
            username: Some("user".into()),
            password: Some("hunter2".into()),
            starttls: true,
        };
        let webhook = ChannelConfig::Webhook {
            url: "https://example.com/hook?token=tok3n".into(),
            headers: BTreeMap::from([("Authorization".into(), "Bearer b34rer".into())]),
        };
        let shown = format!("{slack:?} {email:?} {webhook:?}");
        for secret in ["s3cr3t", "hunter2", "tok3n", "b34rer"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(shown.contains("hooks.slack.com"));
    }
}
