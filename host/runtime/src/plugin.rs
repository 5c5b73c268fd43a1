//! A plugin ready to run: compiled, checked against the host's WIT range,
//! pre-instantiated, and described by itself.

use std::sync::Arc;

use serde::Serialize;
use shoal_model::{ExecutionClass, Grant, PluginManifest};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

use crate::bindings::controls::HostControlsPre;
use crate::bindings::{HostPluginPre, types};
use crate::cache::{CompileCache, LoadReport, content_hash};
use crate::capabilities::HostState;
use crate::invoke::{CallLimits, TaskEnv};
use crate::{PluginEngine, RuntimeError};

/// The interface every plugin exports, without its version.
const PLUGIN_INTERFACE: &str = "shoal:task/plugin";

/// What a plugin says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub params_schema: String,
    pub execution_class: ExecutionClass,
    pub capabilities: Vec<String>,
}

impl PluginInfo {
    pub(crate) fn from_wit(info: types::PluginInfo) -> Self {
        Self {
            name: info.name,
            version: info.version,
            description: info.description,
            params_schema: info.params_schema,
            execution_class: match info.execution_class {
                types::ExecutionClass::Short => ExecutionClass::Short,
                types::ExecutionClass::Blocking => ExecutionClass::Blocking,
                types::ExecutionClass::ExternalJob => ExecutionClass::ExternalJob,
            },
            capabilities: info.capabilities,
        }
    }
}

/// One problem with a task's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// A loaded plugin version. Cheap to share; every task call instantiates it afresh.
pub struct LoadedPlugin {
    pub manifest: PluginManifest,
    pub grant: Grant,
    pub info: PluginInfo,
    /// SHA-256 of the component bytes.
    pub content_hash: String,
    /// The `shoal:task` version the component exports.
    pub wit_version: semver::Version,
    /// How the compiled code was obtained.
    pub load_report: LoadReport,
    pub(crate) engine: PluginEngine,
    pub(crate) pre: HostPluginPre<HostState>,
    /// The optional `controls` export (0.1.2) and the actions it offers.
    pub(crate) controls: Option<HostControlsPre<HostState>>,
    pub actions: Vec<ActionInfo>,
}

/// A named action a task type offers on a running external job (`shoal:task/controls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionInfo {
    pub name: String,
    pub description: String,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .finish()
    }
}

/// The host side every plugin links against.
pub fn host_linker(engine: &PluginEngine) -> Result<Linker<HostState>, RuntimeError> {
    let mut linker = Linker::new(engine.engine());
    let err = |e: wasmtime::Error| RuntimeError::Engine(e.to_string());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(err)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(err)?;
    crate::bindings::HostPlugin::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )
    .map_err(err)?;
    Ok(linker)
}

/// The `shoal:task` version a component exports, if it exports the plugin interface.
fn exported_wit_version(
    engine: &PluginEngine,
    component: &Component,
) -> Option<Result<semver::Version, String>> {
    let ty = component.component_type();
    ty.exports(engine.engine()).find_map(|(name, item)| {
        let version = name.strip_prefix(PLUGIN_INTERFACE)?;
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return None;
        }
        Some(match version.strip_prefix('@') {
            Some(v) => semver::Version::parse(v).map_err(|e| format!("bad version `{v}`: {e}")),
            None => Err("the export carries no version".to_owned()),
        })
    })
}

impl LoadedPlugin {
    /// Compile (or load from cache), check and pre-instantiate a component, then ask it
    /// to describe itself. Any failure is reported against the plugin; the host is
    /// unaffected.
    pub async fn load(
        engine: &PluginEngine,
        cache: &CompileCache,
        linker: &Linker<HostState>,
        manifest: PluginManifest,
        grant: Grant,
        wasm: &[u8],
    ) -> Result<Arc<Self>, RuntimeError> {
        let id = manifest.id.clone();
        let invalid = |message: String| RuntimeError::InvalidComponent {
            plugin: id.clone(),
            message,
        };
        let hash = content_hash(wasm);
        let (component, load_report) = cache
            .load(engine, wasm, &hash)
            .map_err(|e| invalid(format!("not a valid WebAssembly component: {e:#}")))?;

        let wit_version = match exported_wit_version(engine, &component) {
            None => {
                return Err(invalid(format!(
                    "the component does not export `{PLUGIN_INTERFACE}@…`; was it built with shoal-sdk?"
                )));
            }
            Some(Err(message)) => return Err(invalid(format!("`{PLUGIN_INTERFACE}`: {message}"))),
            Some(Ok(v)) => v,
        };
        if !shoal_model::wit_supported(&wit_version) {
            return Err(RuntimeError::WitVersion {
                plugin: id,
                found: wit_version.to_string(),
                supported: shoal_model::SUPPORTED_WIT,
            });
        }
        if (wit_version.major, wit_version.minor) != (manifest.wit.major, manifest.wit.minor) {
            return Err(invalid(format!(
                "the manifest says wit = {} but the component exports shoal:task@{wit_version}",
                manifest.wit
            )));
        }

        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "cannot be linked (it imports something this host does not provide): {e:#}"
            ))
        })?;
        // Optional: a component built before 0.1.2 exports no `controls`.
        let controls = HostControlsPre::new(instance_pre.clone()).ok();
        let pre = HostPluginPre::new(instance_pre)
            .map_err(|e| invalid(format!("does not match the shoal:task world: {e:#}")))?;

        let mut plugin = Self {
            manifest,
            grant,
            info: PluginInfo {
                name: id.clone(),
                version: String::new(),
                description: String::new(),
                params_schema: String::new(),
                execution_class: ExecutionClass::Short,
                capabilities: Vec::new(),
            },
            content_hash: hash,
            wit_version,
            load_report,
            engine: engine.clone(),
            pre,
            controls,
            actions: Vec::new(),
        };

        // The test call: a plugin that cannot even describe itself is refused now, not
        // when its first task runs.
        let scratch = std::env::temp_dir();
        let env = TaskEnv::new(Default::default(), serde_json::json!({}), scratch);
        let limits = CallLimits::timeout(std::time::Duration::from_secs(10));
        plugin.info =
            plugin
                .describe(&env, &limits)
                .await
                .map_err(|source| RuntimeError::TestCall {
                    plugin: id.clone(),
                    source,
                })?;
        if plugin.controls.is_some() {
            plugin.actions =
                plugin
                    .actions(&env, &limits)
                    .await
                    .map_err(|source| RuntimeError::TestCall {
                        plugin: id.clone(),
                        source,
                    })?;
        }
        if !plugin.info.name.eq_ignore_ascii_case(&plugin.manifest.id) {
            return Err(invalid(format!(
                "the component calls itself `{}` but its manifest id is `{}`",
                plugin.info.name, plugin.manifest.id
            )));
        }
        Ok(Arc::new(plugin))
    }

    pub fn execution_class(&self) -> ExecutionClass {
        self.info.execution_class
    }

    /// The action named `name` if the plugin offers it, else a message saying what it
    /// offers.
    pub fn action(&self, name: &str) -> Result<&ActionInfo, String> {
        if let Some(a) = self.actions.iter().find(|a| a.name == name) {
            return Ok(a);
        }
        let offered: Vec<&str> = self.actions.iter().map(|a| a.name.as_str()).collect();
        Err(if offered.is_empty() {
            format!(
                "task type `{}` {} offers no actions on its jobs, so it has no `{name}`",
                self.manifest.id, self.manifest.version
            )
        } else {
            format!(
                "task type `{}` {} has no action `{name}`; it offers: {}",
                self.manifest.id,
                self.manifest.version,
                offered.join(", ")
            )
        })
    }
}
