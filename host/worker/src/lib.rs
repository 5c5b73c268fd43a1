//! # shoal-worker: a worker node
//!
//! A worker runs task attempts that masters dispatch to it over RPC, on its own
//! TaskEngine (through the same in-process `LocalExecutor` an all-in-one server uses),
//! and sends every update back to the master that owns the attempt's instance:
//!
//! - [`routes`]: the worker's RPC endpoints (dispatch, kill, pause, take over, running).
//! - [`outbox`]: updates waiting for their master's acknowledgement, sent in batches and
//!   again with a short backoff (at most two seconds apart) until acknowledged.
//! - each attempt's log goes to its master piece by piece along its updates, the rest
//!   before the attempt's end (`shoal_task_engine::log_shipping`, in front of the route
//!   to the masters).
//!
//! Architecture invariant: an update leaves the worker only with the worker's current
//! node generation. When the registry declares the worker dead (its heartbeat is
//! refused), [`Worker::lost_lease`] kills every attempt and drops every unsent update:
//! the master that failed its attempts over never hears from the old generation.

pub mod outbox;
pub mod routes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shoal_protocol::rpc::MasterRef;
use shoal_protocol::{BoxFuture, KeyedEvent, TaskEventSink, TaskExecutorClient, TaskKey};
use shoal_task_engine::LocalExecutor;
use shoal_task_engine::log_shipping::{LogShipper, ShipLogs};

pub use outbox::Outbox;

/// A worker node's task side. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Arc<LocalExecutor>,
    outbox: Outbox,
    /// Which master each attempt reports to, and in which ownership epoch of its
    /// instance: a command from an older epoch comes from a master that lost the
    /// instance since, and is refused.
    masters: Mutex<HashMap<TaskKey, (MasterRef, u64)>>,
    secret: String,
    logs: LogShipper,
    before_dispatch: std::sync::OnceLock<BeforeDispatch>,
}

/// Runs before a dispatched attempt starts, with its task type and version (a node
/// copies a plugin version it lacks, say).
pub type BeforeDispatch =
    Arc<dyn Fn(String, Option<semver::Version>) -> BoxFuture<'static, ()> + Send + Sync>;

impl Worker {
    /// A worker running attempts on `executor`, sending updates through `outbox`.
    pub fn new(executor: Arc<LocalExecutor>, outbox: Outbox, secret: &str) -> Self {
        let logs = LogShipper::new({
            let outbox = outbox.clone();
            move || outbox.backed_up()
        });
        let worker = Self {
            inner: Arc::new(Inner {
                executor: executor.clone(),
                outbox,
                masters: Mutex::default(),
                secret: secret.to_owned(),
                logs,
                before_dispatch: std::sync::OnceLock::new(),
            }),
        };
        executor.connect(Arc::new(ShipLogs::new(
            Arc::new(RouteToMaster(Arc::downgrade(&worker.inner))),
            worker.inner.logs.clone(),
        )));
        worker
    }

    pub fn executor(&self) -> &Arc<LocalExecutor> {
        &self.inner.executor
    }

    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    pub(crate) fn secret(&self) -> &str {
        &self.inner.secret
    }

    /// Set the hook run before each dispatched attempt starts (once).
    pub fn before_dispatch(&self, hook: BeforeDispatch) {
        let _ = self.inner.before_dispatch.set(hook);
    }

    pub(crate) async fn prepare(&self, task_type: &str, version: Option<&semver::Version>) {
        if let Some(hook) = self.inner.before_dispatch.get() {
            hook(task_type.to_owned(), version.cloned()).await;
        }
    }

    /// Send this attempt's updates (queued and future) to `master`, which owns its
    /// instance in term `epoch`. False, changing nothing, when a master of a later term
    /// already claimed the attempt: `master` is stale.
    pub(crate) fn report_to(&self, key: TaskKey, master: MasterRef, epoch: u64) -> bool {
        let mut masters = self.inner.masters.lock().unwrap_or_else(|p| p.into_inner());
        let before = masters.get(&key);
        if before.is_some_and(|(_, known)| *known > epoch) {
            return false;
        }
        // Only a take-over moves queued updates; a first dispatch has none, and
        // looking through the outbox for each of thousands would cost a scan each.
        if before.is_some_and(|(m, _)| m.address != master.address) {
            self.inner.outbox.redirect(key, &master.address);
        }
        masters.insert(key, (master, epoch));
        true
    }

    /// Whether the attempt runs here, or its end still waits to be acknowledged (a new
    /// owner must then wait for that end, not run it again).
    pub(crate) async fn holds(&self, key: TaskKey) -> bool {
        let host = self.inner.executor.host().to_owned();
        matches!(
            self.inner.executor.take_over(&host, key, 0).await,
            Ok(shoal_protocol::TakeOver::Running)
        ) || self.inner.outbox.has_pending(key)
    }

    /// The registry declared this node dead: whatever it still runs was (or will be)
    /// failed over, so it must stop at once, and nothing it queued may reach a master.
    pub async fn lost_lease(&self) {
        let host = self.inner.executor.host().to_owned();
        let running = self.inner.executor.running(&host).await.unwrap_or_default();
        for task in &running {
            // Let go rather than kill: an external job's handle is stored, and the new
            // owner re-attaches to it; cancelling it here would end a job that is
            // being followed elsewhere.
            let _ = self.inner.executor.pause(&host, task.key).await;
        }
        self.inner.outbox.drop_all();
        self.inner.logs.clear();
        self.inner
            .masters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        if !running.is_empty() {
            tracing::warn!(
                "declared dead: stopped {} attempt(s) of the old generation",
                running.len()
            );
        }
    }

    fn forget_when_done(&self, key: TaskKey) {
        self.inner
            .masters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
}

/// The master `key` reports to now.
fn master_of(inner: &Inner, key: TaskKey) -> Option<MasterRef> {
    inner
        .masters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .map(|(master, _)| master.clone())
}

/// The executor's sink on a worker: each update goes to the outbox lane of the master
/// its attempt reports to.
struct RouteToMaster(std::sync::Weak<Inner>);

impl TaskEventSink for RouteToMaster {
    fn deliver(&self, event: KeyedEvent) -> BoxFuture<'static, Result<(), String>> {
        let Some(inner) = self.0.upgrade() else {
            return Box::pin(async { Err("the worker stopped".to_owned()) });
        };
        let key = event.key;
        let ended = matches!(event.update, shoal_protocol::TaskUpdate::Ended { .. });
        let Some(master) = master_of(&inner, key) else {
            return Box::pin(async move { Err(format!("{key}: no master to report to")) });
        };
        let ack = inner.outbox.push(&master.address, event);
        let worker = Worker { inner };
        Box::pin(async move {
            let result = ack
                .await
                .unwrap_or_else(|_| Err("the outbox dropped the update".to_owned()));
            if ended && result.is_ok() {
                worker.forget_when_done(key);
            }
            result
        })
    }
}
