//! Updates on their way to masters: one lane per master address, sent in batches and
//! again until the master acknowledges them by key.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_protocol::rpc::{UpdatesMsg, UpdatesReply, paths};
use shoal_protocol::{KeyedEvent, TaskKey};
use shoal_rpc::RpcClient;
use tokio::sync::{Notify, oneshot};

/// Most updates in one request. A lane has one request in flight (its updates must
/// arrive in order), so a batch must hold what a busy worker reports during one round
/// trip: at 512, a fan-out of short tasks waited on the lane, not on the master.
const BATCH: usize = 4096;
/// Most log text in one request, well below [`shoal_protocol::rpc::MAX_BODY`] (a piece
/// holds at most 64 KiB, so one always fits).
const BATCH_LOG_BYTES: usize = 4 << 20;
/// Log text waiting in all lanes beyond which log shipping pauses (see
/// [`Outbox::backed_up`]). State updates are bounded by the attempts running here; log
/// pieces of a master unreachable for long are not, so they stop here and stay on disk.
pub const MAX_QUEUED_LOG_BYTES: usize = 64 << 20;
/// The first retry after a failed send, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

type Ack = oneshot::Sender<Result<(), String>>;

struct Pending {
    event: KeyedEvent,
    ack: Option<Ack>,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<Pending>,
    notify: Arc<Notify>,
    running: bool,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    rpc: RpcClient,
    node: String,
    generation: AtomicU64,
    lanes: Mutex<HashMap<String, Lane>>,
    /// Bytes of log text queued over all lanes.
    log_bytes: AtomicUsize,
}

/// The log text an update carries.
fn log_len(event: &KeyedEvent) -> usize {
    match &event.update {
        shoal_protocol::TaskUpdate::Log { text, .. } => text.len(),
        _ => 0,
    }
}

