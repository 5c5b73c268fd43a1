//! `shoal server`: engine, TaskEngine, scheduler and HTTP API in one process.
//!
//! Start-up order matters: take the engine lock and lease (one engine per store), put
//! the operators' plugin choices back, continue unfinished instances, make sure an
//! admin exists, and only then fire schedules and accept requests. Shutdown runs the
//! other way: stop accepting, stop firing, give running instances a grace period to
//! settle, give the lease up. Whatever is still running then is continued by the next
//! start, as after a crash.

mod alerts;
pub mod config;
pub mod nodes;
pub mod proxy;
pub mod worker;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use shoal_api::secrets::SecretBox;
use shoal_api::{ApiLimits, ApiParts, ApiState};
use shoal_scheduler::{CronLoop, CronLoopConfig, Launcher};

use crate::app::{DataDir, load_server_policy, open_registry};
use crate::cli::workflow::{EngineArgs, Registry, become_engine, engine_holder};
use config::{ServerArgs, ServerConfig};

/// What drives this server's instances.
enum Engine {
    /// The one engine of its store (`shoal server`).
    Embedded(shoal_node::Embedded),
    /// One master of a cluster (`shoal master`).
    Cluster(shoal_node::cluster::MasterNode),
}

pub async fn run(
    args: ServerArgs,
    data: &DataDir,
    policy: Option<&std::path::Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    run_node(args, None, data, policy, db).await
}

