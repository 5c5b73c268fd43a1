//! The REST API as the tools see it: one base URL, the caller's token per call, and
//! every error turned into the API's own message (which an agent can act on).

use reqwest::Method;
use shoal_api_types::ErrorBody;

/// The most of an answer handed to an agent (a log or a listing is cut there).
pub const MAX_ANSWER: usize = 256 * 1024;

pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// A request body.
pub enum Body {
    None,
    Json(serde_json::Value),
    Yaml(String),
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("the HTTP client builds"),
        }
    }

    /// Call `path` under `/api/v1`; the answer's text, or the API's error message.
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<(u16, String, reqwest::header::HeaderMap), String> {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(token);
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Yaml(text) => req
                .header(reqwest::header::CONTENT_TYPE, "application/yaml")
                .body(text),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("the Shoal API at {} did not answer: {e}", self.base))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // Read no more than an agent is handed: a log or listing stops there.
        let mut resp = resp;
        let mut bytes = Vec::new();
        while bytes.len() < MAX_ANSWER {
            match resp
                .chunk()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
            {
                Some(chunk) => bytes.extend_from_slice(&chunk),
                None => break,
            }
        }
        bytes.truncate(MAX_ANSWER);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if (200..300).contains(&status) {
            return Ok((status, text, headers));
        }
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => format!("{} (HTTP {status}, {})", e.message, e.code),
            Err(_) => format!("HTTP {status}: {text}"),
        })
    }

    /// [`Api::call`] for a JSON answer.
    pub async fn json(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<serde_json::Value, String> {
        let (status, text, _) = self.call(token, method, path, body).await?;
        if status == 204 || text.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("the API's answer is not JSON: {e}"))
    }
}

pub use shoal_api_types::seg;
