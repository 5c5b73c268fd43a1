//! The operator's Flink clusters and resources: `[flink]` in the policy.
//!
//! ```toml
//! [flink]
//! default-cluster = "main"
//! resource-dir = "/srv/shoal/flink-jars"     # where tasks' main_jar files live
//! cdc-dist-jar = "/opt/flink-cdc-3.3.0/lib/flink-cdc-dist-3.3.0.jar"
//! savepoint-dir = "file:///srv/flink/savepoints"   # default target of savepoints
//!
//! [flink.clusters.main]
//! url = "http://10.0.4.7:8081"             # the JobManager's REST endpoint
//! projects = ["analytics", "etl"]           # who may use it; absent: every project
//! ```
//!
//! A plugin whose manifest asks for `flink = true` (the built-in `flink` and `flink-cdc`)
//! is granted HTTP to each cluster's address, reads the cluster URLs through
//! `context.setting("flink.cluster.NAME")` (only those its task's project may use), and
//! sees `resource-dir` and the CDC jar's folder read-only. A task names a cluster, never
//! a URL, so what a project reaches is the operator's decision alone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::grant::HostPattern;

/// Where the resource directory appears inside the sandbox.
pub const GUEST_RESOURCES: &str = "/resources";
/// Where the Flink CDC dist jar's folder appears inside the sandbox.
pub const GUEST_CDC_DIR: &str = "/flink-cdc";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlinkSettings {
    /// The cluster of a task that names none.
    pub default_cluster: Option<String>,
    /// Jars tasks may submit (`main_jar`, a path inside it).
    pub resource_dir: Option<PathBuf>,
    /// The Flink CDC dist jar FlinkCDC tasks run (`org.apache.flink.cdc.cli.CliExecutor`).
    pub cdc_dist_jar: Option<PathBuf>,
    /// Where savepoints go when an action names no directory.
    pub savepoint_dir: Option<String>,
    #[serde(default)]
    pub clusters: BTreeMap<String, FlinkCluster>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlinkCluster {
    /// The JobManager's REST endpoint, `http://host:port` (or https).
    pub url: String,
    /// Projects that may use it; empty (the default) lets every project.
    #[serde(default)]
    pub projects: Vec<String>,
}

impl FlinkCluster {
    pub fn allows(&self, project: Option<&str>) -> bool {
        self.projects.is_empty()
            || self
                .projects
                .iter()
                .any(|p| p == "*" || Some(p.as_str()) == project)
    }

    /// The `host:port` the cluster's URL names, as an allow-list pattern.
    pub fn authority(&self) -> Result<HostPattern, String> {
        let rest = self
            .url
            .strip_prefix("http://")
            .map(|r| (r, 80))
            .or_else(|| self.url.strip_prefix("https://").map(|r| (r, 443)));
        let Some((rest, default_port)) = rest else {
            return Err(format!(
                "url `{}`: must start with http:// or https://",
                self.url
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("url `{}`: names no host", self.url));
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:{default_port}")
        } else {
            authority.to_owned()
        };
        HostPattern::parse(&with_port).map_err(|e| format!("url `{}`: {e}", self.url))
    }
}

impl FlinkSettings {
    /// Problems with the table, each naming its field.
    pub fn check(&self) -> Result<(), String> {
        for (name, c) in &self.clusters {
            c.authority()
                .map_err(|e| format!("[flink.clusters.{name}] field `url`: {e}"))?;
        }
        if let Some(d) = &self.default_cluster
            && !self.clusters.contains_key(d)
        {
            return Err(format!(
                "[flink] field `default-cluster`: no [flink.clusters.{d}] table"
            ));
        }
        for (field, path) in [
            ("resource-dir", &self.resource_dir),
            ("cdc-dist-jar", &self.cdc_dist_jar),
        ] {
            if path.as_ref().is_some_and(|p| !p.is_absolute()) {
                return Err(format!("[flink] field `{field}`: must be an absolute path"));
            }
        }
        Ok(())
    }

    /// The settings a plugin reads for a task of `project`: `flink.cluster.NAME` (URL)
    /// for each cluster the project may use, `flink.default-cluster`, and where the
    /// resources and the CDC jar appear in the sandbox.
    pub fn settings_for(&self, project: Option<&str>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, c) in &self.clusters {
            if c.allows(project) {
                out.insert(format!("flink.cluster.{name}"), c.url.clone());
            }
        }
        if let Some(d) = &self.default_cluster {
            out.insert("flink.default-cluster".into(), d.clone());
        }
        if self.resource_dir.is_some() {
            out.insert("flink.resources".into(), GUEST_RESOURCES.into());
        }
        if let Some(jar) = self.cdc_dist_jar.as_ref().and_then(|p| p.file_name()) {
            out.insert(
                "flink.cdc-dist-jar".into(),
                format!("{GUEST_CDC_DIR}/{}", jar.to_string_lossy()),
            );
        }
        if let Some(d) = &self.savepoint_dir {
            out.insert("flink.savepoint-dir".into(), d.clone());
        }
        out
    }

    /// The authorities of the clusters `project` may not use.
    pub fn refused_for(&self, project: Option<&str>) -> Vec<HostPattern> {
        self.clusters
            .values()
            .filter(|c| !c.allows(project))
            .filter_map(|c| c.authority().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FlinkSettings {
        toml::from_str(
            r#"
default-cluster = "main"
resource-dir = "/srv/jars"
cdc-dist-jar = "/opt/cdc/lib/flink-cdc-dist-3.3.0.jar"
[clusters.main]
url = "http://127.0.0.1:8081"
[clusters.secret]
url = "https://flink.internal/"
projects = ["etl"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_project_sees_only_its_clusters() {
        let s = settings();
        s.check().unwrap();
        let other = s.settings_for(Some("analytics"));
        assert_eq!(other["flink.cluster.main"], "http://127.0.0.1:8081");
        assert!(!other.contains_key("flink.cluster.secret"));
        assert_eq!(
            other["flink.cdc-dist-jar"],
            "/flink-cdc/flink-cdc-dist-3.3.0.jar"
        );
        assert_eq!(other["flink.resources"], "/resources");
        let etl = s.settings_for(Some("etl"));
        assert_eq!(etl["flink.cluster.secret"], "https://flink.internal/");
        assert_eq!(
            s.refused_for(Some("analytics")),
            vec![HostPattern::parse("flink.internal:443").unwrap()]
        );
        assert!(s.refused_for(Some("etl")).is_empty());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut s = settings();
        s.default_cluster = Some("nope".into());
        assert!(s.check().unwrap_err().contains("default-cluster"));
        let mut s = settings();
        s.clusters.get_mut("main").unwrap().url = "ftp://x".into();
        assert!(
            s.check()
                .unwrap_err()
                .contains("[flink.clusters.main] field `url`")
        );
        let mut s = settings();
        s.resource_dir = Some("jars".into());
        assert!(s.check().unwrap_err().contains("resource-dir"));
    }
}
