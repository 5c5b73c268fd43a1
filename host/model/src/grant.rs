//! What a plugin is actually allowed to do: its manifest's request narrowed by the
//! operator's policy. The plugin runtime enforces a [`Grant`]; nothing else does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

/// A host pattern for outbound HTTP: `*`, `host`, `host:port`, `*.domain`, `*.domain:port`,
/// an IP literal (`10.0.0.5`, `10.0.0.5:8080`, `::1`, `[::1]:8080`) or a CIDR block
/// (`10.0.0.0/8`, `fd00::/8`, any port). A pattern without a port allows any port.
///
/// Names are matched against the request's authority; the address a request actually
/// connects to is checked as well ([`Grant::allows_http_address`]): an address that is not
/// public (loopback, private, link-local, ...; see [`non_public`]) is reached only through
/// an IP or CIDR pattern that contains it, never through a name or a wildcard, so a DNS
/// answer cannot turn `*.example.com` into the host's own services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPattern {
    /// Lower-case host; starts with `*.` for a wildcard domain; `*` alone for any host;
    /// `addr/len` for a CIDR block.
    host: String,
    port: Option<u16>,
    /// Set for IP literals (a full-length prefix) and CIDR blocks.
    #[serde(skip)]
    net: Option<IpNet>,
}

