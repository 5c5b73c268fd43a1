//! What a plugin is actually allowed to do: its manifest's request narrowed by the
//! operator's policy. The plugin runtime enforces a [`Grant`]; nothing else does.

use serde::Serialize;

/// A host pattern for outbound HTTP: `*`, `host`, `host:port`, `*.domain`, `*.domain:port`.
/// A pattern without a port allows any port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPattern {
    /// Lower-case host; starts with `*.` for a wildcard domain; `*` alone for any host.
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        if t == "*" {
            return Ok(Self {
                host: t,
                port: None,
            });
        }
        if t.is_empty() || t.contains('/') || t.contains('@') || t.contains(' ') {
            return Err(format!(
                "`{text}` is not a host pattern (expected host, host:port or *.domain)"
            ));
        }
        let (host, port) = match t.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("`{text}`: `{p}` is not a port number"))?;
                (h.to_owned(), Some(port))
            }
            _ => (t.clone(), None),
        };
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        if bare.is_empty() || bare.contains('*') {
            return Err(format!(
                "`{text}`: `*` may only start a pattern, as in *.example.com"
            ));
        }
        Ok(Self { host, port })
    }

    fn host_matches(&self, host: &str) -> bool {
        if self.host == "*" {
            return true;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => self.host == host,
        }
    }

    /// Whether a request to `authority` (`host` or `host:port`, as in a URL) is allowed.
    /// `default_port` is the scheme's port, used when the authority names none.
    pub fn allows(&self, authority: &str, default_port: u16) -> bool {
        let a = authority.to_ascii_lowercase();
        let (host, port) = match a.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(port) => (h.to_owned(), port),
                Err(_) => (a.clone(), default_port),
            },
            _ => (a.clone(), default_port),
        };
        self.host_matches(&host) && self.port.is_none_or(|p| p == port)
    }

    /// Whether every request this pattern allows is also allowed by `self`.
    pub fn covers(&self, other: &HostPattern) -> bool {
        let port_ok = self.port.is_none() || self.port == other.port;
        let host_ok = if other.host == "*" {
            self.host == "*"
        } else if let Some(domain) = other.host.strip_prefix("*.") {
            self.host == "*"
                || self.host == other.host
                || self
                    .host
                    .strip_prefix("*.")
                    .is_some_and(|mine| domain.ends_with(&format!(".{mine}")))
        } else {
            self.host_matches(&other.host)
        };
        port_ok && host_ok
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Capability names in their canonical order, as manifests and `describe` spell them.
pub fn capability_names(process: bool, http: bool, work_dir: bool) -> Vec<&'static str> {
    [(process, "process"), (http, "http"), (work_dir, "work-dir")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
}

/// The capabilities one plugin is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub process: bool,
    pub work_dir: bool,
    pub http_hosts: Vec<HostPattern>,
    /// Linear-memory cap per task instance.
    pub memory_bytes: u64,
    /// Host environment variables a spawned process inherits.
    pub env_passthrough: Vec<String>,
}

impl Grant {
    /// Whether a request to `authority` may leave the sandbox.
    pub fn allows_http(&self, authority: &str, default_port: u16) -> bool {
        self.http_hosts
            .iter()
            .any(|p| p.allows(authority, default_port))
    }

    /// Capability names, as in manifests and `describe`.
    pub fn names(&self) -> Vec<&'static str> {
        capability_names(self.process, !self.http_hosts.is_empty(), self.work_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_authorities() {
        assert!(p("127.0.0.1:8080").allows("127.0.0.1:8080", 80));
        assert!(!p("127.0.0.1:8080").allows("127.0.0.1:8081", 80));
        assert!(p("127.0.0.1").allows("127.0.0.1:9", 80));
        assert!(p("example.com:443").allows("example.com", 443));
        assert!(!p("example.com:443").allows("example.com", 80));
        assert!(p("*.example.com").allows("api.example.com", 443));
        assert!(!p("*.example.com").allows("example.com", 443));
        assert!(!p("*.example.com").allows("evilexample.com", 443));
        assert!(p("*").allows("anything:1", 80));
        assert!(!p("example.com").allows("example.com.evil.org", 80));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "http://x", "a/b", "x:notaport", "a.*.com", "*."] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coverage() {
        assert!(p("*").covers(&p("*.x.com")));
        assert!(p("*.x.com").covers(&p("a.x.com:1")));
        assert!(p("*.x.com").covers(&p("*.a.x.com")));
        assert!(!p("*.x.com").covers(&p("*")));
        assert!(!p("a.x.com:1").covers(&p("a.x.com")));
        assert!(p("a.x.com").covers(&p("a.x.com:1")));
    }
}
