//! The master: turns workflow instances into task runs.
//!
//! Each live workflow instance has exactly one [`worker`] task that owns it: an ordered
//! event stream (task lifecycle events from the TaskEngine, timers, operator commands)
//! feeds it, it applies each event as a named transition of the state machines in
//! [`crate::state`], stores the resulting writes (one group commit per batch of events)
//! and only then acts: dispatching tasks, killing them, starting timers. Many instances
//! run concurrently, each on its own worker; no two writers ever touch one instance.
//!
//! [`Master`] is the handle the CLI and the API use: start a run, send an operation,
//! wait for an instance to settle, recover every unfinished instance after a crash, and
//! take operations other processes queued in the store's command table.

mod commands;
mod control;
mod host;
mod instance;
mod lineage;
mod params;
mod tenancy;
mod updates;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_protocol::{TakeOver, TaskExecutorClient, TaskKey};
use shoal_store::{Store, StoreError, WorkflowInstanceRow, Write};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::graph::{GraphError, RunScope};
use crate::state::{IllegalTransition, TaskInstanceState, WorkflowState};

pub use commands::{queue_operation, queue_operation_for_message};
pub use instance::DEFAULT_PROJECT;
pub use lineage::DEFAULT_MAX_SUB_WORKFLOW_DEPTH;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("workflow instance {0} does not exist")]
    NoSuchInstance(i64),
    #[error("workflow definition {id} version {version} does not exist")]
    NoSuchDefinition { id: i64, version: i64 },
    #[error("stored definition {id} version {version} cannot be read: {message}")]
    BadDefinition {
        id: i64,
        version: i64,
        message: String,
    },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("workflow instance {instance} has no task `{task}`")]
    NoSuchTask { instance: i64, task: String },
    #[error("the engine stopped before answering")]
    Gone,
    #[error("the change could not be stored: {0}")]
    NotStored(String),
    #[error("sub-workflow cycle: {0}")]
    SubWorkflowCycle(String),
    #[error("sub-workflows nest deeper than {limit}")]
    NestedTooDeep { limit: usize },
    #[error("{0}")]
    Refused(String),
    #[error(
        "nobody took command {command_id} within {within:?} (is the engine or the instance's master running?)"
    )]
    NotTaken { command_id: i64, within: Duration },
    #[error("workflow instance {instance} is driven by {owner}, not this master")]
    NotOwner { instance: i64, owner: String },
    #[error("parent task instance {task_instance_id}: {why}")]
    NoSuchParent { task_instance_id: i64, why: String },
}

/// How the master behaves.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Written into each task instance's `host` column.
    pub host: String,
    /// How often commands queued by other processes are picked up.
    pub command_poll: Duration,
    /// Echo every task's log lines to stderr (the CLI's `--verbose`).
    pub echo_task_logs: bool,
    /// How deep sub-workflows may nest (a root run's children are at depth 1); a child
    /// run deeper than this is refused, like one that would start its own ancestor.
    pub max_sub_workflow_depth: usize,
    /// How long one store write of an instance's batch may take. A worker whose store
    /// keeps failing (or does not answer within this) gives its instance up: it stops
    /// the instance's tasks and leaves it to recovery.
    pub store_write_timeout: Duration,
    /// How long after giving an instance up (see `store_write_timeout`) the master loads
    /// it again; each further give-up doubles the wait, up to ten minutes. The first
    /// batch a reloaded worker stores resets it.
    pub recover_after: Duration,
    /// Run process-starting task types only in projects an admin allowed, as the
    /// project's tenant (server mode; see `tenancy`).
    pub project_process_gate: bool,
    /// Distributed mode: this master's node id. Instances it starts or loads are
    /// claimed for it (a new ownership term each time), and every batch it stores for
    /// one is fenced on that term. `None`: the single-node engine, which owns all.
    pub owner: Option<String>,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            host: hostname(),
            command_poll: Duration::from_millis(100),
            echo_task_logs: false,
            max_sub_workflow_depth: DEFAULT_MAX_SUB_WORKFLOW_DEPTH,
            store_write_timeout: Duration::from_secs(60),
            recover_after: Duration::from_secs(10),
            project_process_gate: false,
            owner: None,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub use shoal_model::run::StartTasks;

