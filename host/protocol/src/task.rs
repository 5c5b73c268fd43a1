//! One task attempt as the master and the TaskEngine see it: who it is, what to run,
//! what happened, how it ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_model::TaskState;

use crate::workflow::WorkflowHost;

/// Container queue ranks: 0 = HIGHEST … 4 = LOWEST (DolphinScheduler's task priority).
pub mod priority {
    pub const HIGHEST: u8 = 0;
    pub const HIGH: u8 = 1;
    pub const MEDIUM: u8 = 2;
    pub const LOW: u8 = 3;
    pub const LOWEST: u8 = 4;
}

/// Who a call is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskIdentity {
    pub workflow_instance_id: u64,
    pub task_instance_id: u64,
    pub task_name: String,
    pub attempt: u32,
}

impl TaskIdentity {
    pub fn key(&self) -> TaskKey {
        TaskKey {
            workflow_instance_id: self.workflow_instance_id,
            task_instance_id: self.task_instance_id,
            attempt: self.attempt,
        }
    }
}

/// One attempt of one task instance: what kill, pause, take-over and every update
/// name. An attempt has its own task-instance row, so the row id alone is unique; the
/// instance id routes an update to its owner, the attempt number makes logs readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskKey {
    pub workflow_instance_id: u64,
    pub task_instance_id: u64,
    pub attempt: u32,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "instance {} task {} attempt {}",
            self.workflow_instance_id, self.task_instance_id, self.attempt
        )
    }
}

type StoreHandle =
    dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// Where an external job's handle goes before the job is followed (the master's store).
/// In-process only: a remote worker sends the handle as an update and waits for its
/// acknowledgement instead.
#[derive(Clone)]
pub struct HandleSink(Arc<StoreHandle>);

impl HandleSink {
    pub fn new<F, Fut>(store: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(Arc::new(move |handle| Box::pin(store(handle))))
    }

    /// Hand `handle` over; resolves once it is durable.
    pub async fn store(&self, handle: String) {
        (self.0)(handle).await
    }
}

impl std::fmt::Debug for HandleSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandleSink")
    }
}

/// The handle an executor follows its job by, shared with the node that runs it: an
/// action on the job and a poll of it take turns (`turn`), and an action that replaces
/// the handle (a stop with a savepoint) is seen by the next poll. Without the turns a
/// poll could see the job a stop just finished and report it as done by itself.
#[derive(Debug, Clone, Default)]
pub struct LiveHandle {
    pub handle: Arc<std::sync::Mutex<Option<String>>>,
    pub turn: Arc<tokio::sync::Mutex<()>>,
    /// The attempt's log once it is open, so an action's outcome (and what the plugin
    /// logs while acting) lands in the task's log.
    pub log: Arc<std::sync::Mutex<Option<shoal_model::TaskLog>>>,
}

impl LiveHandle {
    pub fn new(handle: Option<String>) -> Self {
        Self {
            handle: Arc::new(std::sync::Mutex::new(handle)),
            turn: Arc::default(),
            log: Arc::default(),
        }
    }

    /// The attempt's log, or one that keeps nothing before it is open.
    pub fn log(&self) -> shoal_model::TaskLog {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(shoal_model::TaskLog::discard)
    }

