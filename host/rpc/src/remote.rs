//! [`RemoteExecutor`]: the `TaskExecutorClient` of a master whose tasks run on remote
//! workers. Logic tasks (Switch, Condition, SubWorkflow, Dependent) steer the run rather
//! than do work and need the master's own hook, so they run on the master's in-process
//! executor, as DolphinScheduler runs them in its master.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use shoal_protocol::rpc::{
    ControlReply, DispatchMsg, DispatchReply, KeyMsg, MasterRef, RunningReply, TakeOverMsg,
    TakeOverReply, paths,
};
use shoal_protocol::{
    BoxFuture, ClientError, ControlDone, ControlRequest, RunningTask, TakeOver, TaskEventSink,
    TaskExecutorClient, TaskKey, TaskRequest, TaskTypeInfo,
};

use crate::transport::{RpcCallError, RpcClient};

/// The worker group of a task that names none.
pub const DEFAULT_GROUP: &str = "default";

/// A live worker as the registry's last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub id: String,
    pub address: String,
    pub groups: Vec<String>,
    pub slots: u32,
    pub slots_used: u32,
    /// Fractions of the worker's CPU and memory in use (0..1).
    pub cpu_load: f64,
    pub memory_used: f64,
    pub generation: u64,
    /// Its last heartbeat, on the database's clock (ms since the epoch).
    pub heartbeat_at: i64,
}

pub struct RemoteExecutor {
    rpc: RpcClient,
    me: MasterRef,
    /// The master's in-process executor: logic tasks, and what a task type needs.
    local: Arc<dyn TaskExecutorClient>,
    logic: HashSet<String>,
    workers: RwLock<HashMap<String, WorkerView>>,
    /// Attempts placed on each worker and not dispatched yet, so one batch of
    /// dispatches spreads instead of piling onto the worker that looked emptiest.
    placed: Mutex<HashMap<String, u32>>,
    /// Attempts this master dispatched to each worker and has not heard end: between
    /// two heartbeats (a second apart) short tasks come and go many times, so the
    /// heartbeat's count alone would leave slots idle or overfill them.
    inflight: Arc<Mutex<HashMap<String, HashSet<TaskKey>>>>,
    /// The master's sink, which the update endpoint ([`crate::master::router`]) feeds.
    sink: std::sync::OnceLock<Arc<dyn TaskEventSink>>,
    /// Workers a dispatch could not reach, with the heartbeat they had then: nothing
    /// more is placed on one until a newer heartbeat shows it alive (a dead one is
    /// declared dead a lease later; its tasks should not be sent to it meanwhile).
    suspect: Mutex<HashMap<String, i64>>,
}

