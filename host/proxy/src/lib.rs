//! # shoal-proxy: one `/api/v1` in front of many Shoal clusters
//!
//! - [`config`]: `proxy.toml` (clusters, routes, intervals);
//! - [`clusters`]: the cluster manager (health and load from each cluster's
//!   `GET /api/v1/status`, proxy ids that name their cluster);
//! - [`routing`]: which clusters may take a run, in the order to try them;
//! - [`store`]: the proxy's own rows (outbox, audit log, global schedules);
//! - [`upstream`]: calling one cluster, or all of them with per-cluster timeouts;
//! - [`outbox`]: runs written before the answer, forwarded with an `Idempotency-Key`
//!   until a cluster acknowledges them;
//! - [`sync`]: definitions copied to every cluster their route can pick, drift repaired;
//! - [`schedules`]: global schedules, one fire per fire time;
//! - [`routes`]: the API, on the same paths as a cluster's.
//!
//! The proxy reaches clusters only through their public REST API, with each cluster's
//! service token; its callers authenticate with the proxy's own tokens, and it checks
//! their project permissions itself before forwarding anything.

pub mod clusters;
pub mod config;
pub mod outbox;
pub mod routes;
pub mod routing;
pub mod schedules;
pub mod store;
pub mod sync;
pub mod upstream;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use shoal_api::secrets::SecretBox;
use tokio::sync::Notify;

use crate::clusters::Clusters;
use crate::config::ProxyConfig;
use crate::store::ProxyStore;

/// The AAD under which cluster tokens are sealed (with the cluster's name).
const TOKEN_SCOPE: &str = "proxy-cluster-token";

/// The running proxy's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProxyConfig,
    clusters: Clusters,
    store: ProxyStore,
    /// Wakes the outbox forwarder (a run was accepted, a cluster came back).
    outbox_wake: Notify,
    /// Run keys being forwarded right now: the request that accepted a run and the
    /// background forwarder never send the same run at once.
    in_flight: Mutex<HashSet<String>>,
    /// What each definition needs of a cluster, read again after a few seconds.
    needs: outbox::NeedsCache,
    /// The routes in force: those set through the API first (they win), then
    /// proxy.toml's.
    routes: std::sync::RwLock<Vec<(config::RouteConfig, &'static str)>>,
    started_at: Instant,
}

/// Seal a cluster's service token for `proxy.toml` with the key in `data_dir`.
pub fn seal_token(data_dir: &Path, cluster: &str, token: &str) -> anyhow::Result<String> {
    let sealer = SecretBox::load_or_create(&data_dir.join("proxy.key"))?;
    let (nonce, ct) = sealer.seal(TOKEN_SCOPE, cluster, token);
    Ok(format!("sealed:{nonce}:{ct}"))
}

fn open_token(sealer: &SecretBox, cluster: &str, sealed: &str) -> anyhow::Result<String> {
    let rest = sealed
        .strip_prefix("sealed:")
        .context("not a sealed token")?;
    let (nonce, ct) = rest
        .split_once(':')
        .context("a sealed token is `sealed:NONCE:CIPHERTEXT`")?;
    sealer.open(TOKEN_SCOPE, cluster, nonce, ct).with_context(|| {
        format!(
            "cluster `{cluster}`: its token does not open with this proxy's key (sealed for another cluster or another proxy?)"
        )
    })
}

