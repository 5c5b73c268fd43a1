use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::deliver::Courier;
use crate::{Alert, AlertChannel, ErrorChain, WebhookHosts};

/// How many deliveries run at once. Without a bound a dead endpoint under a burst of
/// failures would pile up retrying tasks; with it the queue fills instead and
/// [`AlertDispatcher::send`] starts dropping, which is visible in [`AlertStats::dropped`].
pub const MAX_IN_FLIGHT: usize = 64;

/// How hard to try before giving up on one (channel, alert) delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 0 is treated as 1.
    pub attempts: u32,
    /// The wait after the first failure; each later wait doubles, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// The limit for one attempt, connection included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failed`-th failed attempt (1-based).
    fn backoff(&self, failed: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Outcomes so far, each counted per (channel, alert) delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertStats {
    pub delivered: u64,
    /// Given up on after the retries (or at once, for an error retrying cannot fix).
    pub failed: u64,
    /// Never attempted because the queue was full or the dispatcher had stopped.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// The engine's handle for raising alerts. Cheap to clone; when the last clone is dropped
/// the background task delivers what is still queued or in flight and then ends.
#[derive(Debug, Clone)]
pub struct AlertDispatcher {
    queue: mpsc::Sender<Batch>,
    counters: Arc<Counters>,
}

#[derive(Debug)]
struct Batch {
    channels: Vec<AlertChannel>,
    alert: Alert,
}

impl AlertDispatcher {
    /// Starts the background task on the current tokio runtime (so it must be called from
    /// within one). `queue` bounds the alerts waiting to be picked up (at least 1).
    ///
    /// Awaiting the returned handle waits for the graceful end described on the type;
    /// aborting it abandons queued and in-flight deliveries at once.
    ///
    /// Webhook and Slack deliveries reach public addresses only; see [`Self::start_allowing`].
    pub fn start(policy: RetryPolicy, queue: usize) -> (AlertDispatcher, JoinHandle<()>) {
        Self::start_allowing(policy, queue, WebhookHosts::public_only())
    }

    /// [`Self::start`], letting deliveries also reach the non-public addresses `hosts` lists.
    pub fn start_allowing(
        policy: RetryPolicy,
        queue: usize,
        hosts: WebhookHosts,
    ) -> (AlertDispatcher, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(queue.max(1));
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            policy,
            counters: Arc::clone(&counters),
            courier: Courier::new(hosts),
        });
        let task = tokio::spawn(run(shared, receiver));
        (
            AlertDispatcher {
                queue: sender,
                counters,
            },
            task,
        )
    }

    /// Queues `alert` for the channels among `channels` that want its kind. Never waits:
    /// the engine calls this on its own path, so when the queue is full the alert is
    /// dropped with a warning rather than holding the engine up.
    pub fn send(&self, channels: Vec<AlertChannel>, alert: Alert) {
        let channels: Vec<AlertChannel> = channels
            .into_iter()
            .filter(|channel| channel.wants(alert.kind))
            .collect();
        if channels.is_empty() {
            return;
        }
        let (batch, reason) = match self.queue.try_send(Batch { channels, alert }) {
            Ok(()) => return,
            Err(TrySendError::Full(batch)) => (batch, "the alert queue is full"),
            Err(TrySendError::Closed(batch)) => (batch, "the alert dispatcher has stopped"),
        };
        let pairs = batch.channels.len() as u64;
        self.counters.dropped.fetch_add(pairs, Ordering::Relaxed);
        tracing::warn!(
            kind = %batch.alert.kind,
            workflow = %batch.alert.workflow,
            instance = batch.alert.instance_id,
            channels = pairs,
            "{reason}: dropping the alert"
        );
    }

    pub fn stats(&self) -> AlertStats {
        AlertStats {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }
}

struct Shared {
    policy: RetryPolicy,
    counters: Arc<Counters>,
    courier: Courier,
}

async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Batch>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut in_flight = JoinSet::new();
    loop {
        tokio::select! {
            batch = queue.recv() => {
                let Some(Batch { channels, alert }) = batch else { break };
                let alert = Arc::new(alert);
                for channel in channels {
                    let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
                    in_flight.spawn(deliver_with_retries(
                        Arc::clone(&shared),
                        channel,
                        Arc::clone(&alert),
                        slot,
                    ));
                }
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => report_panic(done),
        }
    }
    while let Some(done) = in_flight.join_next().await {
        report_panic(done);
    }
}

fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        tracing::error!(error = %err, "an alert delivery task ended abnormally");
    }
}

async fn deliver_with_retries(
    shared: Arc<Shared>,
    channel: AlertChannel,
    alert: Arc<Alert>,
    _slot: OwnedSemaphorePermit,
) {
    let policy = &shared.policy;
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        let err = match shared
            .courier
            .deliver(&channel.config, &alert, policy.timeout)
            .await
        {
            Ok(()) => {
                shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(channel = %channel.name, attempt, kind = %alert.kind,
                    workflow = %alert.workflow, instance = alert.instance_id, "alert delivered");
                return;
            }
            Err(err) => err,
        };
        tracing::warn!(channel = %channel.name, attempt, error = %ErrorChain(&err),
            "alert delivery failed");
        if attempt >= attempts || !err.is_retryable() {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(channel = %channel.name, attempts = attempt, kind = %alert.kind,
                workflow = %alert.workflow, instance = alert.instance_id,
                error = %ErrorChain(&err), "giving up on the alert");
            return;
        }
        tokio::time::sleep(policy.backoff(attempt)).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<_> = (1..=8).map(|failed| policy.backoff(failed)).collect();
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            waits,
            vec![
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(16000),
                ms(30000),
                ms(30000)
            ]
        );
        assert_eq!(policy.backoff(200), ms(30000));
    }
}
