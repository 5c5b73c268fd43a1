//! An instance's control commands to the nodes that execute its task attempts
//! (dispatch, kill, let go), sent in the order the instance's worker decided them.
//!
//! The worker never waits on a node: it hands commands to this per-instance sender.
//! Dispatches go out in batches (whatever queued up while the last went out, each
//! node's share in one request) and several batches side by side (up to
//! [`BATCHES_AT_ONCE`]): a fan-out of thousands of tasks must not wait for one round
//! trip each. Any other command waits until the dispatches before it are done, so a kill decided after a dispatch reaches the node
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

/// Batches of dispatches of one instance in flight at once.
pub(super) const BATCHES_AT_ONCE: usize = 8;

/// Most dispatches in one batch (each worker's share of it goes in one request).
const BATCH: usize = 256;

pub(super) struct Controller;

impl Controller {
    pub(super) fn spawn(
        client: Arc<dyn TaskExecutorClient>,
        events: mpsc::UnboundedSender<Event>,
    ) -> mpsc::UnboundedSender<Control> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Control>();
        tokio::spawn(async move {
            let mut sending = tokio::task::JoinSet::new();
            // A command read while gathering a batch, handled next.
            let mut next: Option<Control> = None;
            loop {
                let command = match next.take() {
                    Some(c) => c,
                    None => match rx.recv().await {
                        Some(c) => c,
                        None => break,
                    },
                };
                if let Control::Dispatch(first) = command {
                    // Whatever the worker decided meanwhile goes in the same batch.
                    let mut batch = vec![*first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(Control::Dispatch(request)) => batch.push(*request),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    while sending.len() >= BATCHES_AT_ONCE {
                        sending.join_next().await;
                    }
                    let (client, events) = (client.clone(), events.clone());
                    sending.spawn(async move { dispatch(&*client, batch, &events).await });
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

/// Dispatch a batch; what no node answered is sent again, a few times, and what still
/// fails comes back to the worker as launch failures.
async fn dispatch(
    client: &dyn TaskExecutorClient,
    mut batch: Vec<TaskRequest>,
    events: &mpsc::UnboundedSender<Event>,
) {
    let mut tries = 0;
    let mut failed = Vec::new();
    while !batch.is_empty() {
        tries += 1;
        let answers = client.dispatch_many(batch.clone()).await;
        let mut again = Vec::new();
        for (request, answer) in batch.into_iter().zip(answers) {
            match answer {
                Ok(()) => {}
                Err(e @ ClientError::Unreachable { .. }) if tries < DISPATCH_TRIES => {
                    tracing::debug!(
                        "dispatching {} to {}: {e}; trying again",
                        request.key(),
                        request.host
                    );
                    again.push(request);
                }
                Err(e) => failed.push((request, e)),
            }
        }
        batch = again;
        if !batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(100 << (2 * tries))).await;
        }
    }
    for (request, error) in failed {
        let key = request.key();
        let unreachable = matches!(error, ClientError::Unreachable { .. });
        // It may have arrived after all (an answer lost on the way back): make sure it
        // does not run unseen while the failure is handled as the attempt's end.
        if unreachable {
            let _ = client.kill(&request.host, key).await;
        }
        let _ = events.send(Event::LaunchFailed {
            name: request.identity.task_name.clone(),
            id: key.task_instance_id as i64,
            message: format!("could not be dispatched: {error}"),
            unreachable,
        });
    }
}
