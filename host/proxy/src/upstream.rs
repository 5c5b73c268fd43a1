//! Calling clusters: one call with its error turned into the proxy's answer, or every
//! reachable cluster at once, each bounded by the per-cluster timeout, so a slow or
//! lost cluster leaves a listing partial (and says so) instead of stalling it.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use shoal_api::ApiError;
use shoal_api_types::ErrorBody;
use shoal_api_types::clusters::{ClusterHealth, MissingCluster};

use crate::Proxy;
use crate::clusters::{Cluster, describe};

/// A request body to forward.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(serde_json::Value),
    /// Text with its content type (a YAML definition).
    Text(String, String),
}

/// Why a call to a cluster did not give what was asked.
#[derive(Debug, Clone)]
pub enum CallError {
    /// No answer: refused, timed out, cut off. The request may or may not have arrived.
    Unreachable { cluster: String, reason: String },
    /// The cluster answered with an error.
    Answer {
        cluster: String,
        status: u16,
        code: String,
        message: String,
    },
}

impl CallError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Unreachable { .. } => 0,
            Self::Answer { status, .. } => *status,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable { cluster, reason } => {
                write!(f, "cluster {cluster} did not answer: {reason}")
            }
            Self::Answer {
                cluster,
                status,
                message,
                ..
            } => write!(f, "cluster {cluster} answered {status}: {message}"),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable { cluster, reason } => ApiError::Upstream {
                status: 502,
                code: "cluster-unreachable".into(),
                message: format!("cluster {cluster} did not answer: {reason}"),
            },
            // The cluster's own words: it was asked on the caller's behalf.
            CallError::Answer {
                status,
                code,
                message,
                ..
            } => ApiError::Upstream {
                status,
                code,
                message,
            },
        }
    }
}

/// The most of one cluster answer the proxy holds (a listing of 1,000 instances is far
/// below it); an answer past it is cut off and treated as unreadable.
pub const MAX_ANSWER: usize = 32 << 20;

/// Read a response's body, at most `max` bytes (error beyond).
pub async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if out.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl Proxy {
    /// Send one request to `cluster`; the raw response when it succeeded.
    pub async fn send(
        &self,
        cluster: &Cluster,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<reqwest::Response, CallError> {
        self.send_with(cluster, method, path, body, |r| r).await
    }

    /// [`Proxy::send`] with a last say over the request (headers, timeout).
    pub async fn send_with(
        &self,
        cluster: &Cluster,
        method: Method,
        path: &str,
        body: Body,
        edit: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let mut req = self.clusters().request(cluster, method, path);
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Text(text, content_type) => req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(text),
        };
        let resp = edit(req).send().await.map_err(|e| {
            let reason = describe(&e);
            if e.is_connect() {
                cluster.mark_unreachable(&reason);
            }
            CallError::Unreachable {
                cluster: cluster.name().to_owned(),
                reason,
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text =
            String::from_utf8_lossy(&read_bounded(resp, 64 * 1024).await.unwrap_or_default())
                .into_owned();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.code, b.message),
            Err(_) => ("error".into(), text.chars().take(500).collect()),
        };
        Err(CallError::Answer {
            cluster: cluster.name().to_owned(),
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// [`Proxy::send`] of a write made for `user`, put in the audit log with the
    /// cluster's status and `note` (or the error).
    pub async fn send_audited(
        &self,
        user: &str,
        cluster: &Cluster,
        method: Method,
        path: &str,
        body: Body,
        note: &str,
    ) -> Result<reqwest::Response, CallError> {
        let action = format!("{method} {path}");
        let r = self.send(cluster, method, path, body).await;
        let (status, result) = match &r {
            Ok(resp) => (i64::from(resp.status().as_u16()), note.to_owned()),
            Err(e) => (i64::from(e.status()), e.to_string()),
        };
        self.audit(user, &action, Some(cluster.name()), status, &result)
            .await;
        r
    }

    /// One call whose answer is JSON of type `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        cluster: &Cluster,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(StatusCode, T), CallError> {
        let resp = self.send(cluster, method, path, body).await?;
        let status = resp.status();
        let value = if status == StatusCode::NO_CONTENT {
            serde_json::from_value(serde_json::Value::Null)
        } else {
            let bytes =
                read_bounded(resp, MAX_ANSWER)
                    .await
                    .map_err(|reason| CallError::Unreachable {
                        cluster: cluster.name().to_owned(),
                        reason,
                    })?;
            serde_json::from_slice(&bytes)
        };
        value.map(|v| (status, v)).map_err(|e| CallError::Answer {
            cluster: cluster.name().to_owned(),
            status: 502,
            code: "upstream".into(),
            message: format!(
                "cluster {} gave an answer this proxy cannot read: {e}",
                cluster.name()
            ),
        })
    }

    /// GET `path` from every cluster that is not known to be unreachable, at once.
    /// Returns the answers, and the clusters left out with the reason.
    pub async fn fan_out<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> (Vec<(Arc<Cluster>, T)>, Vec<MissingCluster>) {
        self.fan_out_to(path, None).await
    }

    /// [`Proxy::fan_out`] to the cluster named `only` when given, else to every one.
    pub async fn fan_out_to<T: DeserializeOwned>(
        &self,
        path: &str,
        only: Option<&str>,
    ) -> (Vec<(Arc<Cluster>, T)>, Vec<MissingCluster>) {
        let mut missing = Vec::new();
        let mut asked = Vec::new();
        for c in self.clusters().all() {
            if only.is_some_and(|n| n != c.name()) {
                continue;
            }
            if c.health() == ClusterHealth::Unreachable {
                missing.push(MissingCluster {
                    cluster: c.name().to_owned(),
                    reason: format!("unreachable: {}", c.view().reason),
                });
            } else {
                asked.push(c.clone());
            }
        }
        let answers = futures_util::future::join_all(asked.iter().map(|c| {
            let c = c.clone();
            async move {
                let r = self.call::<T>(&c, Method::GET, path, Body::None).await;
                (c, r)
            }
        }))
        .await;
        let mut got = Vec::new();
        for (c, r) in answers {
            match r {
                Ok((_, v)) => got.push((c, v)),
                // Not there (a project or workflow this cluster does not hold) is an
                // answer, not a gap in the listing.
                Err(CallError::Answer { status: 404, .. }) => {}
                Err(e) => missing.push(MissingCluster {
                    cluster: c.name().to_owned(),
                    reason: e.to_string(),
                }),
            }
        }
        (got, missing)
    }

    /// The cluster that holds the proxy id `global`, and the cluster's own id.
    pub fn locate(&self, global: i64, what: &str) -> Result<(Arc<Cluster>, i64), ApiError> {
        let missing = || ApiError::NotFound(format!("no {what} {global}"));
        let (number, id) = crate::clusters::split(global).ok_or_else(missing)?;
        let c = self.clusters().by_number(number).ok_or_else(missing)?;
        Ok((c.clone(), id))
    }
}
