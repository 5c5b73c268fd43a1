//! An authenticated JSON client for the RPC, and the check every RPC handler runs first.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use shoal_protocol::rpc::{LEASE_HEADER, RPC_VERSION, VERSION_HEADER};

/// What every node of a cluster shares.
#[derive(Clone)]
pub struct RpcConfig {
    /// The cluster secret: every RPC request carries it, every node checks it.
    pub secret: String,
    /// How long one request may take before it counts as unanswered.
    pub timeout: Duration,
}

impl std::fmt::Debug for RpcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcConfig")
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RpcCallError {
    /// No answer (connection refused, timed out): the request may or may not have
    /// arrived.
    #[error("{0}")]
    Unreachable(String),
    /// The node answered with an error.
    #[error("{status}: {message}")]
    Refused { status: u16, message: String },
}

/// A client of other nodes' RPC endpoints. Cheap to clone.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    secret: String,
    /// A master's proven lease end (see [`LEASE_HEADER`]), sent with every request.
    lease: Option<Arc<AtomicI64>>,
}

impl RpcClient {
    pub fn new(config: &RpcConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(2)))
            // Nodes talk to the addresses they registered, never through a proxy.
            .no_proxy()
            // One connection per dispatch in flight (see the master's control lanes).
            .pool_max_idle_per_host(128)
            .build()
            .expect("a reqwest client with static settings builds");
        Self {
            http,
            secret: config.secret.clone(),
            lease: None,
        }
    }

    /// Send `lease` (ms since the epoch until which this node's lease is proven) with
    /// every request, so the receiver can refuse what arrives after it.
    pub fn with_lease(mut self, lease: Arc<AtomicI64>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// POST `body` to `base` + `path` and read the JSON answer.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
    ) -> Result<R, RpcCallError> {
        self.call_within(base, path, body, None).await
    }

    /// [`call`](Self::call) with its own time limit instead of the client's, for a
    /// request whose work is known to be slow (an action on a Flink job).
    pub async fn call_within<B: Serialize, R: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &B,
        timeout: Option<Duration>,
    ) -> Result<R, RpcCallError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut request = self.http.post(&url);
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let mut request = request
            .bearer_auth(&self.secret)
            .header(VERSION_HEADER, RPC_VERSION.to_string());
        if let Some(lease) = &self.lease {
            request = request.header(LEASE_HEADER, lease.load(Ordering::SeqCst).to_string());
        }
        let response = request
            .json(body)
            .send()
            .await
            .map_err(|e| RpcCallError::Unreachable(format!("{url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let message = response
                .json::<shoal_protocol::rpc::RpcError>()
                .await
                .map(|e| e.error)
                .unwrap_or_else(|_| status.to_string());
            return Err(RpcCallError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        response
            .json()
            .await
            .map_err(|e| RpcCallError::Unreachable(format!("{url}: reading the answer: {e}")))
    }
}

/// Whether an incoming request carries the cluster secret and a version this node
/// speaks. The secrets are compared as digests, so the comparison takes the same time
/// wherever they differ.
pub fn check_request(headers: &HeaderMap, secret: &str) -> Result<(), (StatusCode, String)> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if Sha256::digest(given.as_bytes()) != Sha256::digest(secret.as_bytes()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong cluster secret".into(),
        ));
    }
    let version = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if version != RPC_VERSION.to_string() {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("RPC version `{version}` is not spoken here; this node speaks {RPC_VERSION}"),
        ));
    }
    Ok(())
}

/// Refuse a command whose sender's lease (its [`LEASE_HEADER`]) ran out before it
/// arrived. Requests without the header (from a worker) pass.
pub fn check_lease(headers: &HeaderMap, now_ms: i64) -> Result<(), (StatusCode, String)> {
    let Some(value) = headers.get(LEASE_HEADER) else {
        return Ok(());
    };
    let until: i64 = value.to_str().ok().and_then(|v| v.parse().ok()).ok_or((
        StatusCode::BAD_REQUEST,
        format!("`{LEASE_HEADER}` is not a number"),
    ))?;
    if now_ms > until {
        return Err((
            StatusCode::CONFLICT,
            format!(
                "the sender's lease ran out {} ms before this command arrived; it may have been declared dead, so the command is not carried out",
                now_ms - until
            ),
        ));
    }
    Ok(())
}

/// An RPC error answer.
pub fn error_reply(status: StatusCode, message: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        status,
        axum::Json(shoal_protocol::rpc::RpcError { error: message }),
    )
        .into_response()
}