impl Proxy {
    /// Open the store, number the clusters, open their tokens and make the first admin.
    pub async fn open(config: ProxyConfig, data_dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let store = match &config.database {
            Some(url) => shoal_store::Store::open(url)
                .await
                .with_context(|| format!("opening the proxy's store {url}"))?,
            None => {
                let path = data_dir.join("proxy.db");
                shoal_store::Store::open_sqlite(&path)
                    .await
                    .with_context(|| format!("opening the proxy's store {}", path.display()))?
            }
        };
        let store = ProxyStore::new(store);
        let sealer = SecretBox::load_or_create(&data_dir.join("proxy.key"))?;
        let mut clusters = Vec::new();
        for c in &config.clusters {
            let number = store.cluster_number(&c.name).await?;
            let token = open_token(&sealer, &c.name, &c.token)?;
            clusters.push((c.clone(), number, token));
        }
        let clusters = Clusters::new(clusters, config.cluster_timeout());
        let proxy = Self {
            inner: Arc::new(Inner {
                config,
                clusters,
                store,
                outbox_wake: Notify::new(),
                in_flight: Mutex::new(HashSet::new()),
                needs: Default::default(),
                routes: std::sync::RwLock::new(Vec::new()),
                started_at: Instant::now(),
            }),
        };
        proxy.reload_routes().await?;
        Ok(proxy)
    }

    /// Read the API's routes from the store and put them in force before proxy.toml's.
    pub async fn reload_routes(&self) -> anyhow::Result<()> {
        let mut routes = Vec::new();
        for (project, workflow, text) in self.store().routes().await? {
            let route: config::RouteConfig = serde_json::from_str(&text).with_context(|| {
                format!("the stored route of {project}/{workflow} does not read")
            })?;
            routes.push((route, "api"));
        }
        routes.extend(self.config().routes.iter().cloned().map(|r| (r, "config")));
        *self.inner.routes.write().expect("routes lock") = routes;
        Ok(())
    }

    /// Every route in force, with where it comes from (`api` or `config`).
    pub fn routes(&self) -> Vec<(config::RouteConfig, &'static str)> {
        self.inner.routes.read().expect("routes lock").clone()
    }

    /// The route for `workflow` of `project`: the definition's own, else the project's
    /// (at each level one set through the API wins over proxy.toml's).
    pub fn route(&self, project: &str, workflow: &str) -> Option<config::RouteConfig> {
        let routes = self.inner.routes.read().expect("routes lock");
        routes
            .iter()
            .find(|(r, _)| r.project == project && r.workflow.as_deref() == Some(workflow))
            .or_else(|| {
                routes
                    .iter()
                    .find(|(r, _)| r.project == project && r.workflow.is_none())
            })
            .map(|(r, _)| r.clone())
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.inner.config
    }
    pub fn clusters(&self) -> &Clusters {
        &self.inner.clusters
    }
    pub fn store(&self) -> &ProxyStore {
        &self.inner.store
    }
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started_at.elapsed()
    }

    /// Create the first admin when the store has no user: with `admin-token` when the
    /// config gives one, else a new token printed once.
    pub async fn bootstrap_admin(&self) -> anyhow::Result<()> {
        let configured = self.config().admin_token.as_deref();
        Ok(shoal_api::auth::bootstrap_admin(self.store().store(), configured).await?)
    }

    /// Serve the API on `listener` and run the cluster checks, the outbox forwarder,
    /// the definition sync and the global schedules until `stop` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        extra: axum::Router,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // A first check before answering anything: routing needs each cluster's types.
        self.clusters().check_all().await;
        let checks = {
            let p = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(p.config().health_interval());
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let before: Vec<_> = p.clusters().all().iter().map(|c| c.health()).collect();
                    p.clusters().check_all().await;
                    let after: Vec<_> = p.clusters().all().iter().map(|c| c.health()).collect();
                    if before != after {
                        // A cluster came back or went away: pending runs may move now.
                        p.inner.outbox_wake.notify_one();
                    }
                }
            })
        };
        let forwarder = tokio::spawn(outbox::run(self.clone()));
        let syncer = tokio::spawn(sync::run(self.clone()));
        let fires = tokio::spawn(schedules::run(self.clone()));
        let app = routes::router(self.clone()).merge(extra);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
        checks.abort();
        forwarder.abort();
        syncer.abort();
        fires.abort();
        served.context("serving the proxy API")
    }
}
