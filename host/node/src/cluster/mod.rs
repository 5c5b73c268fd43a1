//! Distributed mode: this process as one node of a cluster that shares a PostgreSQL
//! store — a [`master`] (workflow instances, API) or a [`worker`] (task attempts).
//!
//! Both register in the store's node registry, keep their lease by heartbeat and talk
//! over the RPC of `shoal-rpc`, authenticated by the cluster secret. SQLite stays the
//! single-node default: a cluster needs one database every node reaches, with row
//! locks, which is what PostgreSQL gives and a SQLite file does not.

pub mod master;
pub mod plugins;
mod probe;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use shoal_registry::RegistryConfig;
use shoal_store::{Backend, OpenOptions, Store};

pub use master::MasterNode;
pub use worker::{WorkerConfig, WorkerNode};

/// Task types a master runs itself: they steer the run (branch, wait for another
/// workflow, start a child run) through the master's own hook, and do no work a worker
/// could take off it. DolphinScheduler runs its logic tasks in the master too.
pub const MASTER_TASK_TYPES: [&str; 4] = ["switch", "condition", "sub-workflow", "dependent"];

/// What every node of a cluster is configured with.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The shared store: a `postgres://` URL.
    pub database: String,
    /// Where this node's RPC listens; port 0 picks a free one.
    pub rpc_listen: SocketAddr,
    /// This node's name in the registry [default: `<role>-<host>-<rpc port>`]. Keep it
    /// across restarts: a node that comes back under its name is the same node, in a
    /// new generation.
    pub node_id: Option<String>,
    /// Shared by every node; each RPC request carries it.
    pub secret: String,
    pub registry: RegistryConfig,
    /// How long one RPC request may take.
    pub rpc_timeout: Duration,
}

impl ClusterConfig {
    pub(crate) fn rpc(&self) -> shoal_rpc::RpcConfig {
        shoal_rpc::RpcConfig {
            secret: self.secret.clone(),
            timeout: self.rpc_timeout,
        }
    }

    pub(crate) fn node_id(&self, role: &str, bound: SocketAddr) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = shoal_master::MasterConfig::default().host;
            format!("{role}-{host}-{}", bound.port())
        })
    }

    /// Check what can be checked before anything starts.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.secret.trim().len() < 16 {
            bail!(
                "the cluster secret must be at least 16 characters (set `cluster_secret` in server.toml or $SHOAL_CLUSTER_SECRET, the same on every node)"
            );
        }
        Ok(())
    }
}

/// Open the cluster's store: PostgreSQL only. No transaction of this node outlives its
/// `lease` waiting on it, so a paused node cannot hold off the node that takes over.
pub async fn open_cluster_store(url: &str, lease: Duration) -> anyhow::Result<Store> {
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        bail!(
            "distributed mode needs PostgreSQL: `--db {}` is not a postgres:// URL. SQLite stays the single-node default: run `shoal server` (or `shoal run`) on it instead",
            redact(url)
        );
    }
    let opts = OpenOptions {
        hold_limit: Some(lease),
    };
    let store = Store::open_with(url, opts)
        .await
        .with_context(|| format!("opening the store at {}", redact(url)))?;
    if store.backend() != Backend::Postgres {
        bail!("distributed mode needs PostgreSQL");
    }
    Ok(store)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Serve `router` on `listener` until the returned handle is aborted.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the RPC server stopped: {e}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_is_refused_with_a_clear_message() {
        let Err(err) = open_cluster_store("sqlite:///tmp/x.db", Duration::from_secs(10)).await
        else {
            panic!("SQLite must be refused");
        };
        let err = err.to_string();
        assert!(err.contains("needs PostgreSQL"), "{err}");
        assert!(err.contains("shoal server"), "{err}");
    }

    #[test]
    fn passwords_are_not_echoed() {
        assert_eq!(
            redact("postgres://u:secret@127.0.0.1/db"),
            "postgres://u:***@127.0.0.1/db"
        );
        assert_eq!(redact("postgres://127.0.0.1/db"), "postgres://127.0.0.1/db");
    }
}
