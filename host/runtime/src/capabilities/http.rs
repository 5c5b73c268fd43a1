//! Outbound HTTP (`wasi:http/outgoing-handler`) limited to the grant's allow-list.
//!
//! The check happens where the request leaves the sandbox, on the request's
//! authority, so no guest-side trick (a custom Host header, a redirect followed by the
//! guest) can reach a host that is not listed.

use std::future::Future;

use http_body_util::BodyExt;
use shoal_model::{Grant, HostPattern, LogLevel, LogStream, TaskLog};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub struct AllowList {
    plugin_id: String,
    hosts: Vec<HostPattern>,
    log: TaskLog,
}

impl AllowList {
    pub fn new(plugin_id: &str, grant: &Grant, log: TaskLog) -> Self {
        Self {
            plugin_id: plugin_id.to_owned(),
            hosts: grant.http_hosts.clone(),
            log,
        }
    }

    fn allows(&self, authority: &str, default_port: u16) -> bool {
        self.hosts.iter().any(|p| p.allows(authority, default_port))
    }
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
        let default_port = match request.uri().scheme_str() {
            Some("https") => 443,
            _ => 80,
        };
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        if authority.is_empty() || !self.allows(&authority, default_port) {
            self.log.write(
                LogStream::Host,
                LogLevel::Warn,
                &format!(
                    "capability denied: plugin `{}` may not send HTTP to `{authority}` (not on its http-hosts allow-list)",
                    self.plugin_id
                ),
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
