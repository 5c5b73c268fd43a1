//! `shoal:task/context`: the current task's identity and parameters, and the operator's
//! settings for the plugin.

use std::collections::BTreeMap;

use crate::bindings::context::Host;
use crate::bindings::types::TaskContext;
use crate::capabilities::HostState;
use crate::invoke::TaskEnv;

pub struct ContextCapability {
    current: TaskContext,
    /// From the grant, so the values are the operator's (policy), never the task's.
    settings: BTreeMap<String, String>,
    declared_out: Vec<(String, String)>,
    declared_out_values: Vec<(String, String)>,
    previous_handle: Option<String>,
}

impl ContextCapability {
    pub fn new(current: TaskContext, settings: BTreeMap<String, String>, env: &TaskEnv) -> Self {
        Self {
            current,
            settings,
            declared_out: env.declared_out.clone(),
            declared_out_values: env.declared_out_values.clone(),
            previous_handle: env.previous_handle.clone(),
        }
    }
}

impl Host for HostState {
    async fn current(&mut self) -> wasmtime::Result<TaskContext> {
        Ok(self.context.current.clone())
    }

    async fn setting(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.context.settings.get(&name).cloned())
    }

    async fn declared_out_params(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.context.declared_out.clone())
    }

    async fn declared_out_values(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.context.declared_out_values.clone())
    }

    async fn previous_handle(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.context.previous_handle.clone())
    }
}
