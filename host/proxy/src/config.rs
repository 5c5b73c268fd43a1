//! `proxy.toml`: the clusters behind the proxy, the routes that pick among them, and
//! the proxy's own listen address, store and intervals.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProxyConfig {
    #[serde(default = "default_bind")]
    pub bind: IpAddr,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Where the proxy keeps its key file (sealing cluster tokens) and, by default,
    /// its SQLite store. Default: `proxy-data` beside the config file.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://...`; default `<data-dir>/proxy.db`.
    #[serde(default)]
    pub database: Option<String>,
    /// The first admin's token when the store has no user yet (else one is printed).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// How often each cluster's health and load are pulled.
    #[serde(default = "default_health_ms")]
    pub health_interval_ms: u64,
    /// How long one call to a cluster may take (a listing leaves a slower cluster out
    /// and says so).
    #[serde(default = "default_timeout_ms")]
    pub cluster_timeout_ms: u64,
    /// How long a forwarded run's answer may take before the forward counts as lost
    /// (it is retried with the same key, so a late answer starts nothing twice).
    #[serde(default = "default_forward_ms")]
    pub forward_timeout_ms: u64,
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// One cluster: a `shoal server` (or a cluster's master) reached by its public API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterConfig {
    pub name: String,
    /// Its API base URL, e.g. `http://127.0.0.1:8470`.
    pub url: String,
    /// An admin token of that cluster, sealed with the proxy's key:
    /// `shoal proxy seal-token --config proxy.toml --cluster NAME` prints it.
    pub token: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// How a route picks a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Always `cluster` (then the failover list).
    Pinned,
    /// The least loaded of the clusters carrying every one of `labels`.
    Labels,
    /// The cluster with the most free slots, then the shortest queue.
    LeastLoaded,
    /// Spread by `weight`; the same run key always lands on the same choice.
    Weighted,
}

/// Where a project's (or one definition's) runs go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    pub project: String,
    /// Only this definition; a definition's route wins over its project's.
    #[serde(default)]
    pub workflow: Option<String>,
    pub policy: Policy,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Tried in this order after the policy's own choices.
    #[serde(default)]
    pub failover: Vec<String>,
}

fn default_bind() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
fn default_port() -> u16 {
    8480
}
fn default_health_ms() -> u64 {
    2_000
}
fn default_timeout_ms() -> u64 {
    2_000
}
fn default_forward_ms() -> u64 {
    5_000
}
fn default_weight() -> u32 {
    1
}

/// A problem in `proxy.toml`, naming the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ProxyConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<(Self, PathBuf), ConfigError> {
        let err = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        if text.len() > 1 << 20 {
            return Err(err("larger than 1 MiB".into()));
        }
        let config: ProxyConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        config.check().map_err(err)?;
        let data_dir = match &config.data_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => path.parent().unwrap_or(Path::new(".")).join(d),
            None => path.parent().unwrap_or(Path::new(".")).join("proxy-data"),
        };
        Ok((config, data_dir))
    }

    fn check(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        for (i, c) in self.clusters.iter().enumerate() {
            let at = format!("clusters[{i}]");
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "{at}.name: `{}`: use letters, digits, - and _",
                    c.name
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(format!("{at}.name: `{}` is listed twice", c.name));
            }
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                return Err(format!(
                    "{at}.url: `{}`: expected an http:// or https:// URL",
                    c.url
                ));
            }
            if !c.token.starts_with("sealed:") {
                return Err(format!(
                    "{at}.token: give the token sealed (`shoal proxy seal-token --cluster {}`), never in the clear",
                    c.name
                ));
            }
            if c.weight == 0 {
                return Err(format!("{at}.weight: must be at least 1"));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            self.check_route(r)
                .map_err(|e| format!("routes[{i}].{e}"))?;
        }
        Ok(())
    }

    /// A route's problem as `field: message`, against this config's clusters.
    pub fn check_route(&self, r: &RouteConfig) -> Result<(), String> {
        let known = |name: &str| self.clusters.iter().any(|c| c.name == name);
        if r.project.is_empty() {
            return Err("project: empty".into());
        }
        match (r.policy, &r.cluster) {
            (Policy::Pinned, None) => {
                return Err("cluster: a pinned route names its cluster".into());
            }
            (Policy::Pinned, Some(c)) if !known(c) => {
                return Err(format!("cluster: no cluster `{c}` in [[clusters]]"));
            }
            (p, Some(_)) if p != Policy::Pinned => {
                return Err("cluster: only a pinned route names a cluster".into());
            }
            _ => {}
        }
        if r.policy == Policy::Labels && r.labels.is_empty() {
            return Err("labels: a labels route lists the labels to match".into());
        }
        for f in &r.failover {
            if !known(f) {
                return Err(format!("failover: no cluster `{f}` in [[clusters]]"));
            }
        }
        Ok(())
    }

    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms.max(100))
    }
    pub fn cluster_timeout(&self) -> Duration {
        Duration::from_millis(self.cluster_timeout_ms.max(50))
    }
    pub fn forward_timeout(&self) -> Duration {
        Duration::from_millis(self.forward_timeout_ms.max(50))
    }

    /// The route for `workflow` of `project`: the definition's own, else the project's.
    pub fn route(&self, project: &str, workflow: &str) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .find(|r| r.project == project && r.workflow.as_deref() == Some(workflow))
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| r.project == project && r.workflow.is_none())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ProxyConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proxy.toml");
        std::fs::write(&p, text).unwrap();
        ProxyConfig::load(&p)
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }

    const TWO: &str = "[[clusters]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\ntoken = \"sealed:x:y\"\n[[clusters]]\nname = \"b\"\nurl = \"http://127.0.0.1:2\"\ntoken = \"sealed:x:y\"\nlabels = { region = \"eu\" }\n";

    #[test]
    fn problems_name_the_field() {
        let e = load(&TWO.replace("sealed:x:y\"\n[[", "plain\"\n[[")).unwrap_err();
        assert!(e.contains("clusters[0].token"), "{e}");
        let e = load(&format!(
            "{TWO}[[routes]]\nproject = \"p\"\npolicy = \"pinned\"\ncluster = \"zz\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("routes[0].cluster") && e.contains("zz"), "{e}");
        let e = load(&format!(
            "{TWO}[[routes]]\nproject = \"p\"\npolicy = \"labels\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("routes[0].labels"), "{e}");
        let e = load(&format!(
            "{TWO}[[routes]]\nproject = \"p\"\npolicy = \"nearest\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("nearest"), "{e}");
        let e = load(&TWO.replace("name = \"b\"", "name = \"a\"")).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn a_definition_route_wins_over_its_project() {
        let c = load(&format!(
            "{TWO}[[routes]]\nproject = \"p\"\npolicy = \"least-loaded\"\n[[routes]]\nproject = \"p\"\nworkflow = \"w\"\npolicy = \"pinned\"\ncluster = \"b\"\nfailover = [\"a\"]\n"
        ))
        .unwrap();
        assert_eq!(c.route("p", "w").unwrap().policy, Policy::Pinned);
        assert_eq!(c.route("p", "other").unwrap().policy, Policy::LeastLoaded);
        assert!(c.route("q", "w").is_none());
    }
}
