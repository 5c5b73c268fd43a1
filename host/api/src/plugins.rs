//! Hot-loading task-type plugins into a running server.
//!
//! An upload (manifest + component) is staged, then handed to the plugin catalog (the
//! server's registry), which validates it (manifest, WIT version, a test instantiation
//! and describe call) and stores the component content-addressed. The new version
//! becomes active for new tasks at once; running tasks keep the version they loaded.
//! Each activation remembers the version it replaced, so an operator can roll back one
//! step; the choice is kept in the store and restored when the server starts.

use std::path::PathBuf;
use std::sync::Arc;

pub use shoal_api_types::plugins::ActivePlugin;
use shoal_model::manifest::MANIFEST_FILE;
use shoal_protocol::{PluginCatalog, PluginError};
use shoal_store::{PluginVersionRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("staging the upload failed: {0}")]
    Io(#[from] std::io::Error),
}

pub struct PluginInstaller {
    registry: Arc<dyn PluginCatalog>,
    store: Store,
    staging: PathBuf,
    /// One install or activation at a time, so `previous` is always the true previous.
    lock: tokio::sync::Mutex<()>,
}

impl PluginInstaller {
    pub fn new(registry: Arc<dyn PluginCatalog>, store: Store, staging: PathBuf) -> Self {
        Self {
            registry,
            store,
            staging,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Install an uploaded plugin and make it active.
    pub async fn install(
        &self,
        manifest_toml: &str,
        component: &[u8],
    ) -> Result<ActivePlugin, InstallError> {
        let _one = self.lock.lock().await;
        // The manifest names its component file; the upload's bytes replace it.
        let mut manifest: toml::Table = manifest_toml
            .parse()
            .map_err(|e| InstallError::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
        manifest.insert(
            "component".into(),
            toml::Value::String("component.wasm".into()),
        );
        std::fs::create_dir_all(&self.staging)?;
        let dir = tempfile::tempdir_in(&self.staging)?;
        std::fs::write(dir.path().join("component.wasm"), component)?;
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            toml::to_string(&manifest).map_err(|e| InstallError::Invalid(e.to_string()))?,
        )?;
        let installed = self.registry.install(dir.path()).await?;
        // Every node of a cluster copies the component from here, by this digest.
        self.store
            .put_plugin_blob(&installed.sha256, component)
            .await?;
        let m = &installed.manifest;
        let previous = self.registry.active_version(&m.id);
        self.store
            .record_plugin_version(&PluginVersionRow {
                plugin_id: m.id.clone(),
                version: m.version.to_string(),
                sha256: installed.sha256.clone(),
                manifest: toml::to_string(m).unwrap_or_default(),
                installed_at: shoal_store::now_ms(),
            })
            .await?;
        let previous = previous.filter(|p| p != &m.version).map(|p| p.to_string());
        self.store
            .set_active_plugin(&m.id, &m.version.to_string(), previous.as_deref())
            .await?;
        self.registry.set_active(&m.id, Some(&m.version))?;
        tracing::info!(plugin = %m.id, version = %m.version, sha256 = %installed.sha256, "plugin installed and active");
        Ok(ActivePlugin {
            id: m.id.clone(),
            version: m.version.to_string(),
            previous,
            sha256: Some(installed.sha256),
        })
    }

    /// Make an installed `version` of `id` active.
    pub async fn activate(&self, id: &str, version: &str) -> Result<ActivePlugin, InstallError> {
        let _one = self.lock.lock().await;
        self.activate_locked(id, version).await
    }

    async fn activate_locked(&self, id: &str, version: &str) -> Result<ActivePlugin, InstallError> {
        let v: semver::Version = version
            .parse()
            .map_err(|e| InstallError::Invalid(format!("version `{version}`: {e}")))?;
        let previous = self.registry.active_version(id).map(|p| p.to_string());
        self.registry.set_active(id, Some(&v))?;
        let previous = previous.filter(|p| p != version);
        self.store
            .set_active_plugin(id, version, previous.as_deref())
            .await?;
        Ok(ActivePlugin {
            id: id.to_owned(),
            version: version.to_owned(),
            previous,
            sha256: None,
        })
    }

    /// Go back to the version the last activation replaced.
    pub async fn rollback(&self, id: &str) -> Result<ActivePlugin, InstallError> {
        let _one = self.lock.lock().await;
        let previous = self
            .store
            .active_plugins()
            .await?
            .into_iter()
            .find(|(p, _, _)| p == id)
            .and_then(|(_, _, prev)| prev)
            .ok_or_else(|| {
                InstallError::Invalid(format!(
                    "plugin `{id}` has no previous version to roll back to"
                ))
            })?;
        self.activate_locked(id, &previous).await
    }

    /// Re-apply the operators' choices after a restart. A choice whose version is gone
    /// is reported and skipped: the newest version runs instead.
    pub async fn restore(&self) -> Result<(), InstallError> {
        for (id, version, _) in self.store.active_plugins().await? {
            let applied = version
                .parse::<semver::Version>()
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    self.registry
                        .set_active(&id, Some(&v))
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = applied {
                tracing::warn!(plugin = %id, "cannot restore the active version {version}: {e}");
            }
        }
        Ok(())
    }
}
