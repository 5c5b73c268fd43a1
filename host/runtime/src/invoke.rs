//! One call into a plugin, in a fresh `Store`.
//!
//! Every `start`, `poll`, `cancel`, `validate` or `describe` gets a new store built from
//! the plugin's pre-instantiated component (microseconds), so no state leaks between
//! tasks and a misbehaving call cannot poison the next. The store carries the memory
//! cap; the call races the task's deadline and cancellation token. Guest code yields to
//! the executor at every epoch tick, so even `loop {}` loses that race promptly; the
//! store is then dropped, which kills every process the call started.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_model::{Grant, LogLevel, LogStream, TaskLog, TaskOutcome, TaskStatus};
use tokio_util::sync::CancellationToken;
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::types;
use crate::capabilities::HostState;
use crate::capabilities::wasi::GUEST_WORK_DIR;
use crate::capabilities::workflow::WorkflowHost;
use crate::plugin::{ActionInfo, FieldError, LoadedPlugin, PluginInfo};

pub use shoal_protocol::TaskIdentity;

/// Everything the host provides to one task: identity, parameters, work dir, log, and
/// where its workflow run stands.
#[derive(Debug, Clone)]
pub struct TaskEnv {
    pub identity: TaskIdentity,
    /// The task's parameters, already substituted, as a JSON object.
    pub params: serde_json::Value,
    /// The task's work dir on the host (created by the caller).
    pub work_dir: PathBuf,
    /// The OS user the task's processes run as when the host is root (its project's
    /// tenant); none means the policy's default tenant.
    pub tenant: Option<String>,
    pub log: TaskLog,
    /// (task name, state) of the task's direct upstream tasks in this run, states in
    /// kebab-case (`succeeded`, `failed`, `killed`, `skipped`, `forced-success`, ...).
    /// Served to the plugin by `shoal:task/workflow`; empty outside a workflow.
    pub upstream_states: Vec<(String, String)>,
    /// The master, for the `shoal:task/workflow` calls only it can answer (child runs,
    /// other workflows' runs). None for a task run on its own: those calls then return
    /// "only available inside a workflow run".
    pub workflow_host: Option<Arc<dyn WorkflowHost>>,
    /// The run's business time, ms since the Unix epoch (`schedule-time`); 0 outside a
    /// workflow. Served only together with a `workflow_host`.
    pub schedule_time_ms: i64,
    /// The datasources the task's parameters name, with their passwords, for
    /// `shoal:task/sql`; empty when it names none.
    pub datasources: Vec<shoal_model::GrantedDatasource>,
    /// Where SQLite datasources live on this host (`<data dir>/datasources`); none
    /// refuses SQLite.
    pub datasource_root: Option<PathBuf>,
    /// The task's declared OUT parameters as (name, type), for `context`.
    pub declared_out: Vec<(String, String)>,
    /// The value each declared OUT parameter is given, as (name, value as written).
    pub declared_out_values: Vec<(String, String)>,
    /// The handle an earlier attempt of the task left (`context.previous-handle`).
    pub previous_handle: Option<String>,
    /// The task's project: which of the operator's Flink clusters it may use.
    pub project: Option<String>,
}

impl TaskEnv {
    /// A task outside any workflow run (a describe or validate call, `shoal task run`,
    /// a benchmark): `params` in `work_dir`, with nothing logged and nothing else set.
    /// Callers that run inside a workflow fill in the rest.
    pub fn new(identity: TaskIdentity, params: serde_json::Value, work_dir: PathBuf) -> Self {
        Self {
            identity,
            params,
            work_dir,
            tenant: None,
            log: TaskLog::discard(),
            upstream_states: Vec::new(),
            workflow_host: None,
            schedule_time_ms: 0,
            datasources: Vec::new(),
            datasource_root: None,
            declared_out: Vec::new(),
            declared_out_values: Vec::new(),
            previous_handle: None,
            project: None,
        }
    }

    fn wit_context(&self) -> types::TaskContext {
        types::TaskContext {
            workflow_instance_id: self.identity.workflow_instance_id,
            task_instance_id: self.identity.task_instance_id,
            task_name: self.identity.task_name.clone(),
            attempt: self.identity.attempt,
            work_dir: GUEST_WORK_DIR.to_owned(),
            params: self.params.to_string(),
        }
    }
}

/// When a call must end.
#[derive(Debug, Clone, Default)]
pub struct CallLimits {
    pub deadline: Option<Instant>,
    pub cancel: CancellationToken,
}

impl CallLimits {
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            deadline: Some(Instant::now() + timeout),
            cancel: CancellationToken::new(),
        }
    }
}

/// Why a call did not return normally. The host is unaffected in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("timed out")]
    TimedOut,
    #[error("cancelled")]
    Cancelled,
    #[error("plugin exceeded its memory limit of {limit_mb} MiB")]
    MemoryLimit { limit_mb: u64 },
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("host error: {0}")]
    Host(String),
}

/// What `start` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartReply {
    Finished(TaskOutcome),
    /// An external job is running; persist the handle before acting on it.
    Running {
        handle: String,
    },
}

