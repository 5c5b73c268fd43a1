//! The [`PluginRegistry`] behind `shoal_protocol`'s [`PluginCatalog`], so the API and the
//! CLI's definition checks reach plugins through the trait and never link wasmtime.

use std::path::Path;
use std::time::Duration;

use shoal_protocol::{
    BoxFuture, Installed, PluginCatalog, PluginError, PluginSource, PluginSummary, ResolvedPlugin,
};

use crate::{CallLimits, PluginOrigin, PluginRegistry, RuntimeError, TaskEnv};

impl From<RuntimeError> for PluginError {
    fn from(e: RuntimeError) -> Self {
        use RuntimeError as R;
        let message = e.to_string();
        match e {
            R::UnknownTaskType { .. } | R::UnknownVersion { .. } => Self::Unknown(message),
            R::VersionExists { .. } | R::IdClash { .. } => Self::Conflict(message),
            R::Store { .. } => Self::Storage(message),
            // Listed one by one so a new variant has to pick its kind here.
            R::Engine(_)
            | R::Manifest(_)
            | R::ReadComponent { .. }
            | R::InvalidComponent { .. }
            | R::WitVersion { .. }
            | R::TestCall { .. } => Self::Rejected(message),
        }
    }
}

impl PluginCatalog for PluginRegistry {
    fn ids(&self) -> Vec<String> {
        PluginRegistry::ids(self)
    }

    fn list(&self) -> Vec<PluginSummary> {
        PluginRegistry::list(self)
            .into_iter()
            .map(|p| PluginSummary {
                id: p.id,
                version: p.version,
                wit: p.wit,
                description: p.description,
                capabilities: p.capabilities,
                http_hosts: p.http_hosts,
                source: match p.origin {
                    PluginOrigin::Builtin => PluginSource::Builtin,
                    PluginOrigin::Installed(_) => PluginSource::Installed,
                },
                active: p.active,
            })
            .collect()
    }

    fn resolve<'a>(
        &'a self,
        task_type: &'a str,
        version: Option<&'a semver::Version>,
    ) -> BoxFuture<'a, Result<ResolvedPlugin, PluginError>> {
        Box::pin(async move {
            let plugin = PluginRegistry::resolve(self, task_type, version).await?;
            Ok(ResolvedPlugin {
                manifest: plugin.manifest.clone(),
                grant: plugin.grant.clone(),
            })
        })
    }

    fn validate_params<'a>(
        &'a self,
        plugin: &'a str,
        params: &'a serde_json::Value,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<(String, String)>, PluginError>> {
        Box::pin(async move {
            let plugin = PluginRegistry::resolve(self, plugin, None).await?;
            // `validate` looks at the parameters only: no task, no run, nothing to log.
            let env = TaskEnv::new(Default::default(), params.clone(), std::env::temp_dir());
            let errors = plugin
                .validate(&env, &CallLimits::timeout(timeout))
                .await
                .map_err(|e| PluginError::Rejected(e.to_string()))?;
            Ok(errors.into_iter().map(|e| (e.field, e.message)).collect())
        })
    }

    fn install<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Installed, PluginError>> {
        Box::pin(async move {
            let installed = self.install_versioned(dir).await?;
            Ok(Installed {
                manifest: installed.plugin.manifest.clone(),
                sha256: installed.sha256,
            })
        })
    }

    fn active_version(&self, id: &str) -> Option<semver::Version> {
        PluginRegistry::active_version(self, id)
    }

    fn set_active(&self, id: &str, version: Option<&semver::Version>) -> Result<(), PluginError> {
        Ok(PluginRegistry::set_active(self, id, version)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API answers 404, 409, 400 and 500 by these kinds; the message stays the
    /// registry's word for word.
    #[test]
    fn runtime_errors_keep_their_kind_and_message() {
        let cases = [
            (
                RuntimeError::UnknownTaskType {
                    name: "shel".into(),
                    available: "shell".into(),
                },
                "unknown",
            ),
            (
                RuntimeError::UnknownVersion {
                    name: "shell".into(),
                    version: "9.0.0".into(),
                    available: "1.0.0".into(),
                },
                "unknown",
            ),
            (
                RuntimeError::VersionExists {
                    plugin: "shell".into(),
                    version: "1.0.0".into(),
                },
                "conflict",
            ),
            (
                RuntimeError::IdClash {
                    plugin: "Shell".into(),
                    existing: "shell".into(),
                },
                "conflict",
            ),
            (
                RuntimeError::Store {
                    path: "/plugins".into(),
                    source: std::io::Error::other("disk full"),
                },
                "storage",
            ),
            (
                RuntimeError::InvalidComponent {
                    plugin: "shell".into(),
                    message: "not a component".into(),
                },
                "rejected",
            ),
            (
                RuntimeError::WitVersion {
                    plugin: "shell".into(),
                    found: "9.0.0".into(),
                    supported: "^0.1",
                },
                "rejected",
            ),
        ];
        for (runtime, kind) in cases {
            let message = runtime.to_string();
            let plugin = PluginError::from(runtime);
            let got = match &plugin {
                PluginError::Unknown(_) => "unknown",
                PluginError::Conflict(_) => "conflict",
                PluginError::Rejected(_) => "rejected",
                PluginError::Storage(_) => "storage",
            };
            assert_eq!(got, kind, "{message}");
            assert_eq!(plugin.to_string(), message);
        }
    }
}
