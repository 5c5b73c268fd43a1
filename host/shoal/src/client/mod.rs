//! The CLI as a client of `shoal server`: the same commands, sent over HTTP.
//!
//! A command talks to a server when given `--server URL` (or `$SHOAL_SERVER`) or
//! `--profile NAME`; commands that only make sense against a server (apply, backfill,
//! schedules, tokens, ...) fall back to the default profile of `client.toml`, written
//! by `shoal login`. Tables by default, `--json` for scripts.

pub mod commands;
pub mod profile;

use anyhow::{Context as _, bail};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An API client for one server and token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// The project commands act on unless told otherwise.
    pub project: String,
}

impl Client {
    pub fn new(server: &str, token: Option<String>, project: String) -> anyhow::Result<Self> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--server `{server}`: expected an http:// or https:// URL");
        }
        Ok(Self {
            http: reqwest::Client::builder()
                .build()
                .context("building the HTTP client")?,
            base,
            token,
            project,
        })
    }

    /// The server's base URL (without `/api/v1`).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Send, and turn an error answer into an error naming the server's code and message.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<Value>(&text) {
            Ok(v) => (
                v["code"].as_str().unwrap_or("error").to_owned(),
                v["message"].as_str().unwrap_or(&text).to_owned(),
            ),
            Err(_) => ("error".into(), text),
        };
        if status == StatusCode::UNAUTHORIZED {
            bail!("{message} ({code}); give a token with --token, $SHOAL_TOKEN or `shoal login`");
        }
        bail!("{message} ({code}, HTTP {})", status.as_u16())
    }

    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.send(req).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return serde_json::from_value(Value::Null).context("empty answer");
        }
        resp.json().await.context("reading the server's answer")
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.json(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.json(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.json(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.json(Method::DELETE, path, None).await
    }
}

pub use shoal_api_types::seg;