/// What `poll` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollReply {
    Running { note: String },
    Finished(TaskOutcome),
}

pub(crate) enum Call {
    Describe,
    Validate(String),
    Start,
    Poll(String),
    Cancel(String),
    Actions,
    /// (handle, action, args JSON)
    Act(String, String, String),
}

pub(crate) enum Reply {
    Describe(types::PluginInfo),
    Validate(Vec<types::FieldError>),
    Start(Result<types::StartOutcome, String>),
    Poll(Result<types::PollOutcome, String>),
    Cancel(Result<(), String>),
    Actions(Vec<ActionInfo>),
    Act(Result<ActionReply, String>),
}

/// What a control action did (`shoal:task/controls.act`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReply {
    pub message: String,
    /// Replaces the task's handle; stored before anything acts on it.
    pub new_handle: Option<String>,
    /// The action ended the job (a running task ends as killed, without a cancel).
    pub job_ended: bool,
}

fn controls_context(
    c: &types::TaskContext,
) -> crate::bindings::controls::shoal::task::types::TaskContext {
    crate::bindings::controls::shoal::task::types::TaskContext {
        workflow_instance_id: c.workflow_instance_id,
        task_instance_id: c.task_instance_id,
        task_name: c.task_name.clone(),
        attempt: c.attempt,
        work_dir: c.work_dir.clone(),
        params: c.params.clone(),
    }
}

fn outcome(result: types::TaskResult) -> TaskOutcome {
    TaskOutcome {
        status: match result.status {
            types::TaskStatus::Succeeded => TaskStatus::Succeeded,
            types::TaskStatus::Failed => TaskStatus::Failed,
        },
        message: result.message,
        out_params: result.out_params,
    }
}

