//! An instance's control commands to the nodes that execute its task attempts
//! (dispatch, kill, let go), sent in the order the instance's worker decided them.
//!
//! The worker never waits on a node: it hands commands to this per-instance sender.
//! Dispatches go out side by side (up to [`DISPATCHES_AT_ONCE`]: a fan-out of thousands
//! of tasks must not wait for one round trip each); any other command waits until the
//! dispatches before it are done, so a kill decided after a dispatch reaches the node
//! after it. A dispatch the node refuses, or that no node takes after a few tries,
//! comes back to the worker as a launch failure.

use std::sync::Arc;
use std::time::Duration;

use shoal_protocol::{ClientError, TaskExecutorClient, TaskKey, TaskRequest};
use tokio::sync::{mpsc, oneshot};

use super::instance::Event;

pub(super) enum Control {
    Dispatch(Box<TaskRequest>),
    Kill {
        host: String,
        key: TaskKey,
    },
    /// Ask `host` whether it still holds the attempt (its node's generation moved);
    /// when not, the worker hears [`Event::AttemptLost`]. In line with the dispatches, so
    /// an attempt is asked after only once its dispatch went out (or failed).
    AskAfter {
        host: String,
        key: TaskKey,
        name: String,
        epoch: u64,
    },
    /// Stop following these attempts without cancelling external jobs (the instance is
    /// given up); `done` is told once none of them runs any more.
    LetGo {
        executing: Vec<(String, TaskKey)>,
        done: oneshot::Sender<()>,
    },
}

/// How often an unanswered dispatch is sent again before it counts as failed (the node
/// takes a repeated dispatch of one attempt once).
const DISPATCH_TRIES: u32 = 4;

/// Dispatches of one instance in flight at once.
pub(super) const DISPATCHES_AT_ONCE: usize = 64;

pub(super) struct Controller;

impl Controller {
    pub(super) fn spawn(
        client: Arc<dyn TaskExecutorClient>,
        events: mpsc::UnboundedSender<Event>,
    ) -> mpsc::UnboundedSender<Control> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Control>();
        tokio::spawn(async move {
            let mut sending = tokio::task::JoinSet::new();
            while let Some(command) = rx.recv().await {
                if let Control::Dispatch(request) = command {
                    while sending.len() >= DISPATCHES_AT_ONCE {
                        sending.join_next().await;
                    }
                    let (client, events) = (client.clone(), events.clone());
                    sending.spawn(async move { dispatch(&*client, *request, &events).await });
                    continue;
                }
                // Whatever follows a dispatch reaches the node after it.
                while sending.join_next().await.is_some() {}
                match command {
                    Control::Dispatch(_) => unreachable!("handled above"),
                    Control::Kill { host, key } => {
                        if let Err(e) = client.kill(&host, key).await {
                            tracing::warn!("killing {key} on {host}: {e}");
                        }
                    }
                    Control::AskAfter {
                        host,
                        key,
                        name,
                        epoch,
                    } => {
                        let held = !host.is_empty()
                            && matches!(
                                client.take_over(&host, key, epoch).await,
                                Ok(shoal_protocol::TakeOver::Running)
                            );
                        if !held {
                            let id = key.task_instance_id as i64;
                            let _ = events.send(Event::AttemptLost { name, id });
                        }
                    }
                    Control::LetGo { executing, done } => {
                        for (host, key) in executing {
                            if let Err(e) = client.pause(&host, key).await {
                                tracing::warn!("letting {key} on {host} go: {e}");
                            }
                        }
                        let _ = done.send(());
                    }
                }
            }
        });
        tx
    }
}

async fn dispatch(
    client: &dyn TaskExecutorClient,
    request: TaskRequest,
    events: &mpsc::UnboundedSender<Event>,
) {
    let key = request.key();
    let name = request.identity.task_name.clone();
    let host = request.host.clone();
    let mut tries = 0;
    let error = loop {
        match client.dispatch(request.clone()).await {
            Ok(()) => return,
            Err(e @ ClientError::Unreachable { .. }) if tries + 1 < DISPATCH_TRIES => {
                tries += 1;
                tracing::debug!("dispatching {key} to {host}: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(100 << (2 * tries))).await;
            }
            Err(e) => break e,
        }
    };
    // It may have arrived after all (an answer lost on the way back): make sure it does
    // not run unseen while the failure is handled as the attempt's end.
    if matches!(error, ClientError::Unreachable { .. }) {
        let _ = client.kill(&host, key).await;
    }
    let unreachable = matches!(error, ClientError::Unreachable { .. });
    let _ = events.send(Event::LaunchFailed {
        name,
        id: key.task_instance_id as i64,
        message: format!("could not be dispatched: {error}"),
        unreachable,
    });
}
