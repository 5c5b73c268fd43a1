//! # shoal-alert: telling people when a workflow needs them
//!
//! The engine knows when a workflow or task fails, times out or (for the channels that ask)
//! succeeds; this crate owns getting that news to the operators' channels without ever
//! slowing the engine down. It owns:
//!
//! - the alert itself ([`Alert`], [`AlertKind`]) and how it reads as a title and a body;
//! - the channel configuration ([`AlertChannel`], [`ChannelConfig`]: a JSON webhook, a Slack
//!   incoming webhook, or email over SMTP) and its validation, so a bad URL or address is
//!   rejected when the configuration is loaded rather than the first time something breaks;
//! - one delivery attempt ([`deliver`]), which reaches a non-public address (loopback,
//!   private, link-local, ...) only when the operator lists it ([`WebhookHosts`]);
//! - the [`AlertDispatcher`], which keeps delivery off the engine's path: `send` only
//!   enqueues (and drops, with a warning, when the queue is full), while a background task
//!   delivers, retries with exponential backoff ([`RetryPolicy`]) and counts the outcomes
//!   ([`AlertStats`]) for the metrics endpoint.
//!
//! It does not decide *when* to alert (the engine does), and it stores nothing: an alert
//! that cannot be delivered after its retries is logged and counted, not kept.

mod address;
mod alert;
mod channel;
mod deliver;
mod dispatch;

use std::time::Duration;

pub use address::WebhookHosts;
pub use alert::{Alert, AlertKind};
pub use channel::{AlertChannel, ChannelConfig};
pub use deliver::{deliver, deliver_allowing};
pub use dispatch::{AlertDispatcher, AlertStats, MAX_IN_FLIGHT, RetryPolicy};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The endpoint was reached but refused the alert; `body` is the start of its answer,
    /// which is usually the only hint at why (Slack answers `invalid_token` and the like).
    #[error("the endpoint answered HTTP {status}{}", describe_body(body))]
    Http { status: u16, body: String },
    #[error("HTTP request failed")]
    Transport(#[source] reqwest::Error),
    #[error("SMTP delivery failed")]
    Smtp(#[source] lettre::transport::smtp::Error),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("invalid `{field}`: {message}")]
    Invalid { field: String, message: String },
    /// The URL's host is, or resolves to, an address deliveries may not reach.
    #[error("refused to deliver to `{host}`: it {message}")]
    Refused { host: String, message: String },
    #[error("cannot resolve `{host}`")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
}

impl AlertError {
    /// Whether trying again later could succeed. A refusal that will be repeated verbatim
    /// (bad configuration, a 4xx other than 408/429, a permanent SMTP reply, a certificate
    /// the server will keep presenting) is not worth the retry budget.
    pub fn is_retryable(&self) -> bool {
        match self {
            AlertError::Http { status, .. } => {
                *status == 408 || *status == 429 || (500..600).contains(status)
            }
            AlertError::Transport(err) => !err.is_builder() && !err.is_redirect(),
            AlertError::Smtp(err) => !(err.is_permanent() || err.is_client() || err.is_tls()),
            AlertError::TimedOut(_) => true,
            AlertError::Invalid { .. } | AlertError::Refused { .. } => false,
            AlertError::Resolve { .. } => true,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AlertError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn describe_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// Displays an error with its whole `source()` chain: the top-level messages of the HTTP and
/// SMTP libraries ("error sending request") hide the part an operator needs ("connection
/// refused"), and log lines only show `Display`.
pub(crate) struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