impl RemoteExecutor {
    /// `logic` names the task types that run on the master itself (normalised like
    /// task type names: lower case, `-` and `_` ignored).
    pub fn new(
        rpc: RpcClient,
        me: MasterRef,
        local: Arc<dyn TaskExecutorClient>,
        logic: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            rpc,
            me,
            local,
            logic: logic.into_iter().map(|t| normalise(&t)).collect(),
            workers: RwLock::default(),
            placed: Mutex::default(),
            inflight: Arc::default(),
            sink: std::sync::OnceLock::new(),
            suspect: Mutex::default(),
        }
    }

    /// The master's sink of task updates, once the master connected; the update
    /// endpoint feeds it. Ends seen on the way free this master's count of the slots
    /// it holds on their worker.
    pub fn sink(&self) -> Option<Arc<dyn TaskEventSink>> {
        let inner = self.sink.get().cloned()?;
        Some(Arc::new(CountEnds {
            inner,
            inflight: self.inflight.clone(),
        }))
    }

    /// `host` did not answer: place nothing more there until a newer heartbeat.
    fn suspect(&self, host: &str) {
        let seen = self
            .workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .map(|w| w.heartbeat_at);
        if let Some(at) = seen {
            self.suspect
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(host.to_owned(), at);
        }
    }

    fn track(&self, host: &str, key: TaskKey, add: bool) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if add {
            inflight.entry(host.to_owned()).or_default().insert(key);
        } else if let Some(keys) = inflight.get_mut(host) {
            keys.remove(&key);
        }
    }

    /// This master as workers see it.
    pub fn me(&self) -> &MasterRef {
        &self.me
    }

    /// The live workers, from the registry (called on every refresh).
    pub fn set_workers(&self, workers: Vec<WorkerView>) {
        let mut map = self.workers.write().unwrap_or_else(|p| p.into_inner());
        let next: HashMap<String, WorkerView> =
            workers.into_iter().map(|w| (w.id.clone(), w)).collect();
        // A worker gone from the registry holds nothing of ours any more (its attempts
        // are failed over).
        self.placed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| next.contains_key(id));
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| next.contains_key(id));
        self.suspect
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, at| next.get(id).is_some_and(|w| w.heartbeat_at <= *at));
        *map = next;
    }

    pub fn workers(&self) -> Vec<WorkerView> {
        let mut list: Vec<WorkerView> = self
            .workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    fn is_logic(&self, task_type: &str) -> bool {
        self.logic.contains(&normalise(task_type))
    }

    fn address(&self, host: &str) -> Result<String, ClientError> {
        self.workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .map(|w| w.address.clone())
            .ok_or_else(|| ClientError::Unreachable {
                host: host.to_owned(),
                why: "not a live worker".into(),
            })
    }

    /// One worker's share of a batch of dispatches, in one request.
    async fn send_share(
        &self,
        host: String,
        share: Vec<(usize, TaskRequest)>,
    ) -> Vec<(usize, Result<(), ClientError>)> {
        let keys: Vec<(usize, TaskKey)> = share.iter().map(|(i, r)| (*i, r.key())).collect();
        {
            let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = placed.get_mut(&host) {
                *n = n.saturating_sub(share.len() as u32);
            }
        }
        for (_, key) in &keys {
            self.track(&host, *key, true);
        }
        let msg = DispatchMsg {
            requests: share.into_iter().map(|(_, r)| r).collect(),
            master: self.me.clone(),
        };
        let answers: Vec<Result<(), ClientError>> = match self
            .call::<_, DispatchReply>(&host, paths::DISPATCH, &msg)
            .await
        {
            Ok(reply) if reply.refused.len() == keys.len() => reply
                .refused
                .into_iter()
                .map(|refused| match refused {
                    None => Ok(()),
                    Some(why) => Err(ClientError::Refused {
                        host: host.clone(),
                        why,
                    }),
                })
                .collect(),
            Ok(reply) => {
                let why = format!(
                    "answered {} of {} dispatches",
                    reply.refused.len(),
                    keys.len()
                );
                keys.iter()
                    .map(|_| {
                        Err(ClientError::Refused {
                            host: host.clone(),
                            why: why.clone(),
                        })
                    })
                    .collect()
            }
            Err(e) => {
                if matches!(e, ClientError::Unreachable { .. }) {
                    self.suspect(&host);
                }
                keys.iter().map(|_| Err(e.clone())).collect()
            }
        };
        keys.into_iter()
            .zip(answers)
            .map(|((i, key), answer)| {
                if answer.is_err() {
                    self.track(&host, key, false);
                }
                (i, answer)
            })
            .collect()
    }

    async fn call<B: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        host: &str,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        self.call_within(host, path, body, None).await
    }

    async fn call_within<B: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        host: &str,
        path: &str,
        body: &B,
        timeout: Option<std::time::Duration>,
    ) -> Result<R, ClientError> {
        let address = self.address(host)?;
        self.rpc
            .call_within(&address, path, body, timeout)
            .await
            .map_err(|e| match e {
                RpcCallError::Unreachable(why) => ClientError::Unreachable {
                    host: host.to_owned(),
                    why,
                },
                RpcCallError::Refused { message, .. } => ClientError::Refused {
                    host: host.to_owned(),
                    why: message,
                },
            })
    }
}

/// The master's sink, behind which each attempt's end frees its slot in the count.
struct CountEnds {
    inner: Arc<dyn TaskEventSink>,
    inflight: Arc<Mutex<HashMap<String, HashSet<TaskKey>>>>,
}

