//! The plugin registry: which task types exist and which version runs a task.
//!
//! Plugins come from two places: the built-ins embedded in the `shoal` binary, and the
//! local plugin store, filled by `shoal plugins install` or an upload to a server. The
//! store is content-addressed: each component lives once at
//! `<store>/blobs/sha256-<hex>.wasm`, and `<store>/<id>/<version>/shoal-plugin.toml`
//! names its blob, so a version's bytes never change once installed.
//!
//! For a task type the *active* version runs new tasks: the one an operator chose
//! (install, activate, rollback), else the newest, where an installed plugin wins over a
//! built-in only when it is strictly newer; a task may also pin a version. Tasks already
//! running hold their loaded plugin, so switching versions never disturbs them. Plugins
//! are compiled lazily, on first use, and kept loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use shoal_model::manifest::MANIFEST_FILE;
use shoal_model::{OperatorPolicy, PluginManifest};
use tokio::sync::OnceCell;
use wasmtime::component::Linker;

use crate::cache::CompileCache;
use crate::capabilities::HostState;
use crate::plugin::{LoadedPlugin, host_linker};
use crate::{PluginEngine, RuntimeError};

/// Where a plugin version came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginOrigin {
    Builtin,
    Installed(PathBuf),
}

enum Bytes {
    Static(&'static [u8]),
    File(PathBuf),
}

struct Entry {
    manifest: PluginManifest,
    origin: PluginOrigin,
    bytes: Bytes,
    loaded: OnceCell<Arc<LoadedPlugin>>,
}

/// One line of `shoal plugins list`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginListing {
    pub id: String,
    pub version: semver::Version,
    pub wit: semver::Version,
    pub description: String,
    /// Capabilities as granted (manifest narrowed by policy).
    pub capabilities: Vec<String>,
    pub http_hosts: Vec<String>,
    pub origin: PluginOrigin,
    /// Whether this version is the one new tasks get.
    pub active: bool,
}

pub struct PluginRegistry {
    engine: PluginEngine,
    cache: CompileCache,
    linker: Linker<HostState>,
    policy: OperatorPolicy,
    store_dir: PathBuf,
    entries: Mutex<BTreeMap<String, Vec<Arc<Entry>>>>,
    /// Operator-chosen active versions, by plugin id.
    active: Mutex<BTreeMap<String, semver::Version>>,
}

/// A version installed into the store.
#[derive(Debug, Clone)]
pub struct InstalledPlugin {
    pub plugin: Arc<LoadedPlugin>,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// False when this exact version and content was already installed.
    pub new: bool,
}

