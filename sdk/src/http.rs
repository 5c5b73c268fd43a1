//! Outbound HTTP through `wasi:http`.
//!
//! The host forwards a request only when its authority (`host` or `host:port`) is on the
//! plugin's granted allow-list; anything else fails with [`HttpError::Denied`].

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
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
}

impl Request {
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
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
        other => HttpError::Transport(format!("{url}: {other:?}")),
    }
}

/// Send a request and read the whole response.
pub fn send(req: &Request) -> Result<Response, HttpError> {
    let uri: http::Uri = req
        .url
        .parse()
        .map_err(|e| HttpError::Invalid(format!("url `{}`: {e}", req.url)))?;
    let authority = uri
        .authority()
        .ok_or_else(|| HttpError::Invalid(format!("url `{}` has no host", req.url)))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        other => {
            return Err(HttpError::Invalid(format!(
                "url `{}`: unsupported scheme {other:?}",
                req.url
            )));
        }
    };
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
        .set_authority(Some(authority.as_str()))
        .map_err(|_| bad("authority"))?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;

    // A body must be taken before `handle` and finished after it; a GET sends none.
    let body = if req.body.is_empty() {
        None
    } else {
        Some(outgoing.body().map_err(|_| bad("body"))?)
    };
    let future = outgoing_handler::handle(outgoing, None).map_err(|e| error_code(e, &req.url))?;
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
    let body = read_body(&incoming)?;
    drop(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, HttpError> {
    let stream = incoming
        .stream()
        .map_err(|_| HttpError::Transport("response body stream already taken".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
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
