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

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use shoal_api::secrets::SecretBox;
use shoal_api::{ApiLimits, ApiParts, ApiState};
use shoal_scheduler::{CronLoop, CronLoopConfig, Launcher};

use crate::app::{DataDir, load_server_policy, open_registry};
use crate::cli::workflow::{EngineArgs, Registry, become_engine, engine_holder};
use config::{ServerArgs, ServerConfig};

pub async fn run(
    args: ServerArgs,
    data: &DataDir,
    policy: Option<&std::path::Path>,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::resolve(data.root(), &args, db)?;
    let registry = open_registry(data, load_server_policy(data, policy)?)?;
    for warning in shoal_runtime::capabilities::sandbox::preflight(&registry.policy().sandbox()) {
        eprintln!("warning: {warning}");
    }
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
    let master = engine.master.clone();
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
    let state = ApiState::new(ApiParts {
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

    axum::serve(listener, shoal_api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving the API")?;

    eprintln!("shutting down: no new requests or fires; waiting for running instances");
    fires.abort();
    pump.abort();
    let grace = Duration::from_secs(config.shutdown_grace_s);
    if tokio::time::timeout(grace, master.wait_idle())
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
    store.release_lease("engine", &engine_holder(data)).await?;
    let _ = std::fs::remove_file(data.root().join("server.json"));
    drop(engine);
    Ok(ExitCode::SUCCESS)
}

/// On first start (no users yet), create the `admin` user and print its token once.
async fn bootstrap_admin(state: &ApiState, configured: Option<&str>) -> anyhow::Result<()> {
    let store = state.store();
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let Some(user) = store.create_user("admin", "admin").await? else {
        return Ok(());
    };
    match configured {
        Some(token) => {
            store
                .create_token(
                    user.id,
                    "bootstrap",
                    &shoal_api::auth::hash_token(token),
                    None,
                )
                .await?;
            eprintln!("created user `admin` with the configured admin token");
        }
        None => {
            let (token, hash) = shoal_api::auth::new_token();
            store
                .create_token(user.id, "bootstrap", &hash, None)
                .await?;
            println!("first admin token (shown once, keep it): {token}");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
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
