//! The routing engine: which clusters may take a run of a definition, in the order to
//! try them (the route's policy, then its failover list).
//!
//! A cluster is eligible only when its last status answered, it is not unreachable, and
//! it has every task type the definition uses (at the pinned version, where pinned).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use shoal_api_types::clusters::ClusterHealth;
use shoal_model::task::task_type_matches;

use crate::clusters::{Cluster, Clusters};
use crate::config::{Policy, RouteConfig};

/// What a definition needs of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    pub task_types: BTreeSet<String>,
    /// Plugin id -> the version its tasks are pinned to.
    pub pins: BTreeMap<String, String>,
}

impl Needs {
    /// The task types a stored definition's spec uses.
    pub fn of_spec(spec: &serde_json::Value, pins: BTreeMap<String, String>) -> Self {
        let task_types = spec["tasks"]
            .as_array()
            .map(|tasks| {
                tasks
                    .iter()
                    .filter_map(|t| t["task_type"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self { task_types, pins }
    }

    /// Why `cluster` cannot run it, or `None` when it can.
    pub fn missing_on(&self, cluster: &Cluster) -> Option<String> {
        let Some(status) = cluster.status() else {
            return Some("its task types are not known yet".into());
        };
        let lacking: Vec<&str> = self
            .task_types
            .iter()
            .filter(|t| !status.task_types.keys().any(|id| task_type_matches(t, id)))
            .map(String::as_str)
            .collect();
        if !lacking.is_empty() {
            return Some(format!("it has no task type {}", lacking.join(", ")));
        }
        for (plugin, version) in &self.pins {
            let has = status
                .task_types
                .iter()
                .filter(|(id, _)| task_type_matches(plugin, id))
                .any(|(_, v)| v.iter().any(|x| x == version));
            if !has {
                return Some(format!("it has no {plugin} {version} (pinned)"));
            }
        }
        None
    }
}

/// The clusters to try for one run, best first; or why there is none.
pub fn candidates(
    clusters: &Clusters,
    route: Option<&RouteConfig>,
    needs: &Needs,
    run_key: &str,
    asked: Option<&str>,
    exclude: &[String],
) -> Result<Vec<Arc<Cluster>>, String> {
    let mut why_not = Vec::new();
    let usable = |c: &Arc<Cluster>, why_not: &mut Vec<String>| -> bool {
        if exclude.iter().any(|e| e == c.name()) {
            why_not.push(format!("{}: already lost this run", c.name()));
            return false;
        }
        if c.health() == ClusterHealth::Unreachable {
            why_not.push(format!("{}: unreachable ({})", c.name(), c.view().reason));
            return false;
        }
        if let Some(missing) = needs.missing_on(c) {
            why_not.push(format!("{}: {missing}", c.name()));
            return false;
        }
        true
    };
    if let Some(name) = asked {
        let c = clusters
            .get(name)
            .ok_or_else(|| format!("no cluster `{name}`"))?;
        return if usable(c, &mut why_not) {
            Ok(vec![c.clone()])
        } else {
            Err(format!("cluster {}", why_not.join("; ")))
        };
    }
    let all: Vec<&Arc<Cluster>> = clusters.all().iter().collect();
    let mut order: Vec<&Arc<Cluster>> = match route {
        None => by_load(all),
        Some(r) => match r.policy {
            Policy::Pinned => all
                .into_iter()
                .filter(|c| Some(c.name()) == r.cluster.as_deref())
                .collect(),
            Policy::Labels => by_load(
                all.into_iter()
                    .filter(|c| {
                        r.labels
                            .iter()
                            .all(|(k, v)| c.config.labels.get(k) == Some(v))
                    })
                    .collect(),
            ),
            Policy::LeastLoaded => by_load(all),
            Policy::Weighted => by_weight(all, run_key),
        },
    };
    if let Some(r) = route {
        for f in &r.failover {
            if let Some(c) = clusters.get(f) {
                order.push(c);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let picked: Vec<Arc<Cluster>> = order
        .into_iter()
        .filter(|c| seen.insert(c.name().to_owned()))
        .filter(|c| usable(c, &mut why_not))
        .cloned()
        .collect();
    if picked.is_empty() {
        let why = if why_not.is_empty() {
            "the route names no cluster".to_owned()
        } else {
            why_not.join("; ")
        };
        return Err(format!("no cluster can take this run: {why}"));
    }
    Ok(picked)
}

/// Healthy before degraded, then most free slots, shortest queue, fewest running.
fn by_load(mut list: Vec<&Arc<Cluster>>) -> Vec<&Arc<Cluster>> {
    list.sort_by_cached_key(|c| {
        let s = c.status().unwrap_or_default();
        (
            c.health() != ClusterHealth::Healthy,
            -s.slots_free,
            s.queued_runs,
            s.running_instances,
            c.name().to_owned(),
        )
    });
    list
}

/// A weighted random order that is the same for the same run key (so a retried
/// forward prefers the same cluster): each cluster draws u in (0,1) from a hash of
/// (key, name), and clusters sort by u^(1/weight), largest first.
fn by_weight<'a>(mut list: Vec<&'a Arc<Cluster>>, key: &str) -> Vec<&'a Arc<Cluster>> {
    let score = |c: &Cluster| -> f64 {
        let h = Sha256::digest(format!("{key}\0{}", c.name()).as_bytes());
        let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
        let u = (n as f64 + 1.0) / (u64::MAX as f64 + 2.0);
        u.powf(1.0 / f64::from(c.config.weight.max(1)))
    };
    list.sort_by(|a, b| score(b).total_cmp(&score(a)));
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;
    use shoal_api_types::clusters::ClusterStatus;

    fn cluster(name: &str, weight: u32, labels: &[(&str, &str)]) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            url: "http://127.0.0.1:1".into(),
            token: "sealed:x:y".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            weight,
        }
    }

    #[test]
    fn weights_spread_runs_in_proportion_and_stay_put_per_key() {
        let clusters = Clusters::new(
            vec![
                (cluster("a", 1, &[]), 1, String::new()),
                (cluster("b", 3, &[]), 2, String::new()),
            ],
            std::time::Duration::from_secs(1),
        );
        let all: Vec<&Arc<Cluster>> = clusters.all().iter().collect();
        let mut firsts = BTreeMap::<String, u32>::new();
        for i in 0..4000 {
            let key = format!("run-{i}");
            let first = by_weight(all.clone(), &key)[0].name().to_owned();
            assert_eq!(by_weight(all.clone(), &key)[0].name(), first);
            *firsts.entry(first).or_default() += 1;
        }
        let b = f64::from(firsts["b"]) / 4000.0;
        assert!(
            (0.70..0.80).contains(&b),
            "b should take about 3/4: {firsts:?}"
        );
    }

    #[test]
    fn needs_name_what_is_missing() {
        let clusters = Clusters::new(
            vec![(cluster("a", 1, &[]), 1, String::new())],
            std::time::Duration::from_secs(1),
        );
        let c = &clusters.all()[0];
        let needs = Needs::of_spec(
            &serde_json::json!({"tasks": [{"task_type": "Shell"}, {"task_type": "Flink"}]}),
            BTreeMap::new(),
        );
        assert!(needs.missing_on(c).unwrap().contains("not known"));
        *c.view.write().unwrap() = shoal_api_types::clusters::ClusterView {
            status: Some(ClusterStatus {
                task_types: [("shell".to_owned(), vec!["0.1.0".to_owned()])].into(),
                ..Default::default()
            }),
            ..c.view()
        };
        assert_eq!(needs.missing_on(c).unwrap(), "it has no task type Flink");
    }
}
