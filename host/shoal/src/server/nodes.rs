//! `shoal nodes`: the cluster's registry, from a server's API or straight from the
//! store (`--db`).

use std::process::ExitCode;

use shoal_api::routes::NodeList;
use shoal_api::view::View;

use crate::app::{DataDir, open_store};
use crate::client::Client;

/// Read the registry from the store.
pub async fn local(data: &DataDir, db: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(data, db).await?;
    let nodes = store.nodes().await?.into_iter().map(View::view).collect();
    print(NodeList { nodes }, json)
}

/// Ask a server.
pub async fn remote(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let list: NodeList = client
        .send(client.request(reqwest::Method::GET, "/nodes"))
        .await?
        .json()
        .await?;
    print(list, json)
}

fn print(list: NodeList, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.nodes.is_empty() {
        println!(
            "no nodes registered (a single-node `shoal server` or `shoal run` registers none)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header([
            "id",
            "role",
            "state",
            "address",
            "groups",
            "slots used/free",
            "cpu",
            "mem",
            "heartbeat",
            "gen",
        ]);
    for n in list.nodes {
        let state = if n.failover_pending {
            format!("{} (failover pending)", n.state)
        } else {
            n.state
        };
        table.add_row([
            n.id,
            n.role,
            state,
            n.address,
            n.groups.join(","),
            format!("{}/{}", n.slots_used, n.slots_free),
            format!("{:.0}%", n.cpu_load * 100.0),
            format!("{:.0}%", n.memory_used * 100.0),
            format!("{:.1}s ago", n.heartbeat_age_ms as f64 / 1000.0),
            n.generation.to_string(),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
