//! # shoal-mcp: Shoal as a Model Context Protocol server
//!
//! The tools are a thin, typed layer over the REST API (`/api/v1`) of one `shoal
//! server` or `shoal proxy`, called with the MCP caller's own token: the token decides
//! what an agent may see and do, exactly as for the CLI, and nothing here can reach
//! further than the API does. Served three ways with the same tools:
//! streamable HTTP at `/mcp` on a server and on a proxy ([`router`]), and stdio
//! (`shoal mcp`, [`serve_stdio`]).
//!
//! Every tool that changes something takes `confirm`; without `confirm: true` it does
//! nothing and answers with a preview of what it would do, so an agent (or the human
//! behind it) sees the effect before it happens.

mod api;
mod tools;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub use tools::ShoalMcp;

/// `/mcp` for a server or proxy whose API answers at `api_base` (its own address).
/// Requests without a bearer token are refused before they reach MCP.
pub fn router(api_base: &str) -> axum::Router {
    let api = Arc::new(api::Api::new(api_base));
    let config = StreamableHttpServerConfig::default()
        // Stateless: every POST stands alone, so any server behind a balancer can take
        // it and nothing is kept per agent.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(Vec::<String>::new());
    let service: StreamableHttpService<ShoalMcp, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(ShoalMcp::new(api.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(require_token))
}

async fn require_token(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !req.uri().path().starts_with("/mcp") {
        return next.run(req).await;
    }
    let has_token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if has_token {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(shoal_api_types::ErrorBody {
                code: "unauthenticated".into(),
                message: "MCP needs `Authorization: Bearer TOKEN` (a Shoal API token)".into(),
            }),
        )
            .into_response()
    }
}

/// Serve MCP on stdin/stdout for a server or proxy at `api_base`, acting with `token`.
pub async fn serve_stdio(api_base: &str, token: String) -> anyhow::Result<()> {
    let api = Arc::new(api::Api::new(api_base));
    let running = ShoalMcp::new(api, Some(token))
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}
