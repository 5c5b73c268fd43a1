//! The process parts the CLI uses, assembled by `shoal-node`; this module only adds
//! what the CLI prints.

use std::path::Path;

use shoal_model::OperatorPolicy;
pub use shoal_node::{
    DataDir, EngineLock, default_containers, load_server_policy, open_registry, open_store,
    task_engine_for,
};

/// The policy for running on one's own machine (`shoal run`, `shoal task run`); see
/// [`shoal_node::load_policy`]. Its fallback warning goes to stderr.
pub fn load_policy(data: &DataDir, flag: Option<&Path>) -> anyhow::Result<OperatorPolicy> {
    let (policy, warning) = shoal_node::load_policy(data, flag)?;
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    Ok(policy)
}

pub fn open_task_engine(
    data: &DataDir,
    policy: OperatorPolicy,
) -> anyhow::Result<shoal_task_engine::TaskEngine> {
    shoal_node::open_task_engine(data, policy)
}
