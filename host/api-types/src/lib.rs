//! # shoal-api-types: the request and response types of `/api/v1`
//!
//! One definition of every body the REST API takes and gives, shared by the server
//! (`shoal-api`), the cluster proxy (`shoal-proxy`), the MCP server (`shoal-mcp`) and the
//! CLI client, so a field renamed on one side cannot silently become `null` on the
//! other. No axum and no store here: a client links this crate without the server.
//!
//! The proxy serves the same paths as a cluster; the listing types carry an optional
//! `cluster` that only the proxy fills in.

pub mod auth;
pub mod clusters;
pub mod datasources;
pub mod definitions;
pub mod error;
pub mod imports;
pub mod instances;
pub mod jobs;
pub mod plugins;
pub mod projects;
pub mod schedules;
pub mod system;
pub mod users;

pub use error::ErrorBody;

/// The request header that makes `POST .../runs` idempotent: the same key returns the
/// run it started the first time, never a second one.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Percent-encode one path segment or query value (everything but RFC 3986's
/// unreserved characters), for clients building `/api/v1` paths from names.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