impl LoadedPlugin {
    pub(crate) async fn invoke(
        &self,
        env: &TaskEnv,
        limits: &CallLimits,
        call: Call,
    ) -> Result<Reply, CallError> {
        let context = env.wit_context();
        // Describing and validating need no capability, so they get none.
        let grant = match call {
            Call::Describe | Call::Validate(_) | Call::Actions => Grant {
                process: false,
                work_dir: false,
                sql: false,
                settings: Default::default(),
                http_hosts: Vec::new(),
                memory_bytes: self.grant.memory_bytes,
                env_passthrough: Vec::new(),
                sandbox: self.grant.sandbox.clone(),
                limits: self.grant.limits.clone(),
                flink: None,
            },
            _ => self.grant.clone(),
        };
        // Declared before the store, so it is dropped after it: the pool slot is free
        // only once the store is gone.
        let mut _pool_slot = None;
        let reserved = matches!(call, Call::Describe | Call::Cancel(_) | Call::Actions);
        let mut state = HostState::new(&self.manifest.id, &grant, env, context.clone())
            .map_err(CallError::Host)?;
        // Nor may they act on the scheduler: they run apart from the task itself.
        if matches!(call, Call::Describe | Call::Validate(_) | Call::Actions) {
            state.workflow.detach();
        }
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));

        let deadline = async {
            match limits.deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let result = {
            let call = async {
                // Waiting for a pool slot races the deadline and the kill like the call.
                _pool_slot = self.engine.instance_permit(reserved).await;
                if let Call::Actions | Call::Act(..) = &call {
                    let Some(pre) = &self.controls else {
                        return Err(wasmtime::Error::msg("the plugin exports no controls"));
                    };
                    let instance = pre.instantiate_async(&mut store).await?;
                    let guest = instance.shoal_task_controls();
                    return Ok(match call {
                        Call::Actions => Reply::Actions(
                            guest
                                .call_actions(&mut store)
                                .await?
                                .into_iter()
                                .map(|a| ActionInfo {
                                    name: a.name,
                                    description: a.description,
                                })
                                .collect(),
                        ),
                        Call::Act(h, action, args) => Reply::Act(
                            guest
                                .call_act(
                                    &mut store,
                                    &controls_context(&context),
                                    &h,
                                    &action,
                                    &args,
                                )
                                .await?
                                .map(|o| ActionReply {
                                    message: o.message,
                                    new_handle: o.new_handle,
                                    job_ended: o.job_ended,
                                }),
                        ),
                        _ => unreachable!("only control calls reach here"),
                    });
                }
                let instance = self.pre.instantiate_async(&mut store).await?;
                let guest = instance.shoal_task_plugin();
                Ok::<_, wasmtime::Error>(match call {
                    Call::Describe => Reply::Describe(guest.call_describe(&mut store).await?),
                    Call::Validate(p) => {
                        Reply::Validate(guest.call_validate(&mut store, &p).await?)
                    }
                    Call::Start => Reply::Start(guest.call_start(&mut store, &context).await?),
                    Call::Poll(h) => Reply::Poll(guest.call_poll(&mut store, &context, &h).await?),
                    Call::Cancel(h) => {
                        Reply::Cancel(guest.call_cancel(&mut store, &context, &h).await?)
                    }
                    Call::Actions | Call::Act(..) => unreachable!("handled above"),
                })
            };
            tokio::select! {
                r = call => Some(r),
                () = deadline => None,
                () = limits.cancel.cancelled() => Some(Err(wasmtime::Error::msg(Cancelled))),
            }
        };
        store.data().output.finish();
        let limiter = &store.data().limits;
        let error = match result {
            Some(Ok(reply)) => return Ok(reply),
            None => CallError::TimedOut,
            Some(Err(e)) if e.downcast_ref::<Cancelled>().is_some() => CallError::Cancelled,
            Some(Err(_)) if limiter.hit => CallError::MemoryLimit {
                limit_mb: limiter.cap_mb(),
            },
            Some(Err(e)) => CallError::Trap(trap_message(&e)),
        };
        env.log.write(
            LogStream::Host,
            LogLevel::Error,
            &format!("plugin `{}`: {error}", self.manifest.id),
        );
        // Dropping the store here kills any process the call left behind.
        drop(store);
        Err(error)
    }

    /// Ask the plugin to describe itself.
    pub async fn describe(
        &self,
        env: &TaskEnv,
        limits: &CallLimits,
    ) -> Result<PluginInfo, CallError> {
        match self.invoke(env, limits, Call::Describe).await? {
            Reply::Describe(info) => Ok(PluginInfo::from_wit(info)),
            _ => unreachable!("describe returns Describe"),
        }
    }

    /// Check parameters; an empty list means they are acceptable.
    pub async fn validate(
        &self,
        env: &TaskEnv,
        limits: &CallLimits,
    ) -> Result<Vec<FieldError>, CallError> {
        match self
            .invoke(env, limits, Call::Validate(env.params.to_string()))
            .await?
        {
            Reply::Validate(errors) => Ok(errors
                .into_iter()
                .map(|e| FieldError {
                    field: e.field,
                    message: e.message,
                })
                .collect()),
            _ => unreachable!("validate returns Validate"),
        }
    }

    /// Run the task (or submit its external job).
    pub async fn start(&self, env: &TaskEnv, limits: &CallLimits) -> Result<StartReply, CallError> {
        match self.invoke(env, limits, Call::Start).await? {
            Reply::Start(Ok(types::StartOutcome::Finished(r))) => {
                Ok(StartReply::Finished(outcome(r)))
            }
            Reply::Start(Ok(types::StartOutcome::Running(handle))) => {
                Ok(StartReply::Running { handle })
            }
            Reply::Start(Err(message)) => Ok(StartReply::Finished(TaskOutcome::failed(message))),
            _ => unreachable!("start returns Start"),
        }
    }

    /// Check on an external job.
    pub async fn poll(
        &self,
        env: &TaskEnv,
        limits: &CallLimits,
        handle: &str,
    ) -> Result<PollReply, CallError> {
        match self
            .invoke(env, limits, Call::Poll(handle.to_owned()))
            .await?
        {
            Reply::Poll(Ok(types::PollOutcome::Running(note))) => Ok(PollReply::Running { note }),
            Reply::Poll(Ok(types::PollOutcome::Finished(r))) => Ok(PollReply::Finished(outcome(r))),
            Reply::Poll(Err(message)) => Ok(PollReply::Finished(TaskOutcome::failed(message))),
            _ => unreachable!("poll returns Poll"),
        }
    }

    /// Stop an external job.
    pub async fn cancel(
        &self,
        env: &TaskEnv,
        limits: &CallLimits,
        handle: &str,
    ) -> Result<Result<(), String>, CallError> {
        match self
            .invoke(env, limits, Call::Cancel(handle.to_owned()))
            .await?
        {
            Reply::Cancel(r) => Ok(r),
            _ => unreachable!("cancel returns Cancel"),
        }
    }
}

impl LoadedPlugin {
    /// The actions the plugin offers (empty without a `controls` export).
    pub(crate) async fn actions(
        &self,
        env: &TaskEnv,
        limits: &CallLimits,
    ) -> Result<Vec<ActionInfo>, CallError> {
        if self.controls.is_none() {
            return Ok(Vec::new());
        }
        match self.invoke(env, limits, Call::Actions).await? {
            Reply::Actions(a) => Ok(a),
            _ => unreachable!("actions returns Actions"),
        }
    }

    /// Carry out a named action on the external job behind `handle`. An action the
    /// plugin does not offer is refused here, without calling it.
    pub async fn act(
        &self,
        env: &TaskEnv,
        limits: &CallLimits,
        handle: &str,
        action: &str,
        args: &serde_json::Value,
    ) -> Result<Result<ActionReply, String>, CallError> {
        if let Err(message) = self.action(action) {
            return Ok(Err(message));
        }
        let call = Call::Act(handle.to_owned(), action.to_owned(), args.to_string());
        match self.invoke(env, limits, call).await? {
            Reply::Act(r) => Ok(r),
            _ => unreachable!("act returns Act"),
        }
    }
}

#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

fn trap_message(err: &wasmtime::Error) -> String {
    // The first line is wasmtime's summary; the full chain names the guest frame.
    let mut message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => err.to_string(),
    };
    let chain = format!("{err:?}");
    if let Some(frame) = chain.lines().find(|l| l.contains("!")) {
        message.push_str(&format!(" (at {})", frame.trim()));
    }
    message
}
