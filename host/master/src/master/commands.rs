//! Operations other processes queue in the store's command table: this master takes
//! those of the instances it owns and applies them ([`Master::serve_commands`]), and
//! [`queue_operation`] is how a process that does not drive an instance reaches the
//! one that does.

use std::time::Duration;

use shoal_store::{Store, Write};
use tokio::sync::oneshot;

use super::{Master, MasterError, Operation, instance};

impl Master {
    /// Take commands queued in the store (by `shoal stop ID` in another process, say)
    /// and apply them, until the returned handle is dropped or aborted.
    pub fn serve_commands(&self) -> tokio::task::JoinHandle<()> {
        let master = self.clone();
        tokio::spawn(async move {
            loop {
                match master.inner.store.take_commands(master.owner(), 64).await {
                    Ok(commands) => {
                        for command in commands {
                            master.apply_queued(command).await;
                        }
                    }
                    Err(e) => tracing::warn!("reading the command queue failed: {e}"),
                }
                tokio::time::sleep(master.inner.config.command_poll).await;
            }
        })
    }

    async fn apply_queued(&self, command: shoal_store::CommandRow) {
        let Some(instance) = command.workflow_instance_id else {
            tracing::warn!("command {} names no instance; ignored", command.id);
            return;
        };
        let op: Result<Operation, _> = serde_json::from_value(command.payload.clone());
        let result = match op {
            Ok(op) => {
                let (reply, answer) = oneshot::channel();
                match self
                    .send(
                        instance,
                        instance::Event::Queued {
                            op,
                            command_id: command.id,
                            reply,
                        },
                    )
                    .await
                {
                    Ok(()) => answer.await.unwrap_or(Err(MasterError::Gone)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(MasterError::BadDefinition {
                id: command.id,
                version: 0,
                message: format!("unreadable command: {e}"),
            }),
        };
        if let Err(e) = result {
            tracing::info!("command {} on instance {instance}: {e}", command.id);
        }
    }
}

/// Queue `op` on `instance` for whichever engine or master drives it, and wait (up to
/// `within`) for its verdict on the instance's event stream.
pub async fn queue_operation(
    store: &Store,
    instance: i64,
    op: &Operation,
    within: Duration,
) -> Result<(), MasterError> {
    queue_operation_for_message(store, instance, op, within)
        .await
        .map(|_| ())
}

/// [`queue_operation`], returning the message the owner recorded with its verdict (an
/// action's outcome, such as where a savepoint went).
pub async fn queue_operation_for_message(
    store: &Store,
    instance: i64,
    op: &Operation,
    within: Duration,
) -> Result<String, MasterError> {
    let ids = store
        .write(vec![Write::PushCommand {
            kind: "operation".into(),
            workflow_instance_id: Some(instance),
            payload: serde_json::to_value(op).unwrap_or_default(),
        }])
        .await?;
    let command_id = ids[0].ok_or(MasterError::Gone)?;
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        for event in store.events(instance).await? {
            if event.kind == "command" && event.payload["command_id"] == command_id {
                return if event.payload["accepted"] == true {
                    Ok(event.payload["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned())
                } else {
                    Err(MasterError::Refused(
                        event.payload["message"]
                            .as_str()
                            .unwrap_or("refused")
                            .to_owned(),
                    ))
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(MasterError::NotTaken { command_id, within })
}