/// The execution graph's scope for a run's start tasks.
pub(crate) fn scope(start: &StartTasks) -> RunScope {
    match start.clone() {
        StartTasks::All => RunScope::All,
        StartTasks::Only(t) => RunScope::Only(t),
        StartTasks::WithDownstream(t) => RunScope::WithDownstream(t),
        StartTasks::WithUpstream(t) => RunScope::WithUpstream(t),
    }
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub definition_id: i64,
    pub version: i64,
    /// Startup parameters: override every other layer.
    pub startup_params: BTreeMap<String, String>,
    /// Business time in ms since the epoch; none means now.
    pub schedule_time: Option<i64>,
    pub start_tasks: StartTasks,
    /// The SubWorkflow task instance this run is a child of.
    pub parent_task_instance_id: Option<i64>,
    /// The `Idempotency-Key` it was asked with: stored with the instance, so the same
    /// key finds this run again instead of starting another.
    pub idempotency_key: Option<String>,
}

impl RunRequest {
    pub fn new(definition_id: i64, version: i64) -> Self {
        Self {
            definition_id,
            version,
            startup_params: BTreeMap::new(),
            schedule_time: None,
            start_tasks: StartTasks::All,
            parent_task_instance_id: None,
            idempotency_key: None,
        }
    }
}

/// An operator's operation on an instance (DolphinScheduler's "execute type").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Operation {
    Stop,
    Pause,
    /// Resume a paused instance.
    Resume,
    /// Run a finished instance again from scratch.
    Rerun,
    /// Rerun the failed and killed tasks and what they blocked; keep the successes.
    Recover,
    ForceSuccess {
        task: String,
    },
    Kill {
        task: String,
    },
    /// A named action on the job of a task's current attempt (`savepoint`,
    /// `stop-with-savepoint`, `cancel`, ...), carried out by its task type's plugin.
    Control {
        task: String,
        action: String,
        #[serde(default)]
        args: serde_json::Value,
    },
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stop => f.write_str("stop"),
            Self::Pause => f.write_str("pause"),
            Self::Resume => f.write_str("resume"),
            Self::Rerun => f.write_str("rerun"),
            Self::Recover => f.write_str("recover"),
            Self::ForceSuccess { task } => write!(f, "force-success `{task}`"),
            Self::Kill { task } => write!(f, "kill `{task}`"),
            Self::Control { task, action, .. } => write!(f, "{action} on `{task}`"),
        }
    }
}

/// What changed, for live views. Sent after the change was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Progress {
    Workflow {
        instance: i64,
        state: WorkflowState,
    },
    Task {
        instance: i64,
        task: String,
        task_instance_id: i64,
        attempt: u32,
        state: TaskInstanceState,
        message: String,
    },
    /// No worker holds the instance any more (it settled, or its worker gave up).
    Released {
        instance: i64,
    },
    /// A task whose timeout strategy is `warn` has run past its timeout.
    TimeoutWarning {
        instance: i64,
        task: String,
        task_instance_id: i64,
    },
}

/// Definition versions kept parsed, at most; the cache starts over when full.
const DEFINITION_CACHE: usize = 256;

/// A definition version as the master keeps it: its name and parsed spec.
#[derive(Debug, Clone)]
pub struct CachedDefinition {
    pub name: String,
    pub spec: Arc<shoal_workflow::WorkflowDefinition>,
}

/// The master. Cheap to clone.
#[derive(Clone)]
pub struct Master {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The only way to task execution: in-process or remote workers.
    client: Arc<dyn TaskExecutorClient>,
    config: MasterConfig,
    /// The live instances' event streams.
    live: Mutex<HashMap<i64, mpsc::UnboundedSender<instance::Event>>>,
    progress: broadcast::Sender<Progress>,
    /// Parsed definition versions. A saved version never changes, so starting and
    /// loading a run need not read and parse its spec again (a fan-out's spec is large).
    definitions: Mutex<HashMap<(i64, i64), CachedDefinition>>,
    /// Child runs ending, by their parent task: wakes a waiting SubWorkflow at once.
    child_ends: broadcast::Sender<shoal_protocol::ChildEnd>,
    secrets: std::sync::OnceLock<Arc<dyn SecretSource>>,
    /// Instances given up because the store refused their writes, and how many times in
    /// a row: the next reload waits longer.
    given_up: Mutex<HashMap<i64, u32>>,
    /// One turn-taking gate per instance being loaded (see `Master::load_live`).
    loading: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped when this master lets go of every instance (a lost lease): an instance
    /// worker loaded under an earlier term stores and does nothing more.
    term: std::sync::atomic::AtomicU64,
    /// Instance batches stored, and how many of them while the next was being decided.
    batches: [std::sync::atomic::AtomicU64; 2],
}

