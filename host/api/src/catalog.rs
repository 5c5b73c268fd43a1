//! Task types as the plugin registry knows them, for validating workflow definitions
//! against the plugins that will run them (the CLI's `validate` and the API's
//! definition uploads share it).

use std::sync::Arc;
use std::time::Duration;

use shoal_model::TaskLog;
use shoal_model::task::task_type_matches;
use shoal_runtime::{CallLimits, PluginRegistry, TaskEnv};
use shoal_workflow::TaskTypeCatalog;

/// Task types as the plugin registry knows them.
pub struct RegistryCatalog {
    registry: Arc<PluginRegistry>,
    ids: Vec<String>,
}

impl RegistryCatalog {
    pub fn new(registry: Arc<PluginRegistry>) -> Self {
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
        let plugin = self
            .registry
            .resolve(plugin, None)
            .await
            .map_err(|e| e.to_string())?;
        let env = TaskEnv {
            identity: Default::default(),
            params: params.clone(),
            work_dir: std::env::temp_dir(),
            tenant: None,
            log: TaskLog::discard(),
            upstream_states: Vec::new(),
            workflow_host: None,
            schedule_time_ms: 0,
        };
        let errors = plugin
            .validate(&env, &CallLimits::timeout(Duration::from_secs(10)))
            .await
            .map_err(|e| e.to_string())?;
        Ok(errors.into_iter().map(|e| (e.field, e.message)).collect())
    }
}
