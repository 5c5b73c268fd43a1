//! # shoal-proxy: one `/api/v1` in front of many Shoal clusters
//!
//! - [`config`]: `proxy.toml` (clusters, routes, intervals);
//! - [`clusters`]: the cluster manager (health and load from each cluster's
//!   `GET /api/v1/status`, proxy ids that name their cluster);
//! - [`routing`]: which clusters may take a run, in the order to try them;
//! - [`store`]: the proxy's own rows (outbox, audit log, global schedules).
//!
//! The proxy reaches clusters only through their public REST API, with each cluster's
//! service token.

pub mod clusters;
pub mod config;
pub mod routing;
pub mod store;
