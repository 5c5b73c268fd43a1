//! The plugin manifest: `shoal-plugin.toml` beside a component.
//!
//! The manifest, not the component, is what the operator reviews: it names the plugin,
//! the WIT version it was built against and every capability it wants. The host grants
//! nothing that is not requested here (and allowed by the operator's policy).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of a manifest inside a plugin directory.
pub const MANIFEST_FILE: &str = "shoal-plugin.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginManifest {
    /// Task type id, e.g. `shell`; lower-case letters, digits, `-` and `_`.
    pub id: String,
    pub version: semver::Version,
    /// The `shoal:task` WIT version the component was built against.
    pub wit: semver::Version,
    #[serde(default)]
    pub description: String,
    /// Path of the `.wasm` component, relative to the manifest.
    pub component: PathBuf,
    #[serde(default)]
    pub capabilities: RequestedCapabilities,
    /// How the task type takes part in a workflow run (`[flow]`); most plugins leave it out.
    #[serde(default)]
    pub flow: FlowSettings,
}

/// What a plugin asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestedCapabilities {
    /// Start processes on the worker.
    #[serde(default)]
    pub process: bool,
    /// A private, read-write work directory (a WASI preopen).
    #[serde(default)]
    pub work_dir: bool,
    /// Hosts reachable over `wasi:http`: `host`, `host:port`, or `*.domain`.
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Statements on the project's datasources through `shoal:task/sql` (WIT 0.1.1).
    #[serde(default)]
    pub sql: bool,
    /// The operator's Flink clusters (HTTP to their REST endpoints, their URLs as
    /// settings) and Flink resources, read-only (see [`crate::flink`]).
    #[serde(default)]
    pub flink: bool,
}

impl RequestedCapabilities {
    /// Capability names as plugins report them in `describe`.
    pub fn names(&self) -> Vec<&'static str> {
        crate::grant::capability_names(
            self.process,
            !self.http_hosts.is_empty() || self.flink,
            self.work_dir,
            self.sql,
        )
    }
}

/// How a task type takes part in a workflow run: when the master may start it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlowSettings {
    /// Which upstream results let a task of this type run.
    #[serde(default)]
    pub trigger: Trigger,
}

/// When a task may run, given its direct upstream tasks (Airflow's trigger rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Every upstream task succeeded (or was forced to success or skipped): the usual rule.
    #[default]
    AllSuccess,
    /// Every upstream task finished, whatever its result. A task that inspects how its
    /// upstream went (DolphinScheduler's Condition) needs this, or a failure upstream
    /// would keep it from ever running.
    AllDone,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AllSuccess => "all-success",
            Self::AllDone => "all-done",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: cannot read manifest: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

impl PluginManifest {
    /// Read and check a manifest. `path` may be the manifest file or its directory.
    pub fn load(path: &Path) -> Result<(Self, PathBuf), ManifestError> {
        let file = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
            path: file.clone(),
            source,
        })?;
        let manifest = Self::parse(&text, &file)?;
        Ok((manifest, file))
    }

    /// Parse manifest text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ManifestError> {
        let manifest: Self = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: origin.to_path_buf(),
            // toml's message already names the line, column and field.
            message: e.to_string().trim_end().to_owned(),
        })?;
        manifest.check(origin)?;
        Ok(manifest)
    }

    fn check(&self, origin: &Path) -> Result<(), ManifestError> {
        let invalid = |field, message: String| ManifestError::Invalid {
            path: origin.to_path_buf(),
            field,
            message,
        };
        let id_ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !id_ok {
            return Err(invalid(
                "id",
                format!(
                    "`{}` must be non-empty lower-case letters, digits, `-` or `_`",
                    self.id
                ),
            ));
        }
        if !crate::wit_supported(&self.wit) {
            return Err(invalid(
                "wit",
                format!(
                    "plugin was built against shoal:task@{}, this host supports {}",
                    self.wit,
                    crate::SUPPORTED_WIT
                ),
            ));
        }
        if self.component.as_os_str().is_empty() {
            return Err(invalid("component", "no component path given".into()));
        }
        for host in &self.capabilities.http_hosts {
            crate::grant::HostPattern::parse(host)
                .map_err(|m| invalid("capabilities.http-hosts", m))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "shell"
version = "1.2.3"
wit = "0.1.0"
component = "shell.wasm"
[capabilities]
process = true
http-hosts = ["127.0.0.1:8080", "*.example.com"]
"#;

    #[test]
    fn parses_a_manifest() {
        let m = PluginManifest::parse(GOOD, Path::new("m.toml")).unwrap();
        assert_eq!(m.id, "shell");
        assert!(m.capabilities.process);
        assert!(!m.capabilities.work_dir);
        assert_eq!(m.capabilities.names(), vec!["process", "http"]);
        assert_eq!(m.flow.trigger, Trigger::AllSuccess);
    }

    #[test]
    fn parses_the_flow_trigger() {
        let m = PluginManifest::parse(
            &format!("{GOOD}[flow]\ntrigger = \"all-done\"\n"),
            Path::new("m.toml"),
        )
        .unwrap();
        assert_eq!(m.flow.trigger, Trigger::AllDone);
        assert_eq!(m.flow.trigger.to_string(), "all-done");

        let m = PluginManifest::parse(&format!("{GOOD}[flow]\n"), Path::new("m.toml")).unwrap();
        assert_eq!(m.flow.trigger, Trigger::AllSuccess);
        let m = PluginManifest::parse(
            &format!("{GOOD}[flow]\ntrigger = \"all-success\"\n"),
            Path::new("m.toml"),
        )
        .unwrap();
        assert_eq!(m.flow.trigger, Trigger::AllSuccess);

        let err = PluginManifest::parse(
            &format!("{GOOD}[flow]\ntrigger = \"one-failed\"\n"),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("one-failed"), "{err}");
        assert!(err.contains("all-done"), "{err}");

        let err = PluginManifest::parse(
            &format!("{GOOD}[flow]\ntriger = \"all-done\"\n"),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("triger"), "{err}");
    }

    #[test]
    fn typo_names_line_and_field() {
        let bad = GOOD.replace("process = true", "proces = true");
        let err = PluginManifest::parse(&bad, Path::new("dir/m.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("dir/m.toml: "), "{err}");
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("proces"), "{err}");
    }

    #[test]
    fn wrong_wit_version_is_refused() {
        let bad = GOOD.replace("wit = \"0.1.0\"", "wit = \"0.2.0\"");
        let err = PluginManifest::parse(&bad, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `wit`"), "{err}");
        assert!(err.contains("0.2.0"), "{err}");
    }

    #[test]
    fn bad_id_and_host_are_refused() {
        let bad = GOOD.replace("id = \"shell\"", "id = \"Shell Task\"");
        assert!(
            PluginManifest::parse(&bad, Path::new("m.toml"))
                .unwrap_err()
                .to_string()
                .contains("field `id`")
        );
        let bad = GOOD.replace("\"*.example.com\"", "\"http://x/y\"");
        assert!(
            PluginManifest::parse(&bad, Path::new("m.toml"))
                .unwrap_err()
                .to_string()
                .contains("http-hosts")
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = PluginManifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(MANIFEST_FILE), "{err}");
    }
}