impl PluginRegistry {
    /// A registry whose installed plugins live under `store_dir`.
    pub fn new(
        engine: PluginEngine,
        cache: CompileCache,
        policy: OperatorPolicy,
        store_dir: impl Into<PathBuf>,
    ) -> Result<Self, RuntimeError> {
        let linker = host_linker(&engine)?;
        Ok(Self {
            engine,
            cache,
            linker,
            policy,
            store_dir: store_dir.into(),
            entries: Mutex::new(BTreeMap::new()),
            active: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    pub fn policy(&self) -> &OperatorPolicy {
        &self.policy
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Arc<Entry>>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, entry: Entry) {
        let mut entries = self.entries();
        let versions = entries.entry(entry.manifest.id.clone()).or_default();
        versions.retain(|e| {
            !(e.manifest.version == entry.manifest.version && e.origin == entry.origin)
        });
        versions.push(Arc::new(entry));
        // Newest first; on a tie the built-in comes first (installed must be strictly newer).
        versions.sort_by(|a, b| {
            b.manifest.version.cmp(&a.manifest.version).then_with(|| {
                let rank = |o: &PluginOrigin| matches!(o, PluginOrigin::Installed(_)) as u8;
                rank(&a.origin).cmp(&rank(&b.origin))
            })
        });
    }

    /// Register a plugin embedded in the binary.
    pub fn add_builtin(
        &self,
        manifest_toml: &str,
        wasm: &'static [u8],
    ) -> Result<(), RuntimeError> {
        let manifest = PluginManifest::parse(manifest_toml, Path::new("<built-in>"))?;
        self.add(Entry {
            manifest,
            origin: PluginOrigin::Builtin,
            bytes: Bytes::Static(wasm),
            loaded: OnceCell::new(),
        });
        Ok(())
    }

    /// Register every plugin in the store. A broken one is skipped and reported, so one
    /// bad install never stops the host.
    pub fn scan_store(&self) -> Vec<RuntimeError> {
        let mut problems = Vec::new();
        let Ok(ids) = std::fs::read_dir(&self.store_dir) else {
            return problems;
        };
        for version_dir in ids
            .flatten()
            .filter_map(|id| std::fs::read_dir(id.path()).ok())
            .flat_map(|versions| versions.flatten())
            .map(|v| v.path())
            .filter(|p| p.is_dir())
        {
            match PluginManifest::load(&version_dir) {
                Ok((manifest, file)) => {
                    let wasm = file
                        .parent()
                        .unwrap_or(&version_dir)
                        .join(&manifest.component);
                    self.add(Entry {
                        manifest,
                        origin: PluginOrigin::Installed(version_dir.clone()),
                        bytes: Bytes::File(wasm),
                        loaded: OnceCell::new(),
                    });
                }
                Err(e) => problems.push(e.into()),
            }
        }
        problems
    }

    /// Validate a plugin directory (or manifest file) and copy it into the store.
    /// Nothing is copied unless the component loads, links and describes itself.
    pub async fn install(&self, path: &Path) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        Ok(self.install_versioned(path).await?.plugin)
    }

    /// [`install`](Self::install), telling the content hash. Installing a version that
    /// exists with other content is refused: a version names one component forever.
    pub async fn install_versioned(&self, path: &Path) -> Result<InstalledPlugin, RuntimeError> {
        let (manifest, file) = PluginManifest::load(path)?;
        self.check_id_free(&manifest.id)?;
        let source = file
            .parent()
            .unwrap_or(Path::new("."))
            .join(&manifest.component);
        let wasm = std::fs::read(&source).map_err(|e| RuntimeError::ReadComponent {
            plugin: manifest.id.clone(),
            path: source.clone(),
            source: e,
        })?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
        let target = self
            .store_dir
            .join(&manifest.id)
            .join(manifest.version.to_string());
        let blob_name = format!("sha256-{sha256}.wasm");
        if let Ok((existing, existing_file)) = PluginManifest::load(&target) {
            let existing_wasm = existing_file
                .parent()
                .unwrap_or(&target)
                .join(&existing.component);
            let same = std::fs::read(&existing_wasm)
                .map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)) == sha256)
                .unwrap_or(false);
            if !same {
                return Err(RuntimeError::VersionExists {
                    plugin: manifest.id.clone(),
                    version: manifest.version.to_string(),
                });
            }
            let plugin = self.resolve(&manifest.id, Some(&manifest.version)).await?;
            return Ok(InstalledPlugin {
                plugin,
                sha256,
                new: false,
            });
        }
        let grant = self.policy.grant_for(&manifest);
        let loaded = LoadedPlugin::load(
            &self.engine,
            &self.cache,
            &self.linker,
            manifest.clone(),
            grant,
            &wasm,
        )
        .await?;

        let store_err = |source| RuntimeError::Store {
            path: target.clone(),
            source,
        };
        let blobs = self.store_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(store_err)?;
        let blob = blobs.join(&blob_name);
        if !blob.exists() {
            let tmp = blobs.join(format!(".{blob_name}.{}", std::process::id()));
            std::fs::write(&tmp, &wasm).map_err(store_err)?;
            std::fs::rename(&tmp, &blob).map_err(store_err)?;
        }
        let staging = self.store_dir.join(format!(
            ".staging-{}-{}-{}",
            manifest.id,
            manifest.version,
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(store_err)?;
        let mut stored = manifest.clone();
        stored.component = PathBuf::from("../../blobs").join(&blob_name);
        let text = toml::to_string(&stored)
            .map_err(|e| store_err(std::io::Error::other(format!("cannot write manifest: {e}"))))?;
        std::fs::write(staging.join(MANIFEST_FILE), text).map_err(store_err)?;
        // Swap in whole: a reader sees the version or nothing, never half of it.
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(store_err)?;
        }
        std::fs::rename(&staging, &target).map_err(store_err)?;

        let cell = OnceCell::new();
        let _ = cell.set(loaded.clone());
        self.add(Entry {
            manifest: stored.clone(),
            origin: PluginOrigin::Installed(target.clone()),
            bytes: Bytes::File(blob),
            loaded: cell,
        });
        Ok(InstalledPlugin {
            plugin: loaded,
            sha256,
            new: true,
        })
    }

