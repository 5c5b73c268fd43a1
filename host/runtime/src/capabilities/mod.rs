//! Capabilities a plugin may be granted, one module per capability.
//!
//! The shape follows Spin's "factors": each capability owns its configuration (derived
//! from the plugin's [`Grant`]) and its per-instance state, and [`HostState`] is simply
//! the sum of them. A capability that was not granted is still linked (so every plugin
//! instantiates the same way) but refuses with "capability denied: ...", which fails the
//! task with that message.
//!
//! - [`log`]: `shoal:task/log`, into the task's log.
//! - [`context`]: `shoal:task/context`, the current task's ids and params.
//! - [`process`]: `shoal:task/process`, programs in the task's work dir.
//! - [`workflow`]: `shoal:task/workflow`, the run around the task: upstream states,
//!   business time, child runs and other workflows' runs through the master's
//!   [`workflow::WorkflowHost`] (no grant needed: the master answers for the caller).
//! - [`http`]: `wasi:http` limited to the grant's host allow-list.
//! - [`wasi`]: the rest of WASI with no ambient authority: only the work dir, no env,
//!   no sockets; stdout/stderr into the task log.
//! - [`sql`]: `shoal:task/sql`, statements on the datasources a task names.
//! - [`limits`]: the per-task memory cap.

pub mod context;
pub mod http;
pub mod limits;
pub mod log;
pub mod process;
pub mod sandbox;
pub mod sql;
pub mod wasi;
pub mod workflow;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use shoal_model::{Grant, TaskLog};

use crate::bindings::types::TaskContext;
use crate::invoke::TaskEnv;

/// The state of one plugin instance: one per task call, dropped with its `Store`
/// (which also kills any process the call left running).
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_allow: http::AllowList,
    pub(crate) output: wasi::GuestOutput,
    pub(crate) limits: limits::TaskLimiter,
    pub(crate) log: log::LogCapability,
    pub(crate) context: context::ContextCapability,
    pub(crate) process: process::ProcessCapability,
    pub(crate) workflow: workflow::WorkflowCapability,
    pub(crate) sql: sql::SqlCapability,
}

impl HostState {
    pub(crate) fn new(
        plugin_id: &str,
        grant: &Grant,
        env: &TaskEnv,
        context: TaskContext,
    ) -> Result<Self, String> {
        let log: TaskLog = env.log.clone();
        let (wasi, output) = wasi::build(grant, env)?;
        Ok(Self {
            table: ResourceTable::new(),
            wasi,
            output,
            http: WasiHttpCtx::new(),
            http_allow: http::AllowList::new(plugin_id, grant, env.project.as_deref(), log.clone()),
            limits: limits::TaskLimiter::new(grant.memory_bytes, &grant.limits),
            log: log::LogCapability::new(log.clone(), grant.limits.guest_log_entries),
            context: context::ContextCapability::new(context, settings(grant, env), env),
            process: process::ProcessCapability::new(plugin_id, grant, env),
            workflow: workflow::WorkflowCapability::new(env),
            sql: sql::SqlCapability::new(plugin_id, grant, env),
        })
    }
}

/// The operator's settings for the plugin, with its Flink clusters for the task's
/// project when it holds `flink`.
fn settings(grant: &Grant, env: &TaskEnv) -> std::collections::BTreeMap<String, String> {
    let mut settings = grant.settings.clone();
    if let Some(flink) = &grant.flink {
        settings.extend(flink.settings_for(env.project.as_deref()));
    }
    settings
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_allow,
        }
    }
}

impl crate::bindings::types::Host for HostState {}