impl TaskEventSink for CountEnds {
    fn deliver(&self, event: shoal_protocol::KeyedEvent) -> BoxFuture<'static, Result<(), String>> {
        if matches!(event.update, shoal_protocol::TaskUpdate::Ended { .. })
            && let Some(keys) = self
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&event.host)
        {
            keys.remove(&event.key);
        }
        self.inner.deliver(event)
    }

    fn deliver_many(
        &self,
        events: Vec<shoal_protocol::KeyedEvent>,
    ) -> BoxFuture<'static, Vec<Result<(), String>>> {
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            for event in &events {
                if matches!(event.update, shoal_protocol::TaskUpdate::Ended { .. })
                    && let Some(keys) = inflight.get_mut(&event.host)
                {
                    keys.remove(&event.key);
                }
            }
        }
        self.inner.deliver_many(events)
    }
}

fn normalise(task_type: &str) -> String {
    task_type
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// How busy a worker is, 0 (idle) upwards; `None` when it has no free slot. Running
/// slots weigh most, then CPU, then memory (DolphinScheduler's dynamic weighted
/// round robin weighs the same three). `ours`: attempts this master has there or is
/// about to send; the heartbeat's count may include other masters' too.
fn busyness(w: &WorkerView, ours: u32) -> Option<f64> {
    let used = w.slots_used.max(ours);
    if used >= w.slots {
        return None;
    }
    Some(used as f64 / w.slots.max(1) as f64 + 0.5 * w.cpu_load + 0.25 * w.memory_used)
}

impl TaskExecutorClient for RemoteExecutor {
    fn connect(&self, sink: Arc<dyn TaskEventSink>) {
        let _ = self.sink.set(sink.clone());
        self.local.connect(sink);
    }

    fn place(
        &self,
        task_type: &str,
        worker_group: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        if self.is_logic(task_type) {
            return Ok(Some(self.me.node.clone()));
        }
        let group = worker_group.unwrap_or(DEFAULT_GROUP);
        let workers = self.workers.read().unwrap_or_else(|p| p.into_inner());
        let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let suspect = self.suspect.lock().unwrap_or_else(|p| p.into_inner());
        let ours = |id: &String| {
            placed.get(id).copied().unwrap_or(0)
                + inflight.get(id).map_or(0, |keys| keys.len() as u32)
        };
        let mut any = false;
        let best = workers
            .values()
            .filter(|w| w.groups.iter().any(|g| g == group))
            .inspect(|_| any = true)
            .filter(|w| !suspect.contains_key(&w.id))
            .filter_map(|w| busyness(w, ours(&w.id)).map(|b| (b, &w.id)))
            .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)))
            .map(|(_, id)| id.clone());
        match best {
            Some(id) => {
                *placed.entry(id.clone()).or_default() += 1;
                Ok(Some(id))
            }
            None if any => Ok(None),
            None => Err(ClientError::NoWorker(group.to_owned())),
        }
    }

    fn dispatch(&self, request: TaskRequest) -> BoxFuture<'_, Result<(), ClientError>> {
        Box::pin(async move {
            self.dispatch_many(vec![request])
                .await
                .pop()
                .unwrap_or(Ok(()))
        })
    }

    fn dispatch_many(
        &self,
        requests: Vec<TaskRequest>,
    ) -> BoxFuture<'_, Vec<Result<(), ClientError>>> {
        Box::pin(async move {
            let mut out: Vec<Option<Result<(), ClientError>>> = Vec::new();
            out.resize_with(requests.len(), || None);
            // Each worker's share in one request; the master's own (logic tasks) here.
            let mut by_host: HashMap<String, Vec<(usize, TaskRequest)>> = HashMap::new();
            let mut local = Vec::new();
            for (i, request) in requests.into_iter().enumerate() {
                if request.host == self.me.node {
                    local.push((i, request));
                } else {
                    by_host
                        .entry(request.host.clone())
                        .or_default()
                        .push((i, request));
                }
            }
            let sends = by_host
                .into_iter()
                .map(|(host, share)| self.send_share(host, share));
            let (remote, here) = futures_util::future::join(
                futures_util::future::join_all(sends),
                futures_util::future::join_all(
                    local
                        .into_iter()
                        .map(|(i, r)| async move { (i, self.local.dispatch(r).await) }),
                ),
            )
            .await;
            for (i, result) in remote.into_iter().flatten().chain(here) {
                out[i] = Some(result);
            }
            out.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
        })
    }

    fn kill<'a>(&'a self, host: &'a str, key: TaskKey) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            if host == self.me.node {
                return self.local.kill(host, key).await;
            }
            self.call::<_, serde_json::Value>(host, paths::KILL, &KeyMsg { key })
                .await
                .map(|_| ())
        })
    }

    fn pause<'a>(&'a self, host: &'a str, key: TaskKey) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            if host == self.me.node {
                return self.local.pause(host, key).await;
            }
            self.call::<_, serde_json::Value>(host, paths::PAUSE, &KeyMsg { key })
                .await
                .map(|_| ())
        })
    }

    fn take_over<'a>(
        &'a self,
        host: &'a str,
        key: TaskKey,
        owner_generation: u64,
    ) -> BoxFuture<'a, Result<TakeOver, ClientError>> {
        Box::pin(async move {
            if host == self.me.node {
                return self.local.take_over(host, key, owner_generation).await;
            }
            let msg = TakeOverMsg {
                key,
                master: self.me.clone(),
                owner_generation,
            };
            self.call::<_, TakeOverReply>(host, paths::TAKE_OVER, &msg)
                .await
                .map(|r| r.answer)
        })
    }

    fn running<'a>(
        &'a self,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RunningTask>, ClientError>> {
        Box::pin(async move {
            if host == self.me.node {
                return self.local.running(host).await;
            }
            self.call::<_, RunningReply>(host, paths::RUNNING, &serde_json::json!({}))
                .await
                .map(|r| r.tasks)
        })
    }

    fn control<'a>(
        &'a self,
        host: &'a str,
        request: ControlRequest,
    ) -> BoxFuture<'a, Result<Result<ControlDone, String>, ClientError>> {
        Box::pin(async move {
            if host == self.me.node {
                return self.local.control(host, request).await;
            }
            // The worker waits for the plugin (a savepoint), up to ten minutes.
            let within = Some(std::time::Duration::from_secs(660));
            self.call_within::<_, ControlReply>(host, paths::CONTROL, &request, within)
                .await
                .map(|r| r.outcome)
        })
    }

    fn task_type<'a>(
        &'a self,
        task_type: &'a str,
        version: Option<&'a semver::Version>,
    ) -> BoxFuture<'a, Option<TaskTypeInfo>> {
        self.local.task_type(task_type, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: &str, groups: &[&str], slots: u32, used: u32, cpu: f64) -> WorkerView {
        WorkerView {
            id: id.into(),
            address: format!("http://127.0.0.1:1/{id}"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            slots,
            slots_used: used,
            cpu_load: cpu,
            memory_used: 0.0,
            generation: 1,
            heartbeat_at: 0,
        }
    }

    #[test]
    fn the_least_busy_worker_of_the_group_gets_the_task() {
        let w = [
            worker("a", &["default"], 4, 3, 0.0),
            worker("b", &["default"], 4, 1, 0.0),
            worker("c", &["etl"], 4, 0, 0.0),
        ];
        let pick = |placed: &HashMap<String, u32>, group: &str| {
            w.iter()
                .filter(|x| x.groups.iter().any(|g| g == group))
                .filter_map(|x| {
                    busyness(x, placed.get(&x.id).copied().unwrap_or(0)).map(|b| (b, x.id.clone()))
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, id)| id)
        };
        assert_eq!(pick(&HashMap::new(), "default").as_deref(), Some("b"));
        assert_eq!(pick(&HashMap::new(), "etl").as_deref(), Some("c"));
        // Three placed on b since its heartbeat: a is now the emptier.
        let placed = HashMap::from([("b".to_string(), 3)]);
        assert_eq!(pick(&placed, "default").as_deref(), Some("a"));
        // All full: nobody.
        let placed = HashMap::from([("a".to_string(), 4), ("b".to_string(), 4)]);
        assert_eq!(pick(&placed, "default"), None);
    }

    #[test]
    fn cpu_load_tips_the_balance_between_equally_used_workers() {
        let idle = worker("idle", &["default"], 8, 2, 0.1);
        let hot = worker("hot", &["default"], 8, 2, 0.9);
        assert!(busyness(&idle, 0).unwrap() < busyness(&hot, 0).unwrap());
    }
}
