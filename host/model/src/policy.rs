//! The operator's policy: a TOML file that narrows what plugins are granted.
//!
//! ```toml
//! [defaults]                 # applies to every plugin
//! process = true             # may plugins start processes at all
//! work-dir = true
//! http-hosts = ["*"]         # hosts plugins may reach (each plugin still only gets
//!                            # the hosts its manifest lists)
//! memory-mb = 256
//! env-passthrough = ["PATH", "HOME", "LANG", "TZ"]
//! sql = true                 # may plugins run statements on the datasources a task names
//!
//! [plugins.shell]            # per plugin id; unset keys fall back to [defaults]
//! process = false
//!
//! [plugins.python]
//! settings = { interpreter = "/opt/python3.12/bin/python3" }   # read by the plugin
//! ```
//!
//! A policy can only take away: the grant is the manifest's request intersected with it.
//! Its top-level `sandbox`, `tenant` and `[process-limits]` say how the processes that
//! plugins start are confined (see [`crate::sandbox`]); `[task-limits]` caps what one
//! task may make the host hold (see [`crate::limits`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::grant::{Grant, HostPattern};
use crate::limits::TaskLimits;
use crate::manifest::PluginManifest;
use crate::sandbox::{
    DEFAULT_TENANT, ProcessLimits, SandboxKind, SandboxPolicy, valid_tenant_name,
};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyRules {
    pub process: Option<bool>,
    pub work_dir: Option<bool>,
    pub http_hosts: Option<Vec<String>>,
    pub memory_mb: Option<u64>,
    pub env_passthrough: Option<Vec<String>>,
    /// May plugins run statements on datasources (`shoal:task/sql`).
    pub sql: Option<bool>,
    /// Values the plugin reads with `context.setting` (e.g. `interpreter` for `python`);
    /// a plugin's table adds to and overrides `[defaults]`.
    pub settings: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OperatorPolicy {
    /// `"bubblewrap"` (the default when unset) or, explicitly, `"none"`.
    #[serde(default)]
    pub sandbox: Option<SandboxKind>,
    /// The OS user task processes run as when the host runs as root.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub process_limits: ProcessLimits,
    #[serde(default)]
    pub task_limits: TaskLimits,
    /// Hours a failed task's work dir is kept for debugging (a succeeded task's goes at
    /// once); default 24.
    #[serde(default)]
    pub keep_failed_work_dirs_h: Option<u64>,
    #[serde(default)]
    pub defaults: PolicyRules,
    #[serde(default)]
    pub plugins: BTreeMap<String, PolicyRules>,
    /// Flink clusters and resources for plugins that ask for `flink` (see
    /// [`crate::flink`]).
    #[serde(default)]
    pub flink: Option<crate::flink::FlinkSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: cannot read policy: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Memory cap when neither policy nor defaults say otherwise.
pub const DEFAULT_MEMORY_MB: u64 = 256;
const DEFAULT_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

impl OperatorPolicy {
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Self, PolicyError> {
        let policy: Self = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let check = |rules: &PolicyRules, table: &str| -> Result<(), PolicyError> {
            for h in rules.http_hosts.iter().flatten() {
                HostPattern::parse(h).map_err(|m| PolicyError::Parse {
                    path: origin.to_path_buf(),
                    message: format!("[{table}] field `http-hosts`: {m}"),
                })?;
            }
            Ok(())
        };
        if let Some(tenant) = &policy.tenant
            && !valid_tenant_name(tenant)
        {
            return Err(PolicyError::Parse {
                path: origin.to_path_buf(),
                message: format!("field `tenant`: `{tenant}` is not a valid OS user name"),
            });
        }
        if let Some(flink) = &policy.flink {
            flink.check().map_err(|message| PolicyError::Parse {
                path: origin.to_path_buf(),
                message,
            })?;
        }
        check(&policy.defaults, "defaults")?;
        for (id, rules) in &policy.plugins {
            check(rules, &format!("plugins.{id}"))?;
        }
        Ok(policy)
    }

    /// How task processes are confined.
    pub fn sandbox(&self) -> SandboxPolicy {
        SandboxPolicy {
            kind: self.sandbox.unwrap_or_default(),
            default_tenant: self
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
            limits: self.process_limits.clone(),
        }
    }

    /// The grant for a plugin: what its manifest asks for, narrowed by this policy.
    pub fn grant_for(&self, manifest: &PluginManifest) -> Grant {
        let specific = self.plugins.get(&manifest.id);
        let pick = |f: fn(&PolicyRules) -> Option<bool>| {
            specific
                .and_then(f)
                .or_else(|| f(&self.defaults))
                .unwrap_or(true)
        };
        let allowed_hosts: Option<Vec<HostPattern>> = specific
            .and_then(|r| r.http_hosts.clone())
            .or_else(|| self.defaults.http_hosts.clone())
            .map(|hosts| {
                hosts
                    .iter()
                    .filter_map(|h| HostPattern::parse(h).ok())
                    .collect()
            });
        let wanted: Vec<HostPattern> = manifest
            .capabilities
            .http_hosts
            .iter()
            .filter_map(|h| HostPattern::parse(h).ok())
            .collect();
        let http_hosts = intersect_hosts(&wanted, allowed_hosts.as_deref());
        let memory_mb = specific
            .and_then(|r| r.memory_mb)
            .or(self.defaults.memory_mb)
            .unwrap_or(DEFAULT_MEMORY_MB);
        let env_passthrough = specific
            .and_then(|r| r.env_passthrough.clone())
            .or_else(|| self.defaults.env_passthrough.clone())
            .unwrap_or_else(|| DEFAULT_ENV.iter().map(|s| (*s).to_owned()).collect());
        let mut settings = self.defaults.settings.clone().unwrap_or_default();
        settings.extend(
            specific
                .and_then(|r| r.settings.clone())
                .unwrap_or_default(),
        );
        Grant {
            process: manifest.capabilities.process && pick(|r| r.process),
            work_dir: manifest.capabilities.work_dir && pick(|r| r.work_dir),
            sql: manifest.capabilities.sql && pick(|r| r.sql),
            settings,
            http_hosts,
            memory_bytes: memory_mb * 1024 * 1024,
            env_passthrough,
            sandbox: self.sandbox(),
            limits: self.task_limits.clone(),
            flink: self.flink.clone().filter(|_| manifest.capabilities.flink),
        }
    }
}

/// The hosts both lists allow: each wanted pattern the policy covers, and each policy
/// pattern inside a wanted one (a manifest's `*` or `*.example.com` narrowed to what the
/// operator lists). With no policy list the manifest's patterns stand; a `*` then reaches
/// public addresses only, since non-public ones need an IP or CIDR pattern.
fn intersect_hosts(wanted: &[HostPattern], allowed: Option<&[HostPattern]>) -> Vec<HostPattern> {
    let Some(allowed) = allowed else {
        return wanted.to_vec();
    };
    let mut out: Vec<HostPattern> = Vec::new();
    let mut add = |p: &HostPattern| {
        if !out.contains(p) {
            out.push(p.clone());
        }
    };
    for w in wanted {
        if allowed.iter().any(|a| a.covers(w)) {
            add(w);
            continue;
        }
        for a in allowed {
            if w.is_any() || w.covers(a) {
                add(a);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> PluginManifest {
        PluginManifest::parse(
            r#"
id = "web"
version = "1.0.0"
wit = "0.1.0"
component = "web.wasm"
[capabilities]
process = true
work-dir = true
http-hosts = ["api.example.com", "127.0.0.1:9000"]
"#,
            Path::new("m.toml"),
        )
        .unwrap()
    }

    #[test]
    fn empty_policy_grants_the_manifest() {
        let g = OperatorPolicy::default().grant_for(&manifest());
        assert!(g.process && g.work_dir);
        assert_eq!(g.http_hosts.len(), 2);
        assert_eq!(g.memory_bytes, DEFAULT_MEMORY_MB << 20);
    }

    #[test]
    fn policy_narrows_but_never_widens() {
        let policy = OperatorPolicy::parse(
            r#"
[defaults]
http-hosts = ["127.0.0.1", "*.other.org"]
memory-mb = 64
[plugins.web]
process = false
"#,
            Path::new("p.toml"),
        )
        .unwrap();
        let g = policy.grant_for(&manifest());
        assert!(!g.process);
        assert!(g.work_dir);
        assert!(g.allows_http("127.0.0.1:9000", 80));
        assert!(!g.allows_http("api.example.com", 443));
        assert_eq!(g.memory_bytes, 64 << 20);

        let mut no_proc = manifest();
        no_proc.capabilities.process = false;
        let widening = OperatorPolicy::parse("[defaults]\nprocess = true\n", Path::new("p"));
        assert!(!widening.unwrap().grant_for(&no_proc).process);
    }

    #[test]
    fn a_manifest_asking_for_any_host_gets_what_the_policy_lists() {
        let mut m = manifest();
        m.capabilities.http_hosts = vec!["*".into()];
        // No policy list: any public host, never loopback (no IP pattern).
        let g = OperatorPolicy::default().grant_for(&m);
        assert_eq!(g.http_hosts, vec![HostPattern::parse("*").unwrap()]);
        assert!(
            g.allows_http_address("127.0.0.1:80".parse().unwrap())
                .is_err()
        );
        // A policy list narrows `*` to exactly its entries, loopback included.
        let policy = OperatorPolicy::parse(
            "[plugins.web]\nhttp-hosts = [\"127.0.0.1:8081\", \"api.example.com\"]\n",
            Path::new("p.toml"),
        )
        .unwrap();
        let g = policy.grant_for(&m);
        assert!(g.allows_http("127.0.0.1:8081", 80));
        assert!(
            g.allows_http_address("127.0.0.1:8081".parse().unwrap())
                .is_ok()
        );
        assert!(!g.allows_http("127.0.0.1:8082", 80));
        assert!(g.allows_http("api.example.com", 443));
        assert!(!g.allows_http("other.example.com", 443));
        // A wildcard domain is narrowed to the listed names inside it.
        m.capabilities.http_hosts = vec!["*.example.com".into()];
        let g = policy.grant_for(&m);
        assert!(g.allows_http("api.example.com", 443));
        assert!(!g.allows_http("127.0.0.1:8081", 80));
    }

    #[test]
    fn sandbox_settings_default_to_bubblewrap_and_parse() {
        let d = OperatorPolicy::default().sandbox();
        assert_eq!(d.kind, SandboxKind::Bubblewrap);
        assert_eq!(d.default_tenant, DEFAULT_TENANT);
        let p = OperatorPolicy::parse(
            "sandbox = \"none\"\ntenant = \"etl\"\n[process-limits]\nprocesses = 20\nnetwork = false\n",
            Path::new("p.toml"),
        )
        .unwrap()
        .sandbox();
        assert_eq!(p.kind, SandboxKind::None);
        assert_eq!(p.default_tenant, "etl");
        assert_eq!(p.limits.processes, 20);
        assert!(!p.limits.network);
        assert_eq!(p.limits.open_files, ProcessLimits::default().open_files);
        for bad in [
            "sandbox = \"nsjail\"\n",
            "tenant = \"Root User\"\n",
            "[process-limits]\nprocs = 1\n",
        ] {
            assert!(
                OperatorPolicy::parse(bad, Path::new("p.toml")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_policy_names_file_and_field() {
        let err = OperatorPolicy::parse("[defaults]\nmemroy-mb = 3\n", Path::new("/etc/p.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/etc/p.toml") && err.contains("memroy-mb"),
            "{err}"
        );
        let err =
            OperatorPolicy::parse("[plugins.x]\nhttp-hosts = [\"a/b\"]\n", Path::new("p.toml"))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("plugins.x") && err.contains("http-hosts"),
            "{err}"
        );
    }
}