/// How this master's instance workers stored their batches (see
/// [`Master::batch_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Batches sent to the store.
    pub stored: u64,
    /// Of those, batches stored while their worker decided the next one (pipelined).
    pub overlapped: u64,
}

/// What [`SecretSource::secrets`] returns: the project's secrets by name, or why not.
pub type SecretsFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<BTreeMap<String, String>, String>> + Send + 'a>,
>;

/// Where a run's secrets come from (the server's sealed secrets). Values are handed to
/// tasks as `${secret.NAME}` and masked in their logs; the engine never stores them.
pub trait SecretSource: Send + Sync {
    /// Every secret of `project`, by name.
    fn secrets<'a>(&'a self, project: &'a str) -> SecretsFuture<'a>;

    /// Every datasource of `project`, password opened. A run holds them in memory and
    /// hands each task only those its parameters name.
    fn datasources<'a>(&'a self, project: &'a str) -> DatasourcesFuture<'a> {
        let _ = project;
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// What [`SecretSource::datasources`] returns.
pub type DatasourcesFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Vec<shoal_model::GrantedDatasource>, String>>
            + Send
            + 'a,
    >,
>;

impl Master {
    /// A master over `store` that reaches task execution through `client` (and
    /// connects itself to it as the sink of task updates).
    pub fn new(store: Store, client: Arc<dyn TaskExecutorClient>, config: MasterConfig) -> Self {
        let (progress, _) = broadcast::channel(1 << 16);
        // A waiter that lags treats it as a wake, so a small buffer loses nothing.
        let (child_ends, _) = broadcast::channel(1024);
        let master = Self {
            inner: Arc::new(Inner {
                store,
                client: client.clone(),
                config,
                live: Mutex::new(HashMap::new()),
                progress,
                child_ends,
                definitions: Mutex::new(HashMap::new()),
                secrets: std::sync::OnceLock::new(),
                given_up: Mutex::new(HashMap::new()),
                term: std::sync::atomic::AtomicU64::new(0),
                loading: Mutex::new(HashMap::new()),
                batches: Default::default(),
            }),
        };
        client.connect(Arc::new(updates::UpdateSink(Arc::downgrade(&master.inner))));
        master
    }

    /// Give runs access to secrets. Set once, before instances start.
    pub fn set_secret_source(&self, source: Arc<dyn SecretSource>) {
        let _ = self.inner.secrets.set(source);
    }

    /// A project's secrets as `secret.NAME` params (empty without a source).
    pub(crate) async fn secret_params(&self, project: &str) -> BTreeMap<String, String> {
        let Some(source) = self.inner.secrets.get() else {
            return BTreeMap::new();
        };
        match source.secrets(project).await {
            Ok(values) => values
                .into_iter()
                .map(|(k, v)| (format!("secret.{k}"), v))
                .collect(),
            Err(e) => {
                // The task that needs one fails with an unresolved `${secret.X}`.
                tracing::warn!(project, "cannot open the project's secrets: {e}");
                BTreeMap::new()
            }
        }
    }

    /// The project's datasources for a run (none without a secret source).
    pub(crate) async fn datasources(&self, project: &str) -> Vec<shoal_model::GrantedDatasource> {
        let Some(source) = self.inner.secrets.get() else {
            return Vec::new();
        };
        source.datasources(project).await.unwrap_or_else(|e| {
            // A SQL task then fails naming the datasource it could not get.
            tracing::warn!(project, "cannot open the project's datasources: {e}");
            Vec::new()
        })
    }

    /// How many batches this master's instance workers stored so far, and how many of
    /// them while deciding the next (`shoal bench` prints it).
    pub fn batch_counts(&self) -> BatchCounts {
        let [stored, overlapped] = &self.inner.batches;
        BatchCounts {
            stored: stored.load(std::sync::atomic::Ordering::Relaxed),
            overlapped: overlapped.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Count a batch sent to the store.
    fn count_batch(&self, overlapped: bool) {
        let [stored, pipelined] = &self.inner.batches;
        stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if overlapped {
            pipelined.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Where this master's tasks execute.
    pub fn client(&self) -> &Arc<dyn TaskExecutorClient> {
        &self.inner.client
    }

    /// Distributed mode: the node id this master owns instances as.
    pub fn owner(&self) -> Option<&str> {
        self.inner.config.owner.as_deref()
    }

    /// Ask the node that ran an attempt whether it still does (and, if so, to report to
    /// this master, in ownership term `epoch`, from now on). A node that cannot be asked
    /// is not running it for us.
    pub(crate) async fn take_over(&self, host: &str, key: TaskKey, epoch: i64) -> TakeOver {
        if host.is_empty() {
            return TakeOver::Unknown;
        }
        match self.inner.client.take_over(host, key, epoch as u64).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::info!("taking {key} over from {host}: {e}");
                TakeOver::Unknown
            }
        }
    }

    /// Every change, as it is stored.
    pub fn subscribe(&self) -> broadcast::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Version `version` of definition `id`, parsed (from the cache when seen before).
    pub async fn definition(&self, id: i64, version: i64) -> Result<CachedDefinition, MasterError> {
        let key = (id, version);
        if let Some(found) = self.lock_definitions().get(&key) {
            return Ok(found.clone());
        }
        let stored = self
            .inner
            .store
            .definition_by_id(id, version)
            .await?
            .ok_or(MasterError::NoSuchDefinition { id, version })?;
        let spec: shoal_workflow::WorkflowDefinition = serde_json::from_value(stored.spec)
            .map_err(|e| MasterError::BadDefinition {
                id,
                version,
                message: e.to_string(),
            })?;
        let parsed = CachedDefinition {
            name: stored.name,
            spec: Arc::new(spec),
        };
        let mut cache = self.lock_definitions();
        if cache.len() >= DEFINITION_CACHE {
            cache.clear();
        }
        cache.insert(key, parsed.clone());
        Ok(parsed)
    }

    fn lock_definitions(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, i64), CachedDefinition>> {
        self.inner
            .definitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Child runs of this master's instances ending (after their end is stored).
    pub(crate) fn child_ends(&self) -> broadcast::Receiver<shoal_protocol::ChildEnd> {
        self.inner.child_ends.subscribe()
    }

    /// Create an instance and start running it. Returns its id once it is stored.
    ///
    /// A child run (`parent_task_instance_id`) is refused when an ancestor run is of the
    /// same definition (a sub-workflow cycle) or when it would nest deeper than
    /// [`MasterConfig::max_sub_workflow_depth`]; its SubWorkflow task then fails with
    /// that message.
    pub async fn start(&self, run: RunRequest) -> Result<i64, MasterError> {
        let spec = self.definition(run.definition_id, run.version).await?;
        lineage::check(
            &self.inner.store,
            run.definition_id,
            &spec.name,
            run.parent_task_instance_id,
            self.inner.config.max_sub_workflow_depth,
        )
        .await?;
        let now = shoal_store::now_ms();
        let mut row = WorkflowInstanceRow {
            id: 0,
            definition_id: run.definition_id,
            version: run.version,
            name: spec.name.clone(),
            state: WorkflowState::Submitted.to_string(),
            schedule_time: run.schedule_time.unwrap_or(now),
            startup_params: serde_json::to_value(&run.startup_params).unwrap_or_default(),
            start_tasks: serde_json::to_value(&run.start_tasks).unwrap_or_default(),
            parent_task_instance_id: run.parent_task_instance_id,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
            owner: self.inner.config.owner.clone(),
            owner_gen: 0,
        };
        let ids = self
            .inner
            .store
            .write(vec![Write::InsertWorkflowInstance {
                definition_id: row.definition_id,
                version: row.version,
                name: row.name.clone(),
                state: row.state.clone(),
                schedule_time: row.schedule_time,
                startup_params: row.startup_params.clone(),
                start_tasks: row.start_tasks.clone(),
                parent_task_instance_id: row.parent_task_instance_id,
                owner: row.owner.clone(),
                owner_gen: row.owner_gen,
                idempotency_key: run.idempotency_key.clone(),
            }])
            .await?;
        row.id = ids[0].ok_or(MasterError::Gone)?;
        let id = row.id;
        if !self.is_live(id) {
            self.load_live(id, None, Some(row)).await?;
        }
        Ok(id)
    }

    /// Apply an operation to an instance, loading it if no worker holds it. Returns once
    /// the operation's transitions are stored (or were refused).
    ///
    /// In distributed mode an instance another master drives gets the operation
    /// through the store's command queue, which only its owner takes; this waits for
    /// the owner's verdict.
    pub async fn operate(&self, instance: i64, op: Operation) -> Result<(), MasterError> {
        let (reply, answer) = oneshot::channel();
        match self
            .send(
                instance,
                instance::Event::Operation {
                    op: op.clone(),
                    reply,
                },
            )
            .await
        {
            Ok(()) => answer.await.map_err(|_| MasterError::Gone)?,
            Err(MasterError::NotOwner { .. }) => {
                queue_operation(&self.inner.store, instance, &op, Duration::from_secs(60)).await
            }
            Err(e) => Err(e),
        }
    }

    /// Carry out a named action on the job of `task`'s current attempt in `instance`
    /// (a Flink savepoint, say), loading the instance if no worker holds it. Returns
    /// the plugin's message once the outcome is stored; the request and the outcome
    /// are both on the instance's event stream (`task-action`).
    pub async fn control(
        &self,
        instance: i64,
        task: &str,
        action: &str,
        args: serde_json::Value,
    ) -> Result<String, MasterError> {
        let (reply, answer) = oneshot::channel();
        let event = instance::Event::Control {
            task: task.to_owned(),
            action: action.to_owned(),
            args: args.clone(),
            answer: instance::ControlAnswer::Direct(reply),
        };
        match self.send(instance, event).await {
            Ok(()) => answer.await.map_err(|_| MasterError::Gone)?,
            Err(MasterError::NotOwner { .. }) => {
                let op = Operation::Control {
                    task: task.to_owned(),
                    action: action.to_owned(),
                    args,
                };
                // The owner waits for the plugin, which may take minutes (a savepoint).
                commands::queue_operation_for_message(
                    &self.inner.store,
                    instance,
                    &op,
                    Duration::from_secs(660),
                )
                .await
            }
            Err(e) => Err(e),
        }
    }

    /// Continue every instance a previous process left unfinished (after a crash or a
    /// kill). Returns their ids.
    ///
    /// In distributed mode only those this master owns or nobody does: another
    /// master's are its own to continue, or its failover's to move.
    pub async fn recover_unfinished(&self) -> Result<Vec<i64>, MasterError> {
        let rows = self.inner.store.unfinished_instances().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(me) = self.owner()
                && row.owner.as_deref().is_some_and(|owner| owner != me)
            {
                continue;
            }
            match self.ensure_live(row.id).await {
                Ok(()) => ids.push(row.id),
                // Taken by another master since it was read.
                Err(MasterError::NotOwner { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ids)
    }

    /// Failover of a dead master: move its unfinished instances to this one and
    /// continue them from the store. Their attempts still running on live workers are
    /// taken over (they report here from now on) and nothing finished runs again.
    /// Returns the instances adopted.
    pub async fn adopt_instances_of(&self, dead: &str) -> Result<Vec<i64>, MasterError> {
        let Some(me) = self.owner() else {
            return Ok(Vec::new());
        };
        let ids = self.inner.store.adopt_instances_of(dead, me).await?;
        for id in &ids {
            match self.ensure_live(*id).await {
                Ok(()) | Err(MasterError::NotOwner { .. }) => {}
                Err(e) => tracing::warn!("instance {id}, adopted from {dead}: {e}"),
            }
        }
        Ok(ids)
    }

    /// These nodes died or came back as a new generation: every live instance asks
    /// after its attempts there, and fails over what they no longer hold.
    ///
    /// `seen_at`: when the registry showing the change was read; attempts placed after
    /// it went to the nodes' new generations and are not asked after.
    pub fn hosts_lost(&self, hosts: Vec<String>, seen_at: std::time::Instant) {
        if hosts.is_empty() {
            return;
        }
        let hosts = Arc::new(hosts);
        let senders: Vec<_> = self.inner.live.lock().unwrap().values().cloned().collect();
        for tx in senders {
            let _ = tx.send(instance::Event::HostsLost {
                hosts: hosts.clone(),
                seen_at,
            });
        }
    }

    /// This master lost its lease: stop acting on every instance at once, touching
    /// none of their attempts (they are, or will be, another master's). The instances'
    /// next owner continues them from the store.
    pub fn let_go_all(&self) {
        self.inner
            .term
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let live: Vec<i64> = self
            .inner
            .live
            .lock()
            .unwrap()
            .drain()
            .map(|(id, _)| id)
            .collect();
        for instance in live {
            self.publish(Progress::Released { instance });
        }
    }

    /// Whether a worker holds the instance right now.
    pub fn is_live(&self, instance: i64) -> bool {
        self.inner.live.lock().unwrap().contains_key(&instance)
    }

    /// Wait until the instance is finished or paused; returns that state.
    pub async fn wait(&self, instance: i64) -> Result<WorkflowState, MasterError> {
        let mut updates = self.subscribe();
        loop {
            let row = self
                .inner
                .store
                .workflow_instance(instance)
                .await?
                .ok_or(MasterError::NoSuchInstance(instance))?;
            let state = instance::parse_workflow_state(&row.state)?;
            if (state.is_finished() || state == WorkflowState::Paused) && !self.is_live(instance) {
                return Ok(state);
            }
            // Re-read the store on every change of this instance (or when updates
            // were dropped), so no settling is missed.
            loop {
                match updates.recv().await {
                    Ok(
                        Progress::Workflow { instance: i, .. } | Progress::Released { instance: i },
                    ) if i == instance => {
                        break;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Err(MasterError::Gone),
                }
            }
        }
    }

    /// Wait until no instance is live.
    pub async fn wait_idle(&self) {
        let mut updates = self.subscribe();
        while !self.inner.live.lock().unwrap().is_empty() {
            let _ = tokio::time::timeout(Duration::from_millis(200), updates.recv()).await;
        }
    }

    /// Hand `event` to the instance's live worker, or give it back when none holds it.
    fn send_now(&self, instance: i64, event: instance::Event) -> Result<(), instance::Event> {
        let sender = self.inner.live.lock().unwrap().get(&instance).cloned();
        match sender {
            Some(tx) => tx.send(event).map_err(|mpsc::error::SendError(back)| back),
            None => Err(event),
        }
    }

    async fn send(&self, instance: i64, event: instance::Event) -> Result<(), MasterError> {
        let mut event = event;
        // A worker may retire between lookup and send (its instance just settled); then
        // the event comes back and a fresh worker loads the instance. A fresh worker
        // gets the event before it starts, so it cannot settle without seeing it.
        for _ in 0..8 {
            let sender = self.inner.live.lock().unwrap().get(&instance).cloned();
            match sender {
                Some(tx) => match tx.send(event) {
                    Ok(()) => return Ok(()),
                    Err(mpsc::error::SendError(back)) => event = back,
                },
                None => match self.load_live(instance, Some(event), None).await? {
                    None => return Ok(()),
                    Some(back) => event = back,
                },
            }
            tokio::task::yield_now().await;
        }
        Err(MasterError::Gone)
    }

    /// Load the instance into a worker unless one holds it.
    async fn ensure_live(&self, instance: i64) -> Result<(), MasterError> {
        if self.is_live(instance) {
            return Ok(());
        }
        self.load_live(instance, None, None).await.map(|_| ())
    }

    /// Load the instance into a worker that starts with `first` queued, unless a worker
    /// holds it already; then `first` comes back, for that worker. Loads of one instance
    /// take turns: in distributed mode each load is a new ownership term, and two at
    /// once would fence each other.
    ///
    /// `fresh`: the instance's row as [`Master::start`] inserted it, which spares the
    /// load reading back what was just written.
    async fn load_live(
        &self,
        instance: i64,
        first: Option<instance::Event>,
        fresh: Option<WorkflowInstanceRow>,
    ) -> Result<Option<instance::Event>, MasterError> {
        let gate = self
            .inner
            .loading
            .lock()
            .unwrap()
            .entry(instance)
            .or_default()
            .clone();
        let result = {
            let _turn = gate.lock().await;
            if self.is_live(instance) {
                Ok(first)
            } else {
                let loaded = match fresh {
                    Some(row) => {
                        match instance::InstanceWorker::load_fresh(self.clone(), row).await {
                            Ok(Some(worker)) => Ok(worker),
                            // Something happened to it already: what is stored says what.
                            Ok(None) => {
                                instance::InstanceWorker::load(self.clone(), instance).await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => instance::InstanceWorker::load(self.clone(), instance).await,
                };
                match loaded {
                    Ok(mut worker) => {
                        let queued = first.is_some();
                        if let Some(event) = first {
                            worker.enqueue(event);
                        }
                        match self.adopt(Box::new(worker)) {
                            Ok(()) => Ok(None),
                            Err(mut other) if queued => {
                                other.dequeue().map(Some).ok_or(MasterError::Gone)
                            }
                            Err(_) => Ok(None),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let mut loading = self.inner.loading.lock().unwrap();
        if Arc::strong_count(&gate) == 2 {
            loading.remove(&instance);
        }
        result
    }

    /// Make `worker` the instance's one worker and start it, unless one already is.
    fn adopt(
        &self,
        worker: Box<instance::InstanceWorker>,
    ) -> Result<(), Box<instance::InstanceWorker>> {
        let mut live = self.inner.live.lock().unwrap();
        if live.contains_key(&worker.id()) {
            return Err(worker);
        }
        live.insert(worker.id(), worker.sender());
        drop(live);
        tokio::spawn(worker.run());
        Ok(())
    }

    /// When a task type's tasks may run: after their upstream succeeded (the default) or
    /// once it is done whatever the result (a Condition), as its plugin's manifest says.
    async fn trigger(
        &self,
        task_type: &str,
        version: Option<&semver::Version>,
    ) -> shoal_model::Trigger {
        match self.inner.client.task_type(task_type, version).await {
            Some(info) => info.trigger,
            // The task fails with a clear message when it is dispatched.
            None => shoal_model::Trigger::AllSuccess,
        }
    }

    /// The current term (see [`Master::let_go_all`]).
    fn term(&self) -> u64 {
        self.inner.term.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The worker with sender `tx` stops holding the instance (if it still does: after
    /// a lost lease another worker may hold it by now).
    fn retire(&self, instance: i64, tx: &mpsc::UnboundedSender<instance::Event>) {
        let mut live = self.inner.live.lock().unwrap();
        if live
            .get(&instance)
            .is_some_and(|held| held.same_channel(tx))
        {
            live.remove(&instance);
        }
    }

    /// The instance's worker gave it up (the store refused its writes): load it again
    /// later, when the store may take writes again, as a restarted engine would. Its
    /// tasks are already stopped, so the reload runs again only what was not stored.
    fn recover_later(&self, instance: i64) {
        let times = {
            let mut given_up = self.inner.given_up.lock().unwrap();
            let times = given_up.entry(instance).or_insert(0);
            *times += 1;
            *times
        };
        let wait = self
            .inner
            .config
            .recover_after
            .saturating_mul(1 << (times - 1).min(16))
            .min(Duration::from_secs(600));
        tracing::warn!("instance {instance}: loading it again in {wait:?}");
        let master = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            match master.ensure_live(instance).await {
                Ok(()) => {}
                // Deleted meanwhile: nothing left to recover.
                Err(MasterError::NoSuchInstance(_)) => {
                    master.inner.given_up.lock().unwrap().remove(&instance);
                }
                Err(e) => {
                    tracing::warn!("instance {instance}: reloading it failed: {e}");
                    // Not even readable: try again later (the count above grows).
                    master.recover_later(instance);
                }
            }
        });
    }

    /// A worker stored a batch: whatever gave its instance up before is over.
    fn stored(&self, instance: i64) {
        let mut given_up = self.inner.given_up.lock().unwrap();
        if !given_up.is_empty() {
            given_up.remove(&instance);
        }
    }

    fn publish(&self, progress: Progress) {
        let _ = self.inner.progress.send(progress);
    }

    fn child_ended(&self, parent: shoal_protocol::ChildEnd) {
        let _ = self.inner.child_ends.send(parent);
    }
}