    pub fn get(&self) -> Option<String> {
        self.handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set(&self, handle: String) {
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }
}

/// A task attempt to run. Everything but the in-process hooks travels over RPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRequest {
    pub identity: TaskIdentity,
    /// Task type name (matched case-insensitively to a plugin id).
    pub task_type: String,
    /// Pin a plugin version; none means the active version.
    pub plugin_version: Option<semver::Version>,
    /// Parameters, already substituted.
    pub params: serde_json::Value,
    /// Wall-clock limit for the whole task, external job included.
    #[serde(with = "opt_millis", default)]
    pub timeout: Option<Duration>,
    /// Re-attach to an external job started earlier instead of calling `start`.
    pub attach_to: Option<String>,
    /// Print each log line as it is written (the CLI's live view).
    #[serde(default)]
    pub echo_log: bool,
    /// Rank in the container queues: 0 = HIGHEST … 4 = LOWEST (see [`priority`]).
    pub priority: u8,
    /// Named task group whose slot the task must also hold.
    pub task_group: Option<String>,
    /// The worker group that must run it (DolphinScheduler's `worker_group`); none is
    /// the `default` group.
    #[serde(default)]
    pub worker_group: Option<String>,
    /// (task name, state) of the task's direct upstream tasks in its run, for logic tasks
    /// (`shoal:task/workflow`); empty for a task run on its own.
    pub upstream_states: Vec<(String, String)>,
    /// The master, for `shoal:task/workflow` calls about child runs and other workflows'
    /// runs (SubWorkflow, Dependent); none for a task run on its own. In-process only:
    /// the master runs logic tasks itself.
    #[serde(skip)]
    pub workflow_host: Option<Arc<dyn WorkflowHost>>,
    /// The run's business time, ms since the Unix epoch; 0 for a task run on its own.
    pub schedule_time_ms: i64,
    /// Stores an external job's handle; the executor waits for it before the first poll,
    /// so a job is never followed without its handle being durable. In-process only.
    #[serde(skip)]
    pub persist_handle: Option<HandleSink>,
    /// Where the executor keeps its job's handle, when the node running it wants to
    /// replace it later (see [`LiveHandle`]). In-process only.
    #[serde(skip)]
    pub live_handle: Option<LiveHandle>,
    /// Secret values the task may see; masked wherever they would appear in its log.
    pub redact: Vec<String>,
    /// The datasources the task's parameters name, passwords included, for the host's
    /// `shoal:task/sql`; the plugin only ever sees their names.
    #[serde(default)]
    pub datasources: Vec<shoal_model::GrantedDatasource>,
    /// The task's declared OUT parameters as (name, type: `VARCHAR`, `LIST`, ...).
    #[serde(default)]
    pub declared_out: Vec<(String, String)>,
    /// The value each declared OUT parameter is given, as (name, value as written): a
    /// default, or where a task type reads it from (an HTTP task's `$.data.id`).
    #[serde(default)]
    pub declared_out_values: Vec<(String, String)>,
    /// The handle an earlier attempt of this task in its run left, for a plugin that
    /// resumes from it (a Flink job's last savepoint).
    #[serde(default)]
    pub previous_handle: Option<String>,
    /// OUT parameters of type FILE as (name, path in the work dir): read when the task
    /// succeeds and passed on as `<task>.<name>` ([`shoal_model::file_param`]).
    #[serde(default)]
    pub out_files: Vec<(String, String)>,
    /// Files for IN parameters of type FILE as (name, value of the upstream FILE
    /// parameter): written into the work dir as `name` before the task starts.
    #[serde(default)]
    pub in_files: Vec<(String, String)>,
    /// The task's project (which of the operator's Flink clusters it may use); none for
    /// a task run on its own.
    #[serde(default)]
    pub project: Option<String>,
    /// The OS user its processes run as when the host is root (the project's tenant);
    /// none means the policy's default tenant.
    pub tenant: Option<String>,
    /// Whether its project may run task types that start processes (an admin's
    /// decision in server mode; always so for a task run on one's own machine).
    pub process_allowed: bool,
    /// The node chosen to run it, as stored in the task row before the dispatch call.
    #[serde(default)]
    pub host: String,
    /// The owning master's generation for the instance, so a worker can tell the
    /// dispatch of a master that lost it (and refuse it).
    #[serde(default)]
    pub owner_generation: u64,
}

impl TaskRequest {
    pub fn new(task_type: impl Into<String>, params: serde_json::Value) -> Self {
        Self {
            identity: TaskIdentity {
                attempt: 1,
                ..Default::default()
            },
            task_type: task_type.into(),
            redact: Vec::new(),
            datasources: Vec::new(),
            declared_out: Vec::new(),
            declared_out_values: Vec::new(),
            previous_handle: None,
            out_files: Vec::new(),
            in_files: Vec::new(),
            project: None,
            tenant: None,
            process_allowed: true,
            plugin_version: None,
            params,
            timeout: None,
            attach_to: None,
            echo_log: false,
            priority: priority::MEDIUM,
            task_group: None,
            worker_group: None,
            upstream_states: Vec::new(),
            workflow_host: None,
            schedule_time_ms: 0,
            persist_handle: None,
            live_handle: None,
            host: String::new(),
            owner_generation: 0,
        }
    }

    pub fn key(&self) -> TaskKey {
        self.identity.key()
    }
}

/// Lifecycle events of one task inside the TaskEngine, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum TaskEvent {
    Dispatched {
        plugin: String,
        version: String,
        /// Where its log is being written (readable while it runs).
        log_path: PathBuf,
    },
    Running,
    /// An external job is running elsewhere; persist this before anything else.
    HandleAssigned {
        handle: String,
    },
    Progress {
        note: String,
    },
    Finished {
        state: TaskState,
        message: String,
    },
}

/// How a task ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    pub state: TaskState,
    pub message: String,
    pub out_params: Vec<(String, String)>,
    pub log_path: PathBuf,
    pub work_dir: PathBuf,
    pub plugin_version: Option<String>,
    pub handle: Option<String>,
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

/// What the master hears about an attempt from wherever it executes. Each is
/// acknowledged by the master once stored; see [`KeyedEvent`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "update", rename_all = "kebab-case")]
pub enum TaskUpdate {
    /// The plugin began executing (after waiting for a container slot, maybe), on this
    /// plugin version, logging to this file on its node.
    Running {
        plugin_version: Option<String>,
        log_path: Option<String>,
    },
    /// An external job's handle: stored before the job is followed.
    Handle { handle: String },
    /// How much of the task's log its node has (bytes), for followers.
    LogPosition { bytes: u64 },
    /// A piece of the attempt's log, bytes `offset..next_offset` of the node's log file:
    /// shipped by a remote worker so the log stays readable through the master after
    /// the worker is gone. `last`: nothing follows (sent before the attempt's end).
    Log {
        offset: u64,
        next_offset: u64,
        text: String,
        last: bool,
    },
    /// The attempt ended: succeeded, failed or killed.
    Ended { report: Box<TaskReport> },
}

/// An update with the key that makes it idempotent: (attempt, sequence number within
/// the attempt). A retried or duplicated update changes nothing; one for an attempt
/// that is no longer current is ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyedEvent {
    pub key: TaskKey,
    /// 1, 2, … per attempt, in the order the executor produced them.
    pub seq: u32,
    /// The node that executes the attempt.
    pub host: String,
    pub update: TaskUpdate,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
