//! Outbound HTTP (`wasi:http/outgoing-handler`) limited to the grant's allow-list.
//!
//! The check happens where the request leaves the sandbox, twice: on the request's
//! authority (so no guest-side trick, a custom Host header or a redirect followed by the
//! guest, reaches a host that is not listed), and on the address the connection is made
//! to. The host name is resolved here once, every address is checked, and the socket is
//! connected to an address that passed: there is no second lookup a DNS answer could
//! change in between (rebinding). An address that is not public (loopback, private,
//! link-local such as the 169.254.169.254 metadata service, unspecified, ...) passes only
//! when the grant lists it by IP or CIDR; a name or a wildcard never reaches it.
//!
//! Because wasmtime-wasi-http's `default_send_request` resolves and connects by itself,
//! the connection (TCP, TLS with the webpki roots, HTTP/1.1) is made here, the same way.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use shoal_model::grant::non_public;
use shoal_model::{Grant, HostPattern, LogLevel, LogStream, TaskLog};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// wasmtime-wasi-http's defaults when a request sets no timeouts.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

pub struct AllowList {
    plugin_id: String,
    hosts: Vec<HostPattern>,
    /// The operator's Flink clusters the task's project may use: reachable at whatever
    /// address their names resolve to, the operator having named them.
    trusted: Vec<HostPattern>,
    log: TaskLog,
}

impl AllowList {
    pub fn new(plugin_id: &str, grant: &Grant, project: Option<&str>, log: TaskLog) -> Self {
        let trusted = grant
            .flink
            .iter()
            .flat_map(|f| f.clusters.values())
            .filter(|c| c.allows(project))
            .filter_map(|c| c.authority().ok())
            .collect();
        Self {
            plugin_id: plugin_id.to_owned(),
            hosts: grant.http_hosts.clone(),
            trusted,
            log,
        }
    }

    fn allows(&self, authority: &str, default_port: u16) -> bool {
        self.hosts
            .iter()
            .chain(&self.trusted)
            .any(|p| p.allows(authority, default_port))
    }

    fn trusts(&self, authority: &str, default_port: u16) -> bool {
        self.trusted
            .iter()
            .any(|p| p.allows(authority, default_port))
    }

