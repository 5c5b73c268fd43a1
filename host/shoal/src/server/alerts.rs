//! From engine progress to alerts: workflow failure (and success, for channels that opt
//! in), a task's final failure, and a task outrunning its timeout under the warn
//! strategy. Lookups and delivery happen here, off the engine's path; the engine only
//! broadcasts progress and never waits on this.

use shoal_alert::{Alert, AlertChannel, AlertDispatcher, AlertKind, ChannelConfig};
use shoal_api::secrets::SecretBox;
use shoal_master::state::{TaskInstanceState, WorkflowState};
use shoal_master::{Master, Progress};
use tokio::sync::broadcast::error::RecvError;

/// Forward progress to the dispatcher until the master goes away.
pub fn bridge(
    master: &Master,
    dispatcher: AlertDispatcher,
    sealer: SecretBox,
) -> tokio::task::JoinHandle<()> {
    let mut progress = master.subscribe();
    let store = master.store().clone();
    tokio::spawn(async move {
        loop {
            let event = match progress.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("alerts missed {n} progress events (the engine outran them)");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let (kind, instance, task, message) = match event {
                Progress::Workflow {
                    instance,
                    state: WorkflowState::Failed,
                } => (
                    AlertKind::WorkflowFailed,
                    instance,
                    None,
                    "the workflow failed".to_owned(),
                ),
                Progress::Workflow {
                    instance,
                    state: WorkflowState::Succeeded,
                } => (
                    AlertKind::WorkflowSucceeded,
                    instance,
                    None,
                    "the workflow succeeded".to_owned(),
                ),
                Progress::Task {
                    instance,
                    task,
                    state: TaskInstanceState::Failed,
                    message,
                    ..
                } => (AlertKind::TaskFailed, instance, Some(task), message),
                Progress::TimeoutWarning { instance, task, .. } => (
                    AlertKind::TaskTimeout,
                    instance,
                    Some(task),
                    "running longer than its timeout".to_owned(),
                ),
                _ => continue,
            };
            let store = store.clone();
            let dispatcher = dispatcher.clone();
            let sealer = sealer.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    send(&store, &dispatcher, &sealer, kind, instance, task, message).await
                {
                    tracing::warn!(instance, "cannot prepare an alert: {e}");
                }
            });
        }
    })
}

async fn send(
    store: &shoal_store::Store,
    dispatcher: &AlertDispatcher,
    sealer: &SecretBox,
    kind: AlertKind,
    instance: i64,
    task: Option<String>,
    message: String,
) -> Result<(), shoal_store::StoreError> {
    let Some(target) = store.alert_target(instance).await? else {
        return Ok(());
    };
    let mut channels = Vec::new();
    for c in target.channels {
        let opened = sealer
            .open_channel(&target.project, &c.name, &c.config)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::from_value::<ChannelConfig>(v).map_err(|e| e.to_string()));
        match opened {
            Ok(config) => channels.push(AlertChannel {
                name: c.name,
                config,
                events: serde_json::from_str(&c.events).unwrap_or_default(),
            }),
            Err(e) => tracing::warn!(channel = %c.name, "stored alert channel cannot be read: {e}"),
        }
    }
    if channels.is_empty() {
        return Ok(());
    }
    dispatcher.send(
        channels,
        Alert {
            kind,
            project: target.project,
            workflow: target.workflow,
            instance_id: instance,
            task,
            message,
            at_ms: shoal_store::now_ms(),
        },
    );
    Ok(())
}