/// `shoal server`, or with `cluster` `shoal master`: the same API, scheduler and
/// alerts, over an embedded engine or as one master of a cluster.
pub async fn run_node(
    args: ServerArgs,
    cluster: Option<config::ClusterArgs>,
    data: &DataDir,
    policy: Option<&std::path::Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::resolve_node(data.root(), &args, db, cluster.as_ref())?;
    let registry = open_registry(data, load_server_policy(data, policy)?)?;
    for warning in shoal_runtime::capabilities::sandbox::preflight(&registry.policy().sandbox()) {
        eprintln!("warning: {warning}");
    }
    let engine = match &config.cluster {
        None => {
            let engine_args = EngineArgs {
                verbose: config.verbose,
                task_groups: config
                    .task_groups
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                server_mode: true,
            };
            let Some(engine) = become_engine(
                data,
                Registry::Open(registry.clone()),
                config.database.as_deref(),
                &engine_args,
            )
            .await?
            else {
                anyhow::bail!(
                    "another process is the engine of {} (it holds engine.lock); stop it first",
                    data.root().display()
                );
            };
            Engine::Embedded(engine)
        }
        Some(cluster) => {
            let node = shoal_node::cluster::MasterNode::start(
                data,
                cluster,
                shoal_master::MasterConfig {
                    echo_task_logs: config.verbose,
                    project_process_gate: true,
                    ..Default::default()
                },
                registry.clone(),
            )
            .await?;
            eprintln!(
                "master {} (generation {}) takes RPC on {}",
                node.lease.id, node.lease.generation, node.rpc_address
            );
            Engine::Cluster(node)
        }
    };
    let master = match &engine {
        Engine::Embedded(e) => e.master.clone(),
        Engine::Cluster(n) => n.master.clone(),
    };
    let store = master.store().clone();

    let (dispatcher, alert_task) = shoal_alert::AlertDispatcher::start_allowing(
        shoal_alert::RetryPolicy {
            attempts: config.alerts.attempts.unwrap_or(5),
            first_backoff: Duration::from_millis(config.alerts.first_backoff_ms.unwrap_or(500)),
            timeout: Duration::from_secs(config.alerts.timeout_s.unwrap_or(10)),
            ..Default::default()
        },
        1024,
        config.alert_hosts.clone(),
    );
    let stats_source = dispatcher.clone();
    let launcher = Launcher::new(master.clone());
    let cron = CronLoop::new(
        launcher.clone(),
        CronLoopConfig {
            misfire_threshold: Duration::from_secs(config.misfire_threshold_s),
            ..Default::default()
        },
    );
    let sealer = SecretBox::load_or_create(&config.secret_key_file)?;
    master.set_secret_source(std::sync::Arc::new(shoal_api::secrets::StoreSecrets::new(
        store.clone(),
        sealer.clone(),
    )));
    let capacity: Option<shoal_api::Capacity> = match &engine {
        Engine::Embedded(e) => {
            let containers = e.containers.clone();
            Some(std::sync::Arc::new(move || {
                let o = containers.snapshot();
                let slots = (o.shared.size + o.exclusive.size) as i64;
                (slots, (o.shared.used + o.exclusive.used) as i64)
            }))
        }
        Engine::Cluster(_) => None,
    };
    let state = ApiState::new(ApiParts {
        capacity,
        launcher: launcher.clone(),
        cron: cron.clone(),
        registry,
        secrets: sealer.clone(),
        staging_dir: data.root().join("uploads"),
        limits: ApiLimits {
            max_body: config.max_body_bytes,
            max_plugin: config.max_plugin_bytes,
        },
        extra_metrics: Some(std::sync::Arc::new(move || {
            let s = stats_source.stats();
            vec![
                (
                    "shoal_alerts_delivered".into(),
                    "Alerts delivered.".into(),
                    s.delivered as f64,
                ),
                (
                    "shoal_alerts_failed".into(),
                    "Alerts given up on after retries.".into(),
                    s.failed as f64,
                ),
                (
                    "shoal_alerts_dropped".into(),
                    "Alerts dropped on a full queue.".into(),
                    s.dropped as f64,
                ),
            ]
        })),
    });
    state.plugins().restore().await?;
    let recovered = master.recover_unfinished().await?;
    if !recovered.is_empty() {
        eprintln!("continuing {} unfinished instance(s)", recovered.len());
    }
    bootstrap_admin(&state, config.admin_token.as_deref()).await?;

    let bridge = alerts::bridge(&master, dispatcher, sealer.clone());
    let pump = launcher.drive(Duration::from_secs(1));
    let fires = cron.run();

    let listener = tokio::net::TcpListener::bind((config.bind, config.port))
        .await
        .with_context(|| format!("listening on {}:{}", config.bind, config.port))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let _ = std::fs::write(
        data.root().join("server.json"),
        serde_json::json!({"url": url, "pid": std::process::id()}).to_string(),
    );
    println!("shoal server listening on {url}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let lost = std::sync::Arc::new(tokio::sync::Notify::new());
    let stop = {
        let lost = lost.clone();
        let lease = match &engine {
            Engine::Cluster(node) => Some(node.lease_lost()),
            Engine::Embedded(_) => None,
        };
        async move {
            match lease {
                Some(lease_lost) => tokio::select! {
                    _ = shutdown_signal() => {}
                    loss = lease_lost => {
                        eprintln!("error: this master's lease was lost ({loss}); it stops acting on every instance, and a restart joins as a new generation");
                        lost.notify_one();
                    }
                },
                None => shutdown_signal().await,
            }
        }
    };
    let ui = shoal_ui::router(config.ui_dir.clone());
    axum::serve(
        listener,
        shoal_api::router(state).merge(mcp_router(&url)).merge(ui),
    )
    .with_graceful_shutdown(stop)
    .await
    .context("serving the API")?;
    if let Engine::Cluster(node) = &engine
        && node.lease_is_lost()
    {
        fires.abort();
        pump.abort();
        bridge.abort();
        drop(alert_task);
        let _ = std::fs::remove_file(data.root().join("server.json"));
        return Ok(ExitCode::from(3));
    }

    fires.abort();
    pump.abort();
    if let Engine::Cluster(node) = &engine {
        // Another master adopts the instances at once; nothing to wait for here.
        eprintln!("shutting down: leaving the cluster; another master continues the instances");
        node.shutdown().await;
    } else {
        eprintln!("shutting down: no new requests or fires; waiting for running instances");
    }
    let grace = Duration::from_secs(config.shutdown_grace_s);
    if matches!(engine, Engine::Embedded(_))
        && tokio::time::timeout(grace, master.wait_idle())
            .await
            .is_err()
    {
        eprintln!(
            "instances still running after {}s; the next start continues them",
            grace.as_secs()
        );
    }
    bridge.abort();
    drop(alert_task);
    match engine {
        Engine::Embedded(engine) => {
            store.release_lease("engine", &engine_holder(data)).await?;
            drop(engine);
        }
        Engine::Cluster(_) => {}
    }
    let _ = std::fs::remove_file(data.root().join("server.json"));
    Ok(ExitCode::SUCCESS)
}

/// On first start (no users yet), create the `admin` user and print its token once.
async fn bootstrap_admin(state: &ApiState, configured: Option<&str>) -> anyhow::Result<()> {
    Ok(shoal_api::auth::bootstrap_admin(state.store(), configured).await?)
}

/// MCP at `/mcp`, acting through this process's own API at `url` with each caller's
/// token.
pub(crate) fn mcp_router(url: &str) -> axum::Router {
    shoal_mcp::router(url)
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
