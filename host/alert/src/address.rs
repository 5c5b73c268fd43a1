//! Which addresses webhook, Slack and SMTP deliveries may connect to: every public address, and
//! the non-public ones (loopback, private, link-local such as the 169.254.169.254 metadata
//! service, ...) only when the operator lists them in the server config's
//! `alerts.allow-hosts`, by IP or CIDR. A user who may configure a channel must not turn
//! the server into a client of its own network.
//!
//! The URL's host is resolved once, here; every address is checked, and the HTTP client
//! is pinned to the addresses that passed, so a second DNS answer cannot change where the
//! request goes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use shoal_model::HostPattern;
use shoal_model::grant::non_public;

use crate::AlertError;

/// The non-public addresses deliveries may reach besides every public one.
#[derive(Debug, Clone, Default)]
pub struct WebhookHosts {
    allowed: Vec<HostPattern>,
}

/// Where a checked URL may connect: nowhere to pin for an IP literal, else the name and
/// the addresses it resolved to that passed.
pub(crate) type Pinned = Option<(String, Vec<SocketAddr>)>;

impl WebhookHosts {
    /// Public addresses only.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// `entries` as the config lists them: IP literals (`127.0.0.1`, `127.0.0.1:9000`,
    /// `[::1]:9000`) and CIDR blocks (`10.0.0.0/8`). A host name is refused: what it
    /// resolves to can change, which is the very thing this list guards against.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let pattern =
                HostPattern::parse(entry).map_err(|e| format!("allow-hosts[{i}]: {e}"))?;
            if !pattern.is_address() {
                return Err(format!(
                    "allow-hosts[{i}]: `{entry}` is not an IP address or CIDR block (names are not accepted, because what they resolve to can change)"
                ));
            }
            allowed.push(pattern);
        }
        Ok(Self { allowed })
    }

    fn refusal(&self, addr: SocketAddr) -> Option<&'static str> {
        let why = non_public(addr.ip())?;
        (!self.allowed.iter().any(|p| p.names_address(addr))).then_some(why)
    }

    /// Check `url`'s host and resolve it (within `timeout`).
    pub(crate) async fn check(&self, url: &Url, timeout: Duration) -> Result<Pinned, AlertError> {
        let port = url.port_or_known_default().unwrap_or(80);
        let host = url
            .host_str()
            .ok_or_else(|| AlertError::invalid("url", "has no host"))?;
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let (name, addrs) = match bare.parse::<IpAddr>() {
            Ok(ip) => (None, vec![SocketAddr::new(ip, port)]),
            Err(_) => {
                let found = tokio::time::timeout(timeout, tokio::net::lookup_host((bare, port)))
                    .await
                    .map_err(|_| AlertError::TimedOut(timeout))?
                    .map_err(|source| AlertError::Resolve {
                        host: bare.to_owned(),
                        source,
                    })?;
                (Some(bare.to_owned()), found.collect::<Vec<_>>())
            }
        };
        let host = host.to_owned();
        let (passed, refused): (Vec<_>, Vec<_>) =
            addrs.into_iter().partition(|a| self.refusal(*a).is_none());
        if passed.is_empty() {
            let listed = refused
                .iter()
                .map(|a| format!("{} ({})", a.ip(), self.refusal(*a).unwrap_or("refused")))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(AlertError::Refused {
                host,
                message: if listed.is_empty() {
                    "resolves to no address".to_owned()
                } else {
                    format!(
                        "resolves to {listed}, not a public address; list it by IP or CIDR in the server config's alerts.allow-hosts to allow it"
                    )
                },
            });
        }
        Ok(name.map(|n| (n, passed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn non_public_addresses_need_an_entry() {
        let public = WebhookHosts::public_only();
        for refused in [
            "http://127.0.0.1:9/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://localhost:8080/",
        ] {
            let err = public.check(&url(refused), T).await.unwrap_err();
            assert!(
                matches!(err, AlertError::Refused { .. }),
                "{refused}: {err}"
            );
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("alerts.allow-hosts"), "{err}");
        }
        assert!(
            public
                .check(&url("https://93.184.216.34/"), T)
                .await
                .unwrap()
                .is_none()
        );

        let loopback = WebhookHosts::parse(&["127.0.0.0/8".into(), "[::1]:8080".into()]).unwrap();
        assert!(loopback.check(&url("http://127.0.0.1:9/"), T).await.is_ok());
        assert!(loopback.check(&url("http://[::1]:8080/"), T).await.is_ok());
        assert!(loopback.check(&url("http://[::1]:8081/"), T).await.is_err());
        assert!(loopback.check(&url("http://10.0.0.1/"), T).await.is_err());
        let (name, addrs) = loopback
            .check(&url("http://localhost:9/"), T)
            .await
            .unwrap()
            .expect("a name is pinned to its checked addresses");
        assert_eq!(name, "localhost");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn the_list_takes_addresses_only() {
        let err = WebhookHosts::parse(&["127.0.0.1".into(), "hooks.internal".into()]).unwrap_err();
        assert!(err.starts_with("allow-hosts[1]: `hooks.internal`"), "{err}");
        assert!(WebhookHosts::parse(&["10.0.0.0/99".into()]).is_err());
    }
}
