//! Task types as the plugin catalog knows them, for validating workflow definitions
//! against the plugins that will run them (the CLI's `validate` and the API's
//! definition uploads share it).

use std::sync::Arc;
use std::time::Duration;

use shoal_model::task::task_type_matches;
use shoal_protocol::PluginCatalog;
use shoal_workflow::TaskTypeCatalog;

/// How long a plugin may take to check one task's parameters.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Task types as the plugin catalog knows them. The ids are read once: a definition is
/// checked against one consistent set of plugins.
pub struct RegistryCatalog {
    registry: Arc<dyn PluginCatalog>,
    ids: Vec<String>,
}

impl RegistryCatalog {
    pub fn new(registry: Arc<dyn PluginCatalog>) -> Self {
        let ids = registry.ids();
        Self { registry, ids }
    }
}

impl TaskTypeCatalog for RegistryCatalog {
    fn plugin_for(&self, task_type: &str) -> Option<String> {
        self.ids
            .iter()
            .find(|id| task_type_matches(task_type, id))
            .cloned()
    }

    fn known(&self) -> Vec<String> {
        self.ids.clone()
    }

    async fn check_params(
        &self,
        plugin: &str,
        params: &serde_json::Value,
    ) -> Result<Vec<(String, String)>, String> {
        self.registry
            .validate_params(plugin, params, VALIDATE_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }
}