    /// Refuse an id that differs from a known one only in case, `-` or `_`: tasks name
    /// their type loosely, so the two would compete for the same tasks and the winner
    /// would depend on sort order (an upload called `Shell` could take over `shell`).
    fn check_id_free(&self, id: &str) -> Result<(), RuntimeError> {
        let entries = self.entries();
        match entries
            .keys()
            .find(|known| known.as_str() != id && shoal_model::task::task_type_matches(id, known))
        {
            Some(existing) => Err(RuntimeError::IdClash {
                plugin: id.to_owned(),
                existing: existing.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Make `version` the one new tasks of `id` get (None: back to the newest).
    pub fn set_active(
        &self,
        id: &str,
        version: Option<&semver::Version>,
    ) -> Result<(), RuntimeError> {
        let entries = self.entries();
        let versions = entries
            .get(id)
            .ok_or_else(|| RuntimeError::UnknownTaskType {
                name: id.to_owned(),
                available: Self::available(&entries),
            })?;
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match version {
            None => {
                active.remove(id);
            }
            Some(v) => {
                if !versions.iter().any(|e| &e.manifest.version == v) {
                    return Err(RuntimeError::UnknownVersion {
                        name: id.to_owned(),
                        version: v.to_string(),
                        available: versions
                            .iter()
                            .map(|e| e.manifest.version.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                active.insert(id.to_owned(), v.clone());
            }
        }
        Ok(())
    }

    /// The version new tasks of `id` get.
    pub fn active_version(&self, id: &str) -> Option<semver::Version> {
        let entries = self.entries();
        let versions = entries.get(id)?;
        Some(self.active_index(id, versions).map_or_else(
            || versions[0].manifest.version.clone(),
            |i| versions[i].manifest.version.clone(),
        ))
    }

    fn active_index(&self, id: &str, versions: &[Arc<Entry>]) -> Option<usize> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let chosen = active.get(id)?;
        versions.iter().position(|e| &e.manifest.version == chosen)
    }

    /// Every known plugin id.
    pub fn ids(&self) -> Vec<String> {
        self.entries().keys().cloned().collect()
    }

    /// Every known plugin version, newest first per id.
    pub fn list(&self) -> Vec<PluginListing> {
        let entries = self.entries();
        entries
            .iter()
            .flat_map(|(id, versions)| {
                let active = self.active_index(id, versions).unwrap_or(0);
                versions.iter().enumerate().map(move |(i, e)| {
                    let grant = self.policy.grant_for(&e.manifest);
                    PluginListing {
                        id: e.manifest.id.clone(),
                        version: e.manifest.version.clone(),
                        wit: e.manifest.wit.clone(),
                        description: e.manifest.description.clone(),
                        capabilities: grant.names().into_iter().map(String::from).collect(),
                        http_hosts: grant.http_hosts.iter().map(|h| h.to_string()).collect(),
                        origin: e.origin.clone(),
                        active: i == active,
                    }
                })
            })
            .collect()
    }

    fn available(entries: &BTreeMap<String, Vec<Arc<Entry>>>) -> String {
        let names: Vec<&str> = entries.keys().map(String::as_str).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// The plugin that runs tasks of type `name` (ignoring case, `-` and `_`), loading
    /// it on first use. `version` pins an exact version.
    pub async fn resolve(
        &self,
        name: &str,
        version: Option<&semver::Version>,
    ) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        let entry = {
            let entries = self.entries();
            let (id, versions) = entries
                .iter()
                .find(|(id, _)| shoal_model::task::task_type_matches(name, id))
                .ok_or_else(|| RuntimeError::UnknownTaskType {
                    name: name.to_owned(),
                    available: Self::available(&entries),
                })?;
            match version {
                None => versions[self.active_index(id, versions).unwrap_or(0)].clone(),
                Some(v) => versions
                    .iter()
                    .find(|e| &e.manifest.version == v)
                    .cloned()
                    .ok_or_else(|| RuntimeError::UnknownVersion {
                        name: name.to_owned(),
                        version: v.to_string(),
                        available: versions
                            .iter()
                            .map(|e| e.manifest.version.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?,
            }
        };
        entry
            .loaded
            .get_or_try_init(|| self.load_entry(&entry))
            .await
            .cloned()
    }

    async fn load_entry(&self, entry: &Entry) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        let owned;
        let wasm: &[u8] = match &entry.bytes {
            Bytes::Static(b) => b,
            Bytes::File(path) => {
                owned = std::fs::read(path).map_err(|source| RuntimeError::ReadComponent {
                    plugin: entry.manifest.id.clone(),
                    path: path.clone(),
                    source,
                })?;
                &owned
            }
        };
        let grant = self.policy.grant_for(&entry.manifest);
        LoadedPlugin::load(
            &self.engine,
            &self.cache,
            &self.linker,
            entry.manifest.clone(),
            grant,
            wasm,
        )
        .await
    }
}
