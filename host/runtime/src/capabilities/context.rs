//! `shoal:task/context`: the current task's identity and parameters.

use crate::bindings::context::Host;
use crate::bindings::types::TaskContext;
use crate::capabilities::HostState;

pub struct ContextCapability {
    current: TaskContext,
}

impl ContextCapability {
    pub fn new(current: TaskContext) -> Self {
        Self { current }
    }
}

impl Host for HostState {
    async fn current(&mut self) -> wasmtime::Result<TaskContext> {
        Ok(self.context.current.clone())
    }
}