/// An IP network: `addr` with the first `prefix` bits significant (host bits zeroed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    fn new(addr: IpAddr, prefix: u8) -> Self {
        let addr = canonical_ip(addr);
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Self { addr, prefix }
    }

    fn single(addr: IpAddr) -> Self {
        let addr = canonical_ip(addr);
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    fn contains_net(&self, other: &IpNet) -> bool {
        self.prefix <= other.prefix && self.contains(other.addr)
    }

    fn is_single(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`) are the IPv4 address: a socket
/// connected to one reaches the other.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why `ip` is not a public internet address, or `None` when it is. These are the
/// addresses through which a plugin could reach the host itself, its network or a cloud
/// metadata service (169.254.169.254), so they need an explicit IP or CIDR allowance.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical_ip(ip) {
        IpAddr::V4(a) => non_public_v4(a),
        IpAddr::V6(a) => non_public_v6(a),
    }
}

fn non_public_v4(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(match o {
        [0, ..] => "unspecified",
        [127, ..] => "loopback",
        [10, ..] | [192, 168, ..] => "private",
        [172, b, ..] if (16..32).contains(&b) => "private",
        [169, 254, ..] => "link-local",
        [100, b, ..] if (64..128).contains(&b) => "shared (carrier-grade NAT)",
        [192, 0, 0, _] => "IETF protocol assignment",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18 | 19, ..] => "benchmarking",
        [224..=239, ..] => "multicast",
        [240..=255, ..] => "reserved",
        _ => return None,
    })
}

fn non_public_v6(a: Ipv6Addr) -> Option<&'static str> {
    let seg = a.segments();
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if a.is_loopback() {
        return Some("loopback");
    }
    // Addresses that embed an IPv4 address reach it (NAT64, 6to4, IPv4-compatible).
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return non_public_v4(embedded(seg[6], seg[7]));
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible addresses are deprecated; nothing public uses them.
        return Some("IPv4-compatible");
    }
    if seg[0] == 0x2002 {
        return non_public_v4(embedded(seg[1], seg[2]));
    }
    Some(match seg[0] {
        s if s & 0xfe00 == 0xfc00 => "private (unique local)",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        s if s & 0xffc0 == 0xfec0 => "site-local",
        s if s & 0xff00 == 0xff00 => "multicast",
        0x2001 if seg[1] == 0x0db8 => "documentation",
        0x2001 if seg[1] < 0x0200 => "IETF protocol assignment",
        0x0100 if seg[1..4] == [0, 0, 0] => "discard-only",
        _ => return None,
    })
}

/// The IP address an authority's host names, if it is an IP literal (`[::1]` included).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        if t == "*" {
            return Ok(Self {
                host: t,
                port: None,
                net: None,
            });
        }
        if t.is_empty() || t.contains('@') || t.contains(' ') {
            return Err(format!(
                "`{text}` is not a host pattern (expected host, host:port, *.domain, an IP address or a CIDR block)"
            ));
        }
        if let Some((addr, len)) = t.split_once('/') {
            let addr = ip_literal(addr).ok_or_else(|| {
                format!(
                    "`{text}` is not a host pattern (a `/` is only allowed in a CIDR block such as 10.0.0.0/8)"
                )
            })?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = len
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: `{len}` is not a prefix length (0-{max})"))?;
            let net = IpNet::new(addr, prefix);
            return Ok(Self {
                host: format!("{}/{}", net.addr, net.prefix),
                port: None,
                net: Some(net),
            });
        }
        // A bare IPv6 address (`::1`) has no port; a bracketed one may (`[::1]:8080`).
        if let Ok(ip) = t.parse::<Ipv6Addr>() {
            return Ok(Self::ip(IpAddr::V6(ip), None));
        }
        let (host, port) = match t.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("`{text}`: `{p}` is not a port number"))?;
                (h.to_owned(), Some(port))
            }
            _ => (t.clone(), None),
        };
        if let Some(ip) = ip_literal(&host) {
            return Ok(Self::ip(ip, port));
        }
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        if bare.is_empty() || bare.contains('*') || bare.contains(['[', ']', ':']) {
            return Err(format!(
                "`{text}`: `*` may only start a pattern, as in *.example.com"
            ));
        }
        Ok(Self {
            host,
            port,
            net: None,
        })
    }

    fn ip(ip: IpAddr, port: Option<u16>) -> Self {
        let net = IpNet::single(ip);
        let host = match net.addr {
            IpAddr::V6(a) => format!("[{a}]"),
            v4 => v4.to_string(),
        };
        Self {
            host,
            port,
            net: Some(net),
        }
    }

    fn host_matches(&self, host: &str) -> bool {
        if let Some(net) = &self.net {
            return ip_literal(host).is_some_and(|ip| net.contains(ip));
        }
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
            Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => {
                match p.parse::<u16>() {
                    Ok(port) => (h.to_owned(), port),
                    Err(_) => (a.clone(), default_port),
                }
            }
            _ => (a.clone(), default_port),
        };
        self.host_matches(&host) && self.port.is_none_or(|p| p == port)
    }

    /// Whether this is `*`, any host (public addresses only: see [`covers`](Self::covers)).
    pub fn is_any(&self) -> bool {
        self.host == "*" && self.port.is_none()
    }

    /// Whether this is an IP literal or CIDR block rather than a name or wildcard.
    pub fn is_address(&self) -> bool {
        self.net.is_some()
    }

    /// Whether this IP or CIDR pattern names `addr` itself (names and wildcards never do).
    pub fn names_address(&self, addr: SocketAddr) -> bool {
        self.net.is_some_and(|n| n.contains(addr.ip()))
            && self.port.is_none_or(|p| p == addr.port())
    }

    /// Whether every request this pattern allows is also allowed by `self`. An IP or CIDR
    /// pattern that reaches non-public addresses is covered only by an IP or CIDR pattern
    /// containing it: a policy's `*` does not hand out the host's loopback or network.
    pub fn covers(&self, other: &HostPattern) -> bool {
        let port_ok = self.port.is_none() || self.port == other.port;
        if let Some(theirs) = &other.net {
            let host_ok = match &self.net {
                Some(mine) => mine.contains_net(theirs),
                None => self.host == "*" && theirs.is_single() && non_public(theirs.addr).is_none(),
            };
            return port_ok && host_ok;
        }
        if self.net.is_some() {
            return false;
        }
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
pub fn capability_names(process: bool, http: bool, work_dir: bool, sql: bool) -> Vec<&'static str> {
    [
        (process, "process"),
        (http, "http"),
        (work_dir, "work-dir"),
        (sql, "sql"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// The capabilities one plugin is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub process: bool,
    pub work_dir: bool,
    /// `shoal:task/sql` on the datasources a task names.
    pub sql: bool,
    /// The operator's settings for the plugin (`shoal:task/context.setting`).
    pub settings: std::collections::BTreeMap<String, String>,
    pub http_hosts: Vec<HostPattern>,
    /// Linear-memory cap per task instance.
    pub memory_bytes: u64,
    /// Host environment variables a spawned process inherits.
    pub env_passthrough: Vec<String>,
    /// How processes it starts are confined (the operator's, for every plugin).
    pub sandbox: crate::sandbox::SandboxPolicy,
    /// Caps on its output, OUT parameters and WebAssembly resources.
    pub limits: crate::limits::TaskLimits,
    /// The operator's Flink clusters and resources, for a plugin that asked for `flink`.
    pub flink: Option<crate::flink::FlinkSettings>,
}

impl Grant {
    /// Whether a request to `authority` may leave the sandbox.
    pub fn allows_http(&self, authority: &str, default_port: u16) -> bool {
        self.http_hosts
            .iter()
            .any(|p| p.allows(authority, default_port))
    }

    /// Whether a request may connect to `addr`, an address its authority resolved to (or
    /// named). Public addresses pass (the name was checked by [`allows_http`](Self::allows_http));
    /// any other needs an IP or CIDR pattern containing it. `Err` says why not.
    pub fn allows_http_address(&self, addr: SocketAddr) -> Result<(), &'static str> {
        match non_public(addr.ip()) {
            None => Ok(()),
            Some(_) if self.http_hosts.iter().any(|p| p.names_address(addr)) => Ok(()),
            Some(why) => Err(why),
        }
    }

    /// Capability names, as in manifests and `describe`.
    pub fn names(&self) -> Vec<&'static str> {
        capability_names(
            self.process,
            !self.http_hosts.is_empty() || self.flink.is_some(),
            self.work_dir,
            self.sql,
        )
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
    fn ip_and_cidr_patterns() {
        assert!(p("10.0.0.0/8").allows("10.1.2.3:80", 80));
        assert!(!p("10.0.0.0/8").allows("11.1.2.3", 80));
        assert!(
            p("10.1.2.3/8").allows("10.200.0.1", 80),
            "host bits are ignored"
        );
        assert!(p("::1").allows("[::1]:8080", 80));
        assert!(p("[::1]:8080").allows("[::1]:8080", 80));
        assert!(!p("[::1]:8080").allows("[::1]:8081", 80));
        assert!(p("fd00::/8").allows("[fd12::1]", 443));
        assert!(p("127.0.0.1").allows("[::ffff:127.0.0.1]:9", 80));
        assert_eq!(p("10.9.8.7/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("[::1]:80").to_string(), "[::1]:80");
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(p("127.0.0.0/8").names_address(addr("127.0.0.1:9")));
        assert!(p("127.0.0.1:9").names_address(addr("127.0.0.1:9")));
        assert!(!p("127.0.0.1:9").names_address(addr("127.0.0.1:10")));
        assert!(!p("*").names_address(addr("127.0.0.1:9")));
        assert!(!p("localhost").names_address(addr("127.0.0.1:9")));
    }

    #[test]
    fn non_public_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (addr, why) in [
            ("127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "private"),
            ("2002:7f00:1::", "loopback"),
        ] {
            assert_eq!(non_public(ip(addr)), Some(why), "{addr}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert_eq!(non_public(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn resolved_addresses_need_an_ip_pattern_unless_public() {
        let grant = |hosts: &[&str]| Grant {
            process: false,
            work_dir: false,
            sql: false,
            settings: Default::default(),
            http_hosts: hosts.iter().map(|h| p(h)).collect(),
            memory_bytes: 0,
            env_passthrough: Vec::new(),
            sandbox: Default::default(),
            limits: Default::default(),
            flink: None,
        };
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let any = grant(&["*"]);
        assert!(any.allows_http_address(addr("93.184.216.34:443")).is_ok());
        assert_eq!(
            any.allows_http_address(addr("127.0.0.1:80")),
            Err("loopback")
        );
        assert_eq!(
            any.allows_http_address(addr("169.254.169.254:80")),
            Err("link-local")
        );
        let named = grant(&["metadata.internal", "*.corp.example"]);
        assert!(named.allows_http_address(addr("10.0.0.5:80")).is_err());
        let listed = grant(&["127.0.0.1:8080", "10.0.0.0/8"]);
        assert!(listed.allows_http_address(addr("127.0.0.1:8080")).is_ok());
        assert!(listed.allows_http_address(addr("127.0.0.1:8081")).is_err());
        assert!(listed.allows_http_address(addr("10.20.30.40:1")).is_ok());
        assert!(listed.allows_http_address(addr("192.168.0.1:1")).is_err());
    }

    #[test]
    fn wildcards_do_not_cover_non_public_ip_patterns() {
        assert!(!p("*").covers(&p("127.0.0.1")));
        assert!(!p("*").covers(&p("10.0.0.0/8")));
        assert!(p("*").covers(&p("93.184.216.34")));
        assert!(p("127.0.0.0/8").covers(&p("127.0.0.1:9000")));
        assert!(!p("127.0.0.1").covers(&p("127.0.0.0/8")));
        assert!(p("127.0.0.1").covers(&p("127.0.0.1:9000")));
        assert!(!p("127.0.0.1:9000").covers(&p("127.0.0.1")));
        assert!(!p("10.0.0.0/8").covers(&p("internal.example")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "http://x",
            "a/b",
            "x:notaport",
            "a.*.com",
            "*.",
            "10.0.0.0/33",
            "::1/129",
            "[::1]:x",
            "a b",
        ] {
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
