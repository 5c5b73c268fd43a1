//! The master's end of the task update stream: updates from the executing nodes go to
//! their instance's worker, acknowledged once stored.

use shoal_protocol::{BoxFuture, KeyedEvent, TaskEventSink};
use tokio::sync::oneshot;

use super::{Inner, Master, instance};

/// The master's end of the task update stream: each update goes to the worker of its
/// instance (loaded first if none holds it) and is acknowledged once that worker stored
/// the batch holding it.
pub(super) struct UpdateSink(pub(super) std::sync::Weak<Inner>);

impl TaskEventSink for UpdateSink {
    fn deliver(&self, event: KeyedEvent) -> BoxFuture<'static, Result<(), String>> {
        let Some(inner) = self.0.upgrade() else {
            return Box::pin(async { Err("the master stopped".to_owned()) });
        };
        let master = Master { inner };
        let instance = event.key.workflow_instance_id as i64;
        let (ack, acked) = oneshot::channel();
        let update = instance::Event::Update {
            key: event.key,
            update: event.update,
            ack: Some(ack),
        };
        // Taken now, in the order delivered: an in-process executor does not wait.
        let sent = master.send_now(instance, update);
        Box::pin(async move {
            if let Err(update) = sent {
                master
                    .send(instance, update)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            acked.await.map_err(|_| {
                format!("instance {instance}: its worker stopped before storing the update")
            })
        })
    }

    /// An instance's updates in order: straight to its live worker, all of them, so
    /// they join one batch; once one cannot go straight (the instance is not live here)
    /// it and every later one go through loading, one after another.
    fn deliver_many(&self, events: Vec<KeyedEvent>) -> BoxFuture<'static, Vec<Result<(), String>>> {
        let Some(inner) = self.0.upgrade() else {
            let n = events.len();
            return Box::pin(async move { vec![Err("the master stopped".to_owned()); n] });
        };
        let master = Master { inner };
        let mut straight = Vec::new();
        let mut later = Vec::new();
        for event in events {
            let instance = event.key.workflow_instance_id as i64;
            let (ack, acked) = oneshot::channel();
            let update = instance::Event::Update {
                key: event.key,
                update: event.update,
                ack: Some(ack),
            };
            if later.is_empty() {
                match master.send_now(instance, update) {
                    Ok(()) => straight.push((instance, acked)),
                    Err(update) => later.push((instance, update, acked)),
                }
            } else {
                later.push((instance, update, acked));
            }
        }
        Box::pin(async move {
            let mut out = Vec::with_capacity(straight.len() + later.len());
            let stopped = |instance: i64| {
                format!("instance {instance}: its worker stopped before storing the update")
            };
            for (instance, acked) in straight {
                out.push(acked.await.map_err(|_| stopped(instance)));
            }
            for (instance, update, acked) in later {
                let result = match master.send(instance, update).await {
                    Ok(()) => acked.await.map_err(|_| stopped(instance)),
                    Err(e) => Err(e.to_string()),
                };
                out.push(result);
            }
            out
        })
    }
}