    fn deny(&self, why: &str) -> ResponseFuture {
        self.log.write(
            LogStream::Host,
            LogLevel::Warn,
            &format!("capability denied: plugin `{}` {why}", self.plugin_id),
        );
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

/// Why a connection to `addr` is refused, if it is: a non-public address that no IP or
/// CIDR pattern of `hosts` names.
fn refuse_address(hosts: &[HostPattern], addr: SocketAddr) -> Option<&'static str> {
    let why = non_public(addr.ip())?;
    (!hosts.iter().any(|p| p.names_address(addr))).then_some(why)
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for AllowList {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let use_tls = request.uri().scheme_str() == Some("https");
        let default_port = if use_tls { 443 } else { 80 };
        let Some(authority) = request.uri().authority().cloned() else {
            return self.deny("may not send HTTP without a host in the URL");
        };
        if !self.allows(authority.as_str(), default_port) {
            return self.deny(&format!(
                "may not send HTTP to `{authority}` (not on its http-hosts allow-list)"
            ));
        }
        let host = authority.host().to_owned();
        let port = authority.port_u16().unwrap_or(default_port);
        let trusted = self.trusts(authority.as_str(), default_port);
        let hosts = self.hosts.clone();
        let plugin = self.plugin_id.clone();
        let log = self.log.clone();
        Box::new(async move {
            let connect_timeout = options
                .and_then(|o| o.connect_timeout)
                .unwrap_or(DEFAULT_TIMEOUT);
            let addrs = resolve(&host, port, connect_timeout).await?;
            let (allowed, refused): (Vec<_>, Vec<_>) = addrs
                .into_iter()
                .partition(|a| trusted || refuse_address(&hosts, *a).is_none());
            if allowed.is_empty() {
                let listed = refused
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({})",
                            a.ip(),
                            refuse_address(&hosts, *a).unwrap_or("refused")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                log.write(
                    LogStream::Host,
                    LogLevel::Warn,
                    &format!(
                        "capability denied: plugin `{plugin}` may not send HTTP to `{authority}`: it resolves to {listed}, not a public address; an operator allows such an address only by listing its IP or CIDR in http-hosts"
                    ),
                );
                return Err(Error::HttpRequestDenied);
            }
            let (response, io) = send_to(request, options, &allowed, &host, use_tls).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// The addresses `host` (a name or an IP literal, IPv6 in brackets) stands for.
async fn resolve(host: &str, port: u16, within: Duration) -> Result<Vec<SocketAddr>, Error> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(within, tokio::net::lookup_host((bare, port))).await {
        Err(_) => Err(Error::DnsTimeout),
        Ok(Err(e)) => Err(Error::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        }),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(Error::DestinationNotFound)
            } else {
                Ok(addrs)
            }
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// Send `request` over a connection to the first of `addrs` that accepts one. This is
/// wasmtime-wasi-http's `default_send_request` with the address chosen by the caller.
async fn send_to(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    addrs: &[SocketAddr],
    host: &str,
    use_tls: bool,
) -> Result<
    (
        http::Response<TimedBody>,
        impl Future<Output = Result<(), Error>> + Send + use<>,
    ),
    Error,
> {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
        // tokio's interval panics on zero.
        .max(Duration::from_nanos(1));

    let mut last = Error::ConnectionRefused;
    let mut tcp = None;
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => last = Error::ConnectionTimeout,
        }
    }
    let tcp = tcp.ok_or(last)?;
    let stream: Box<dyn Stream> = if use_tls {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = match bare.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(bare.to_owned())?,
        };
        Box::new(connector.connect(name, tcp).await.map_err(Error::Tls)?)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request carries scheme and authority; on the wire only a proxy wants them.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(request.uri().path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let send = async move {
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, Error>(response.map(|incoming| TimedBody { incoming, timeout }))
    };
    let mut send = std::pin::pin!(send);
    let mut conn = Some(conn);
    // Drive the connection while waiting for the response head.
    let response = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(c).poll(cx));
            conn = None;
            match done {
                Ok(()) => send.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;
    Ok((response, async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        match conn.await {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(e) => Err(e.into()),
        }
    }))
}

/// A response body that fails when no data arrives for the between-bytes timeout.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.incoming)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.incoming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<HostPattern> {
        list.iter()
            .map(|h| HostPattern::parse(h).unwrap())
            .collect()
    }

    #[test]
    fn resolved_addresses_are_checked_against_ip_patterns() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let any = hosts(&["*"]);
        assert_eq!(refuse_address(&any, addr("127.0.0.1:80")), Some("loopback"));
        assert_eq!(
            refuse_address(&any, addr("169.254.169.254:80")),
            Some("link-local")
        );
        assert_eq!(refuse_address(&any, addr("[::1]:80")), Some("loopback"));
        assert_eq!(refuse_address(&any, addr("93.184.216.34:443")), None);
        let loopback = hosts(&["127.0.0.1"]);
        assert_eq!(refuse_address(&loopback, addr("127.0.0.1:8080")), None);
        assert_eq!(
            refuse_address(&loopback, addr("127.0.0.2:8080")),
            Some("loopback")
        );
    }

    #[tokio::test]
    async fn names_resolve_once_and_literals_not_at_all() {
        let got = resolve("[::1]", 8080, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, vec!["[::1]:8080".parse().unwrap()]);
        let got = resolve("127.0.0.1", 80, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got, vec!["127.0.0.1:80".parse().unwrap()]);
        // `localhost` comes from /etc/hosts: a name that reaches loopback.
        let got = resolve("localhost", 80, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(got.iter().all(|a| a.ip().is_loopback()), "{got:?}");
        assert!(
            got.iter()
                .all(|a| refuse_address(&hosts(&["localhost"]), *a).is_some())
        );
    }
}
