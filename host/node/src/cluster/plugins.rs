//! Plugins reach every node by digest: an upload through any master's API stores the
//! component in the shared store under its SHA-256 (with the manifest and the active
//! version); every node copies what it lacks from there into its own plugin registry,
//! which compiles it once and caches the result, and follows the active versions.
//!
//! Architecture invariant: a node installs a component only after the SHA-256 of the
//! bytes it fetched matches the digest the store names it by; a mismatch is refused
//! and logged, and the version stays unknown on that node (its tasks fail with that
//! message) rather than run other code under its name.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shoal_runtime::PluginRegistry;
use shoal_store::Store;

/// How often a node looks for plugin versions it lacks.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] shoal_store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Versions installed here, `id@version`.
    pub installed: Vec<String>,
    /// Versions refused, with why (a digest that does not match, say).
    pub refused: Vec<String>,
}

/// Copy into `registry` every plugin version the store has and it lacks, and make the
/// store's active versions active here. `staging` holds the files while they install.
pub async fn sync_plugins(
    store: &Store,
    registry: &PluginRegistry,
    staging: &Path,
) -> Result<Synced, SyncError> {
    let mut synced = Synced::default();
    let have: HashSet<(String, String)> = registry
        .list()
        .into_iter()
        .map(|p| (p.id, p.version.to_string()))
        .collect();
    for row in store.plugin_versions().await? {
        if have.contains(&(row.plugin_id.clone(), row.version.clone())) {
            continue;
        }
        let name = format!("{}@{}", row.plugin_id, row.version);
        let Some(bytes) = store.plugin_blob(&row.sha256).await? else {
            // Installed through `shoal plugins install` on one node only, or uploaded
            // before components were stored: nothing to copy.
            continue;
        };
        let actual = hex_sha256(&bytes);
        if actual != row.sha256 {
            let why = format!(
                "{name}: the stored component's SHA-256 is {actual}, not {}; refused",
                row.sha256
            );
            tracing::error!("{why}");
            synced.refused.push(why);
            continue;
        }
        std::fs::create_dir_all(staging)?;
        let dir = tempfile::tempdir_in(staging)?;
        let mut manifest: toml::Table = match row.manifest.parse() {
            Ok(m) => m,
            Err(e) => {
                synced
                    .refused
                    .push(format!("{name}: its stored manifest: {e}"));
                continue;
            }
        };
        manifest.insert(
            "component".into(),
            toml::Value::String("component.wasm".into()),
        );
        std::fs::write(dir.path().join("component.wasm"), &bytes)?;
        std::fs::write(
            dir.path().join(shoal_model::manifest::MANIFEST_FILE),
            toml::to_string(&manifest).unwrap_or_default(),
        )?;
        match registry.install_versioned(dir.path()).await {
            Ok(installed) if installed.sha256 == row.sha256 => {
                tracing::info!(plugin = %name, sha256 = %row.sha256, "plugin copied from the store");
                synced.installed.push(name);
            }
            Ok(installed) => synced.refused.push(format!(
                "{name}: installed as {} instead of {}",
                installed.sha256, row.sha256
            )),
            Err(e) => {
                tracing::warn!(plugin = %name, "cannot install it from the store: {e}");
                synced.refused.push(format!("{name}: {e}"));
            }
        }
    }
    for (id, version, _) in store.active_plugins().await? {
        let Ok(v) = version.parse::<semver::Version>() else {
            continue;
        };
        if registry.active_version(&id).as_ref() != Some(&v)
            && let Err(e) = registry.set_active(&id, Some(&v))
        {
            tracing::warn!(plugin = %id, "cannot make {version} active here: {e}");
        }
    }
    Ok(synced)
}

/// Keep `registry` in step with the store, every [`SYNC_EVERY`], until aborted.
pub fn keep_in_sync(
    store: Store,
    registry: Arc<PluginRegistry>,
    staging: std::path::PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = sync_plugins(&store, &registry, &staging).await {
                tracing::warn!("syncing plugins from the store failed: {e}");
            }
            tokio::time::sleep(SYNC_EVERY).await;
        }
    })
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
