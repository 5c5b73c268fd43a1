//! `shoal validate FILE`: every problem in a workflow definition, checked against the
//! plugins that would run it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shoal_model::TaskLog;
use shoal_model::task::task_type_matches;
use shoal_runtime::{CallLimits, PluginRegistry, TaskEnv};
use shoal_workflow::{Diagnostic, TaskTypeCatalog};

use crate::app::{DataDir, load_policy, open_registry};

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

pub async fn run(
    files: Vec<PathBuf>,
    data: &DataDir,
    policy: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let catalog = RegistryCatalog::new(open_registry(data, load_policy(data, policy)?)?);
    let mut failed = false;
    for file in files {
        let problems: Vec<Diagnostic> = match shoal_workflow::load_file(&file) {
            Ok(loaded) => {
                let problems = shoal_workflow::validate(&loaded, &catalog).await;
                if problems.is_empty() {
                    println!(
                        "{}: ok (workflow `{}`, {} tasks)",
                        file.display(),
                        loaded.workflow.name,
                        loaded.workflow.tasks.len()
                    );
                }
                problems
            }
            Err(diagnostics) => diagnostics.0,
        };
        for p in &problems {
            println!("{p}");
        }
        failed |= !problems.is_empty();
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