impl Outbox {
    pub fn new(rpc: RpcClient, node: impl Into<String>, generation: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                rpc,
                node: node.into(),
                generation: AtomicU64::new(generation),
                lanes: Mutex::default(),
                log_bytes: AtomicUsize::new(0),
            }),
        }
    }

    /// The node registered again as a new generation.
    pub fn set_generation(&self, generation: u64) {
        self.inner.generation.store(generation, Ordering::SeqCst);
    }

    /// Queue `event` for the master at `address`; the receiver is told once it is
    /// acknowledged (or refused for good).
    pub fn push(&self, address: &str, event: KeyedEvent) -> oneshot::Receiver<Result<(), String>> {
        let (ack, acked) = oneshot::channel();
        self.inner
            .log_bytes
            .fetch_add(log_len(&event), Ordering::SeqCst);
        let mut lanes = self.lock();
        let lane = lanes.entry(address.to_owned()).or_default();
        lane.queue.push_back(Pending {
            event,
            ack: Some(ack),
        });
        lane.notify.notify_one();
        if !lane.running {
            lane.running = true;
            let outbox = self.clone();
            let address = address.to_owned();
            tokio::spawn(async move { outbox.send_lane(address).await });
        }
        acked
    }

    /// Move the attempt's queued updates to the lane of `address` (a new owner took the
    /// instance over), keeping their order.
    pub fn redirect(&self, key: TaskKey, address: &str) {
        let mut lanes = self.lock();
        let mut moved = Vec::new();
        for (to, lane) in lanes.iter_mut() {
            if to == address {
                continue;
            }
            let (keep, take): (VecDeque<Pending>, VecDeque<Pending>) =
                lane.queue.drain(..).partition(|p| p.event.key != key);
            lane.queue = keep;
            moved.extend(take);
        }
        if moved.is_empty() {
            return;
        }
        drop(lanes);
        // Counted again as they are queued anew.
        let bytes: usize = moved.iter().map(|p| log_len(&p.event)).sum();
        self.inner.log_bytes.fetch_sub(bytes, Ordering::SeqCst);
        for p in moved {
            let acked = self.push(address, p.event);
            if let Some(ack) = p.ack {
                tokio::spawn(async move {
                    let _ = ack.send(acked.await.unwrap_or(Err("outbox dropped".into())));
                });
            }
        }
    }

    /// Whether updates of this attempt wait for an acknowledgement.
    pub fn has_pending(&self, key: TaskKey) -> bool {
        self.lock()
            .values()
            .any(|lane| lane.queue.iter().any(|p| p.event.key == key))
    }

    /// How many updates wait, over all lanes.
    pub fn pending(&self) -> usize {
        self.lock().values().map(|l| l.queue.len()).sum()
    }

    /// Whether so much log text waits that shipping more should wait too.
    pub fn backed_up(&self) -> bool {
        self.inner.log_bytes.load(Ordering::SeqCst) > MAX_QUEUED_LOG_BYTES
    }

    /// Bytes of log text waiting for acknowledgement.
    pub fn queued_log_bytes(&self) -> usize {
        self.inner.log_bytes.load(Ordering::SeqCst)
    }

    /// Forget every queued update (the node was declared dead).
    pub fn drop_all(&self) {
        for lane in self.lock().values_mut() {
            for p in lane.queue.drain(..) {
                self.inner
                    .log_bytes
                    .fetch_sub(log_len(&p.event), Ordering::SeqCst);
                if let Some(ack) = p.ack {
                    let _ = ack.send(Err("dropped: this node was declared dead".into()));
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lane>> {
        self.inner.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send_lane(&self, address: String) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (batch, notify) = {
                let mut lanes = self.lock();
                let Some(lane) = lanes.get_mut(&address) else {
                    return;
                };
                if lane.queue.is_empty() {
                    lane.running = false;
                    return;
                }
                let mut bytes = 0;
                let batch: Vec<KeyedEvent> = lane
                    .queue
                    .iter()
                    .take(BATCH)
                    .take_while(|p| {
                        let first = bytes == 0;
                        bytes += log_len(&p.event);
                        first || bytes <= BATCH_LOG_BYTES
                    })
                    .map(|p| p.event.clone())
                    .collect();
                (batch, lane.notify.clone())
            };
            let msg = UpdatesMsg {
                node: self.inner.node.clone(),
                node_generation: self.inner.generation.load(Ordering::SeqCst),
                events: batch,
            };
            match self
                .inner
                .rpc
                .call::<_, UpdatesReply>(&address, paths::UPDATES, &msg)
                .await
            {
                Ok(reply) if !reply.acked.is_empty() || !reply.refused.is_empty() => {
                    backoff = FIRST_BACKOFF;
                    self.settle(&address, &reply);
                }
                Ok(_) => {
                    // Nothing taken (the master is loading the instance, say): soon again.
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = notify.notified() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    tracing::debug!("sending updates to {address}: {e}; again in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn settle(&self, address: &str, reply: &UpdatesReply) {
        let mut lanes = self.lock();
        let Some(lane) = lanes.get_mut(address) else {
            return;
        };
        let mut outcome: HashMap<(TaskKey, u32), Result<(), String>> = HashMap::new();
        for id in &reply.acked {
            outcome.insert(*id, Ok(()));
        }
        for (key, seq, why) in &reply.refused {
            outcome.insert((*key, *seq), Err(why.clone()));
        }
        lane.queue
            .retain_mut(|p| match outcome.remove(&(p.event.key, p.event.seq)) {
                Some(result) => {
                    self.inner
                        .log_bytes
                        .fetch_sub(log_len(&p.event), Ordering::SeqCst);
                    if let Some(ack) = p.ack.take() {
                        let _ = ack.send(result);
                    }
                    false
                }
                None => true,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::TaskUpdate;

    fn piece(id: u64, seq: u32, text: &str) -> KeyedEvent {
        KeyedEvent {
            key: TaskKey {
                workflow_instance_id: 1,
                task_instance_id: id,
                attempt: 1,
            },
            seq,
            host: "w1".into(),
            update: TaskUpdate::Log {
                offset: 0,
                next_offset: text.len() as u64,
                text: text.into(),
                last: false,
            },
        }
    }

    /// Takes every update and counts the updates, their log text and the batches
    /// (one instance's share of a request) they came in.
    struct Counting(Arc<Mutex<(usize, usize, usize)>>);

    impl shoal_protocol::TaskEventSink for Counting {
        fn deliver(
            &self,
            event: KeyedEvent,
        ) -> shoal_protocol::BoxFuture<'static, Result<(), String>> {
            let mut got = self.0.lock().unwrap();
            got.0 += 1;
            got.1 += log_len(&event);
            Box::pin(async { Ok(()) })
        }

        fn deliver_many(
            &self,
            events: Vec<KeyedEvent>,
        ) -> shoal_protocol::BoxFuture<'static, Vec<Result<(), String>>> {
            self.0.lock().unwrap().2 += 1;
            let acks: Vec<_> = events.into_iter().map(|e| self.deliver(e)).collect();
            Box::pin(futures_util::future::join_all(acks))
        }
    }

    /// More log text than one request may hold (axum refuses bodies past 2 MiB by
    /// default) reaches a real master endpoint in several batches, all acknowledged.
    #[tokio::test]
    async fn a_backlog_of_log_text_goes_out_in_batches_a_master_takes() {
        let got = Arc::new(Mutex::new((0, 0, 0)));
        let secret = "s".repeat(16);
        let router = shoal_rpc::master::router(
            Arc::new(Counting(got.clone())),
            &secret,
            Arc::new(|_: &str, _: u64| true),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let rpc = RpcClient::new(&shoal_rpc::RpcConfig {
            secret,
            timeout: Duration::from_secs(10),
        });
        let outbox = Outbox::new(rpc, "w1", 1);
        let text = "y".repeat(60 * 1024);
        let acks: Vec<_> = (0..200)
            .map(|i| outbox.push(&address, piece(i, 1, &text)))
            .collect();
        for ack in acks {
            let acked = tokio::time::timeout(Duration::from_secs(20), ack).await;
            assert_eq!(acked.unwrap().unwrap(), Ok(()));
        }
        let (updates, bytes, batches) = *got.lock().unwrap();
        assert_eq!((updates, bytes), (200, 200 * text.len()));
        // 12 MiB of text, at most 4 MiB a request.
        assert!(batches >= 3, "{batches} batch(es)");
        assert_eq!(outbox.queued_log_bytes(), 0);
    }

    /// Queued log text is counted as it comes and goes (a redirect moves it, a dropped
    /// queue frees it), and past the cap the outbox says it is backed up.
    #[tokio::test]
    async fn queued_log_text_is_counted() {
        let rpc = RpcClient::new(&shoal_rpc::RpcConfig {
            secret: "s".repeat(16),
            timeout: Duration::from_millis(200),
        });
        let outbox = Outbox::new(rpc, "w1", 1);
        // Nobody listens there: the pieces stay queued.
        let unreachable = "http://127.0.0.1:9";
        drop(outbox.push(unreachable, piece(1, 1, "0123456789")));
        drop(outbox.push(unreachable, piece(2, 1, "abcde")));
        assert_eq!(outbox.queued_log_bytes(), 15);
        outbox.redirect(piece(1, 1, "").key, "http://127.0.0.1:10");
        assert_eq!(outbox.queued_log_bytes(), 15);
        assert!(!outbox.backed_up());
        let big = "x".repeat(MAX_QUEUED_LOG_BYTES);
        drop(outbox.push(unreachable, piece(3, 1, &big)));
        assert!(outbox.backed_up());
        outbox.drop_all();
        assert_eq!(outbox.queued_log_bytes(), 0);
        assert!(!outbox.backed_up());
    }
}
