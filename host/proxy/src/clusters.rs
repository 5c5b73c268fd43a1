//! The cluster manager: each cluster's config, opened service token, number and last
//! known health and load, pulled from its `GET /api/v1/status` on an interval.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use shoal_api_types::clusters::{ClusterHealth, ClusterStatus, ClusterView};

use crate::config::ClusterConfig;

/// Instances and task instances of cluster `n` are `n * ID_SPACE + id` at the proxy, so
/// every id the proxy hands out names its cluster and stays below 2^53 (JSON-safe).
pub const ID_SPACE: i64 = 1_000_000_000_000;

/// The proxy's id for a cluster's instance (or task instance) `id`.
pub fn qualify(number: i64, id: i64) -> i64 {
    number * ID_SPACE + id
}

/// `(cluster number, the cluster's own id)` of a proxy id; none for an id no cluster
/// could have given.
pub fn split(global: i64) -> Option<(i64, i64)> {
    (global > ID_SPACE).then_some((global / ID_SPACE, global % ID_SPACE))
}

/// One cluster behind the proxy.
pub struct Cluster {
    pub config: ClusterConfig,
    /// Fixed once given (stored): the prefix of its ids at the proxy.
    pub number: i64,
    token: String,
    pub(crate) view: RwLock<ClusterView>,
    /// Checks failed in a row.
    failures: AtomicU32,
}

impl Cluster {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn view(&self) -> ClusterView {
        self.view.read().expect("cluster view lock").clone()
    }

    pub fn health(&self) -> ClusterHealth {
        self.view.read().expect("cluster view lock").health
    }

    pub fn status(&self) -> Option<ClusterStatus> {
        self.view.read().expect("cluster view lock").status.clone()
    }

    /// Take it out of routing now (a forward could not reach it); the next check that
    /// gets an answer brings it back.
    pub fn mark_unreachable(&self, reason: &str) {
        let mut v = self.view.write().expect("cluster view lock");
        if v.health != ClusterHealth::Unreachable {
            tracing::warn!(cluster = %self.config.name, reason, "cluster unreachable");
        }
        v.health = ClusterHealth::Unreachable;
        v.reason = reason.to_owned();
    }
}

/// Every cluster, and the HTTP client that reaches them. Cheap to share.
pub struct Clusters {
    list: Vec<Arc<Cluster>>,
    http: reqwest::Client,
    timeout: Duration,
}

impl Clusters {
    /// `clusters` with their numbers and opened tokens.
    pub fn new(clusters: Vec<(ClusterConfig, i64, String)>, timeout: Duration) -> Self {
        let list = clusters
            .into_iter()
            .map(|(config, number, token)| {
                let view = ClusterView {
                    name: config.name.clone(),
                    url: config.url.trim_end_matches('/').to_owned(),
                    labels: config.labels.clone(),
                    weight: config.weight,
                    health: ClusterHealth::Unreachable,
                    reason: "not checked yet".into(),
                    last_seen_at: None,
                    latency_ms: None,
                    status: None,
                };
                Arc::new(Cluster {
                    config,
                    number,
                    token,
                    view: RwLock::new(view),
                    failures: AtomicU32::new(0),
                })
            })
            .collect();
        Self {
            list,
            // Connections are pooled per cluster; one slow cluster cannot hold the others.
            http: reqwest::Client::builder()
                .connect_timeout(timeout)
                .build()
                .expect("the HTTP client builds"),
            timeout,
        }
    }

    pub fn all(&self) -> &[Arc<Cluster>] {
        &self.list
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.list.iter().find(|c| c.config.name == name)
    }

    pub fn by_number(&self, number: i64) -> Option<&Arc<Cluster>> {
        self.list.iter().find(|c| c.number == number)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A request to `path` under the cluster's `/api/v1`, with its service token and the
    /// per-call timeout.
    pub fn request(
        &self,
        cluster: &Cluster,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}/api/v1{path}", cluster.config.url.trim_end_matches('/'));
        self.http
            .request(method, url)
            .bearer_auth(&cluster.token)
            .timeout(self.timeout)
    }

