//! `shoal worker`: one worker node of a cluster, until SIGINT or SIGTERM.

use std::process::ExitCode;

use crate::app::{DataDir, load_server_policy, open_registry};
use crate::server::config::{WorkerArgs, WorkerNodeConfig};

pub async fn run(
    args: WorkerArgs,
    data: &DataDir,
    policy: Option<&std::path::Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = WorkerNodeConfig::resolve(data.root(), &args, db)?;
    let registry = open_registry(data, load_server_policy(data, policy)?)?;
    for warning in shoal_runtime::capabilities::sandbox::preflight(&registry.policy().sandbox()) {
        eprintln!("warning: {warning}");
    }
    let node =
        shoal_node::cluster::WorkerNode::start(data, &config.cluster, &config.worker, registry)
            .await?;
    let _ = std::fs::write(
        data.root().join("worker.json"),
        serde_json::json!({
            "id": node.id,
            "rpc": node.rpc_address,
            "pid": std::process::id(),
        })
        .to_string(),
    );
    println!(
        "shoal worker {} (generation {}, groups {}, {} slots) takes RPC on {}",
        node.id,
        node.generation(),
        config.worker.groups.join(","),
        config.worker.slots,
        node.rpc_address
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    super::shutdown_signal().await;
    eprintln!("shutting down: attempts still running are failed over by the masters");
    node.shutdown().await;
    let _ = std::fs::remove_file(data.root().join("worker.json"));
    Ok(ExitCode::SUCCESS)
}
