//! Outbound HTTP through `wasi:http`.
//!
//! The host forwards a request only when its authority (`host` or `host:port`) is on the
//! plugin's granted allow-list; anything else fails with [`HttpError::Denied`].

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// Why a request failed before a response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused the request: the destination is not on the allow-list.
    Denied(String),
    /// The URL or a header could not be used.
    Invalid(String),
    /// Connecting, sending or receiving failed.
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "capability denied: {m}"),
            Self::Invalid(m) => write!(f, "invalid HTTP request: {m}"),
            Self::Transport(m) => write!(f, "HTTP request failed: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// An HTTP request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How long connecting may take; none is the host's default (10 minutes).
    pub connect_timeout_ms: Option<u64>,
    /// How long the response may take to start, and how long it may go quiet between
    /// two pieces of its body; none is the host's default (10 minutes).
    pub read_timeout_ms: Option<u64>,
    /// The most body bytes kept; a longer body fails the request rather than filling
    /// the plugin's memory.
    pub max_body_bytes: usize,
}

/// What [`Request::max_body_bytes`] is unless set: enough for any API answer.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

impl Request {
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            connect_timeout_ms: None,
            read_timeout_ms: None,
            max_body_bytes: DEFAULT_MAX_BODY,
        }
    }
    /// Timeouts for connecting and for reading, in milliseconds.
    pub fn timeouts(mut self, connect_ms: Option<u64>, read_ms: Option<u64>) -> Self {
        self.connect_timeout_ms = connect_ms;
        self.read_timeout_ms = read_ms;
        self
    }
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    pub fn send(&self) -> Result<Response, HttpError> {
        send(self)
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::new("GET", url).send()
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

fn error_code(code: ErrorCode, url: &str) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(format!(
            "{url}: host is not on this plugin's HTTP allow-list"
        )),
        ErrorCode::ConnectionTimeout => HttpError::Transport(format!("{url}: connect timed out")),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            HttpError::Transport(format!("{url}: timed out waiting for the response"))
        }
        ErrorCode::ConnectionRefused => HttpError::Transport(format!("{url}: connection refused")),
        other => HttpError::Transport(format!("{url}: {other:?}")),
    }
}

/// A URL's scheme, authority (`host` or `host:port`) and path with its query (`/`
/// when empty). The host checks the authority against the allow-list again, so this
/// only has to split, not to judge.
fn split_url(url: &str) -> Result<(Scheme, &str, String), HttpError> {
    let invalid = |why: &str| HttpError::Invalid(format!("url `{url}`: {why}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(invalid(&format!("unsupported scheme `{other}`"))),
    };
    // A fragment never goes on the wire.
    let rest = rest.split('#').next().unwrap_or_default();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(invalid("no host, or a host with user info or blanks"));
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((scheme, authority, path))
}

/// Send a request and read the whole response.
pub fn send(req: &Request) -> Result<Response, HttpError> {
    let (scheme, authority, path) = split_url(&req.url)?;
    let entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let headers =
        Fields::from_list(&entries).map_err(|e| HttpError::Invalid(format!("headers: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let bad = |what: &str| HttpError::Invalid(format!("url `{}`: bad {what}", req.url));
    outgoing
        .set_method(&method(&req.method))
        .map_err(|_| bad("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|_| bad("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|_| bad("authority"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|_| bad("path"))?;

    // A body must be taken before `handle` and finished after it; a GET sends none.
    let body = if req.body.is_empty() {
        None
    } else {
        Some(outgoing.body().map_err(|_| bad("body"))?)
    };
    let options = if req.connect_timeout_ms.is_some() || req.read_timeout_ms.is_some() {
        let options = RequestOptions::new();
        // Durations are in nanoseconds.
        let ns = |ms: u64| ms.saturating_mul(1_000_000);
        if let Some(ms) = req.connect_timeout_ms {
            options
                .set_connect_timeout(Some(ns(ms)))
                .map_err(|_| bad("connect timeout"))?;
        }
        if let Some(ms) = req.read_timeout_ms {
            options
                .set_first_byte_timeout(Some(ns(ms)))
                .map_err(|_| bad("read timeout"))?;
            options
                .set_between_bytes_timeout(Some(ns(ms)))
                .map_err(|_| bad("read timeout"))?;
        }
        Some(options)
    } else {
        None
    };
    let future =
        outgoing_handler::handle(outgoing, options).map_err(|e| error_code(e, &req.url))?;
    if let Some(body) = body {
        let stream = body.write().map_err(|_| bad("body stream"))?;
        for chunk in req.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Transport(format!("writing body: {e:?}")))?;
        }
        drop(stream);
        OutgoingBody::finish(body, None).map_err(|e| error_code(e, &req.url))?;
    }
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(error_code(code, &req.url)),
        Some(Err(())) | None => {
            return Err(HttpError::Transport(format!(
                "{}: response was already taken",
                req.url
            )));
        }
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|_| HttpError::Transport("response body already consumed".into()))?;
    let body = read_body(&incoming, req.max_body_bytes)?;
    drop(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_body(incoming: &IncomingBody, max: usize) -> Result<Vec<u8>, HttpError> {
    let stream = incoming
        .stream()
        .map_err(|_| HttpError::Transport("response body stream already taken".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if body.len() + chunk.len() > max {
                    return Err(HttpError::Transport(format!(
                        "the response body is longer than {max} bytes"
                    )));
                }
                body.extend_from_slice(&chunk)
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Transport(format!(
                    "reading body: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let (_, a, p) = split_url("http://127.0.0.1:8081/jars/x?y=1#frag").unwrap();
        assert_eq!((a, p.as_str()), ("127.0.0.1:8081", "/jars/x?y=1"));
        let (_, a, p) = split_url("https://example.com").unwrap();
        assert_eq!((a, p.as_str()), ("example.com", "/"));
        let (_, _, p) = split_url("http://h?q=1").unwrap();
        assert_eq!(p, "/?q=1");
        for bad in ["ftp://h/", "h/x", "http:///x", "http://u@h/", "http://a b/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