    /// Pull every cluster's status at once and update its health.
    pub async fn check_all(&self) {
        futures_util::future::join_all(self.list.iter().map(|c| self.check(c))).await;
    }

    async fn check(&self, cluster: &Cluster) {
        let started = Instant::now();
        let answer = async {
            let resp = self
                .request(cluster, Method::GET, "/status")
                .send()
                .await
                .map_err(|e| describe(&e))?;
            if !resp.status().is_success() {
                return Err(format!(
                    "status check answered HTTP {}",
                    resp.status().as_u16()
                ));
            }
            let body = crate::upstream::read_bounded(resp, 1 << 20).await?;
            serde_json::from_slice::<ClusterStatus>(&body)
                .map_err(|e| format!("status check: unreadable answer: {e}"))
        }
        .await;
        let latency = started.elapsed();
        let mut v = cluster.view.write().expect("cluster view lock");
        match answer {
            Ok(status) => {
                cluster.failures.store(0, Ordering::Relaxed);
                let (health, reason) = judge(&status, latency, self.timeout);
                if v.health != health {
                    tracing::info!(cluster = %cluster.config.name, health = health.as_str(), %reason, "cluster health changed");
                }
                v.health = health;
                v.reason = reason;
                v.last_seen_at = Some(shoal_store::now_ms());
                v.latency_ms = Some(latency.as_millis() as u64);
                v.status = Some(status);
            }
            Err(reason) => {
                cluster.failures.fetch_add(1, Ordering::Relaxed);
                if v.health != ClusterHealth::Unreachable {
                    tracing::warn!(cluster = %cluster.config.name, %reason, "cluster unreachable");
                }
                v.health = ClusterHealth::Unreachable;
                v.reason = reason;
            }
        }
    }
}

/// Healthy, or degraded with the reason, from a status that did arrive.
fn judge(status: &ClusterStatus, latency: Duration, timeout: Duration) -> (ClusterHealth, String) {
    let degraded = |r: String| (ClusterHealth::Degraded, r);
    if status.api_version != "v1" {
        return degraded(format!(
            "speaks API {}, this proxy speaks v1",
            status.api_version
        ));
    }
    if status.slots == 0 {
        return degraded("no task slots (no live worker)".into());
    }
    if status.slots_free == 0 {
        return degraded(format!(
            "every one of {} slots is busy, {} runs queued",
            status.slots, status.queued_runs
        ));
    }
    if latency > timeout / 2 {
        return degraded(format!("slow: its status took {} ms", latency.as_millis()));
    }
    (ClusterHealth::Healthy, String::new())
}

/// A transport error in a few words.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_cluster() {
        let g = qualify(3, 42);
        assert_eq!(g, 3_000_000_000_042);
        assert_eq!(split(g), Some((3, 42)));
        assert_eq!(split(42), None);
        assert!(qualify(9000, ID_SPACE - 1) < 1 << 53);
    }

    #[test]
    fn health_says_why() {
        let ok = ClusterStatus {
            api_version: "v1".into(),
            slots: 4,
            slots_free: 2,
            ..Default::default()
        };
        let t = Duration::from_secs(2);
        assert_eq!(judge(&ok, Duration::ZERO, t).0, ClusterHealth::Healthy);
        let full = ClusterStatus {
            slots_free: 0,
            queued_runs: 7,
            ..ok.clone()
        };
        let (h, why) = judge(&full, Duration::ZERO, t);
        assert_eq!(h, ClusterHealth::Degraded);
        assert!(why.contains("7 runs queued"), "{why}");
        let (h, why) = judge(&ok, Duration::from_millis(1500), t);
        assert_eq!(h, ClusterHealth::Degraded);
        assert!(why.contains("slow"), "{why}");
    }
}
