//! The [`TaskExecutor`]: the lifecycle of one task instance.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_model::{LogLevel, LogStream, TaskLog, TaskOutcome, TaskState, TaskStatus};
use shoal_protocol::{CANCEL_ACTION, ChildEnds, ControlDone, ControlRequest};
pub use shoal_protocol::{HandleSink, TaskEvent, TaskReport, TaskRequest};
use shoal_runtime::{
    CallError, CallLimits, LoadedPlugin, PluginRegistry, PollReply, StartReply, TaskEnv,
};
use tokio_util::sync::CancellationToken;

use crate::containers::{Containers, SlotGuard, SlotRequest};

/// Where task work dirs and logs go, and how often external jobs are polled.
#[derive(Debug, Clone)]
pub struct TaskEngineConfig {
    pub work_root: PathBuf,
    /// Where SQLite datasources live (`<data dir>/datasources/<project>/`).
    pub datasource_root: PathBuf,
    pub log_root: PathBuf,
    pub poll_interval: Duration,
    pub work_dirs: WorkDirRetention,
}

/// What becomes of a task's work dir when the task ends. It may hold whatever the task
/// was given (substituted scripts, secrets among them), so by default it goes at once;
/// a failed task's stays a while for debugging.
#[derive(Debug, Clone)]
pub struct WorkDirRetention {
    /// Keep the work dirs of tasks that succeeded too (tests that inspect them).
    pub keep_succeeded: bool,
    /// How long a failed (or killed) task's work dir is kept.
    pub keep_failed_for: Duration,
}

impl Default for WorkDirRetention {
    fn default() -> Self {
        Self {
            keep_succeeded: false,
            keep_failed_for: Duration::from_secs(24 * 3600),
        }
    }
}

/// Runs task instances. Cheap to clone.
#[derive(Clone)]
pub struct TaskEngine {
    registry: Arc<PluginRegistry>,
    config: TaskEngineConfig,
    containers: Option<Arc<Containers>>,
    /// (component, parameters) pairs that passed `validate`, so a fan-out of the same
    /// task does not instantiate its plugin twice per task (validation depends on the
    /// component and the parameters only).
    validated: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
    /// When kept work dirs were last swept (ms since the epoch).
    last_sweep: Arc<std::sync::atomic::AtomicU64>,
    /// Task instances executing here, whose work dirs a sweep leaves alone.
    live: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
}

/// Under the log root: the segment files short tasks share.
const SHORT_LOG_DIR: &str = "short";

/// Kept work dirs are looked over at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Remembered validations, at most; the set starts over when full.
const VALIDATED_CAPACITY: usize = 8192;

impl TaskEngine {
    pub fn new(registry: Arc<PluginRegistry>, config: TaskEngineConfig) -> Self {
        Self {
            registry,
            config,
            containers: None,
            validated: Default::default(),
            last_sweep: Default::default(),
            live: Default::default(),
        }
    }

    /// Remove the work dir a task left, or keep it (failed tasks, for a while), and
    /// now and then remove kept ones that are past their time.
    fn retire_work_dir(&self, dir: &std::path::Path, succeeded: bool) {
        let retention = &self.config.work_dirs;
        if !dir.exists() {
            return;
        }
        if succeeded && !retention.keep_succeeded {
            let _ = std::fs::remove_dir_all(dir);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let last = self.last_sweep.load(std::sync::atomic::Ordering::Relaxed);
        if now.as_millis() as u64 >= last + SWEEP_EVERY.as_millis() as u64
            && self
                .last_sweep
                .compare_exchange(
                    last,
                    now.as_millis() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).clone();
            sweep_kept(&self.config.work_root, retention.keep_failed_for, &live);
        }
    }

    /// Run tasks in containers: each task holds a shared or exclusive slot (and its
    /// task group's slot) while it runs, and waits in priority order when none is free.
    pub fn with_containers(mut self, containers: Arc<Containers>) -> Self {
        self.containers = Some(containers);
        self
    }

    pub fn containers(&self) -> Option<&Arc<Containers>> {
        self.containers.as_ref()
    }

    pub fn registry(&self) -> &Arc<PluginRegistry> {
        &self.registry
    }

    /// Run a task to its end. Events go to `on_event` in order; the call returns the
    /// final report. Cancelling `cancel` kills the task (and its processes, and its
    /// external job).
    pub async fn execute(
        &self,
        request: TaskRequest,
        cancel: CancellationToken,
        on_event: impl FnMut(&TaskEvent) + Send,
    ) -> TaskReport {
        TaskExecutor::new(self, request, cancel, on_event)
            .run()
            .await
    }
}

impl TaskEngine {
    /// Carry out a named action on the external job of an attempt (`request.task`, its
    /// handle in `attach_to`), in a fresh plugin instance as a poll would be. The host's
    /// own `cancel` calls the plugin's `cancel` unless the plugin offers an action of
    /// that name. `Err` says why the action was not done.
    pub async fn control(
        &self,
        request: &ControlRequest,
        log: TaskLog,
    ) -> Result<ControlDone, String> {
        let task = &request.task;
        let handle = task.attach_to.clone().ok_or_else(|| {
            format!(
                "task `{}` has no external job to act on",
                task.identity.task_name
            )
        })?;
        let plugin = self
            .registry
            .resolve(&task.task_type, task.plugin_version.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let env = TaskEnv {
            identity: task.identity.clone(),
            params: task.params.clone(),
            // Actions get no work dir of their own: everything is in the handle.
            work_dir: self
                .config
                .work_root
                .join(task.identity.task_instance_id.to_string()),
            tenant: task.tenant.clone(),
            log: log.with_redactions(task.redact.iter().cloned()),
            upstream_states: Vec::new(),
            workflow_host: None,
            schedule_time_ms: task.schedule_time_ms,
            datasources: task.datasources.clone(),
            datasource_root: Some(self.config.datasource_root.clone()),
            declared_out: task.declared_out.clone(),
            declared_out_values: task.declared_out_values.clone(),
            previous_handle: task.previous_handle.clone(),
            project: task.project.clone(),
        };
        // A savepoint of a large job takes a while; the plugin waits for it.
        let limits = CallLimits::timeout(CONTROL_TIMEOUT);
        if request.action == CANCEL_ACTION && plugin.action(CANCEL_ACTION).is_err() {
            return match plugin.cancel(&env, &limits, &handle).await {
                Ok(Ok(())) => Ok(ControlDone {
                    message: format!("external job `{handle}` cancelled"),
                    new_handle: None,
                    job_ended: true,
                }),
                Ok(Err(m)) => Err(m),
                Err(e) => Err(e.to_string()),
            };
        }
        match plugin
            .act(&env, &limits, &handle, &request.action, &request.args)
            .await
        {
            Ok(Ok(reply)) => Ok(ControlDone {
                message: env.log.redact(&reply.message),
                new_handle: reply.new_handle,
                job_ended: reply.job_ended,
            }),
            Ok(Err(m)) => Err(env.log.redact(&m)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// How long one action on a job may take (a savepoint of a large job is slow).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(600);

/// Remove work dirs last changed longer than `keep` ago, except those of tasks running
/// in this engine (a long external job may leave its dir untouched for days).
fn sweep_kept(root: &std::path::Path, keep: Duration, live: &std::collections::HashSet<u64>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let running = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|id| live.contains(&id));
        let old = !running
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > keep);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn humantime_secs(d: Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The lifecycle of one task instance.
pub struct TaskExecutor<'a, F: FnMut(&TaskEvent) + Send> {
    engine: &'a TaskEngine,
    request: TaskRequest,
    cancel: CancellationToken,
    on_event: F,
    started: Instant,
    deadline: Option<Instant>,
    handle: Option<String>,
    plugin_version: Option<String>,
    log: TaskLog,
    log_path: PathBuf,
    work_dir: PathBuf,
}

impl<'a, F: FnMut(&TaskEvent) + Send> TaskExecutor<'a, F> {
    pub fn new(
        engine: &'a TaskEngine,
        request: TaskRequest,
        cancel: CancellationToken,
        on_event: F,
    ) -> Self {
        let id = request.identity.task_instance_id;
        let started = Instant::now();
        Self {
            deadline: request.timeout.map(|t| started + t),
            work_dir: engine.config.work_root.join(id.to_string()),
            log_path: engine
                .config
                .log_root
                .join(format!("{id}-{}.log", request.identity.attempt)),
            engine,
            request,
            cancel,
            on_event,
            started,
            handle: None,
            plugin_version: None,
            log: TaskLog::discard(),
        }
    }

    fn emit(&mut self, event: TaskEvent) {
        (self.on_event)(&event);
    }

    fn limits(&self) -> CallLimits {
        CallLimits {
            deadline: self.deadline,
            cancel: self.cancel.clone(),
        }
    }

    fn env(&self) -> TaskEnv {
        TaskEnv {
            identity: self.request.identity.clone(),
            params: self.request.params.clone(),
            work_dir: self.work_dir.clone(),
            tenant: self.request.tenant.clone(),
            log: self.log.clone(),
            upstream_states: self.request.upstream_states.clone(),
            workflow_host: self.request.workflow_host.clone(),
            schedule_time_ms: self.request.schedule_time_ms,
            datasources: self.request.datasources.clone(),
            datasource_root: Some(self.engine.config.datasource_root.clone()),
            declared_out: self.request.declared_out.clone(),
            declared_out_values: self.request.declared_out_values.clone(),
            previous_handle: self.request.previous_handle.clone(),
            project: self.request.project.clone(),
        }
    }

    pub async fn run(mut self) -> TaskReport {
        let id = self.request.identity.task_instance_id;
        self.engine
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
        let outcome = self
            .lifecycle()
            .await
            .and_then(|o| self.collect_out_files(o))
            .and_then(|o| {
                // OUT parameters travel to the store and to every downstream task: capped.
                match self
                    .engine
                    .registry
                    .policy()
                    .task_limits
                    .check_out_params(&o.out_params)
                {
                    Ok(()) => Ok(o),
                    Err(message) => Err((TaskState::Failed, message)),
                }
            });
        self.engine
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let (state, message, out_params) = match outcome {
            Ok(o) => (
                match o.status {
                    TaskStatus::Succeeded => TaskState::Succeeded,
                    TaskStatus::Failed => TaskState::Failed,
                },
                o.message,
                o.out_params,
            ),
            Err((state, message)) => (state, message, Vec::new()),
        };
        // A task's message and OUT parameters reach the store, the API, alerts and
        // downstream tasks: the secrets it was given are masked there as in its log.
        let message = self.log.redact(&message);
        let out_params: Vec<(String, String)> = out_params
            .into_iter()
            .map(|(k, v)| (k, self.log.redact(&v)))
            .collect();
        self.log.write(
            LogStream::Host,
            if state == TaskState::Succeeded {
                LogLevel::Info
            } else {
                LogLevel::Error
            },
            &format!("task {state}: {message}"),
        );
        let succeeded = state == TaskState::Succeeded;
        if !succeeded && self.work_dir.exists() {
            self.log.write(
                LogStream::Host,
                LogLevel::Info,
                &format!(
                    "work dir {} kept for {} for debugging",
                    self.work_dir.display(),
                    humantime_secs(self.engine.config.work_dirs.keep_failed_for)
                ),
            );
        }
        self.log.flush();
        self.engine.retire_work_dir(&self.work_dir, succeeded);
        self.emit(TaskEvent::Finished {
            state,
            message: message.clone(),
        });
        TaskReport {
            state,
            message,
            out_params,
            log_path: self.log_path.clone(),
            work_dir: self.work_dir.clone(),
            plugin_version: self.plugin_version.clone(),
            handle: self.handle.clone(),
            elapsed: self.started.elapsed(),
        }
    }

    /// A succeeded task's OUT FILE parameters, read from its work dir into
    /// `<task>.<param>` OUT parameters; a missing or unreadable file fails the task, as in
    /// DolphinScheduler.
    fn collect_out_files(&self, mut o: TaskOutcome) -> Result<TaskOutcome, (TaskState, String)> {
        if o.status != TaskStatus::Succeeded || self.request.out_files.is_empty() {
            return Ok(o);
        }
        let limit = self.engine.registry.policy().task_limits.out_param_bytes;
        for (param, path) in &self.request.out_files {
            let bytes =
                crate::file_params::read_out_file(&self.work_dir, path, limit).map_err(|e| {
                    (
                        TaskState::Failed,
                        format!("OUT FILE parameter `{param}`: {e}"),
                    )
                })?;
            let key = shoal_model::file_param::out_key(&self.request.identity.task_name, param);
            let name = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            o.out_params.retain(|(k, _)| *k != key);
            o.out_params
                .push((key, shoal_model::file_param::encode(&name, &bytes)));
        }
        Ok(o)
    }

    /// `Err` carries a final state other than the plugin's own verdict.
    async fn lifecycle(&mut self) -> Result<TaskOutcome, (TaskState, String)> {
        let failed = |m: String| (TaskState::Failed, m);
        let resolved = self
            .engine
            .registry
            .resolve(
                &self.request.task_type,
                self.request.plugin_version.as_ref(),
            )
            .await;
        // Short tasks of workflow runs share segment files (see `shoal_model::log`);
        // everything else, and any task that cannot even start, gets a file of its own.
        let shared = matches!(&resolved, Ok(p) if p.execution_class() == shoal_model::ExecutionClass::Short)
            && self.request.identity.workflow_instance_id != 0;
        let id = self.request.identity.task_instance_id;
        let log = if shared {
            let dir = self.engine.config.log_root.join(SHORT_LOG_DIR);
            let log = TaskLog::to_segment(&dir, id);
            // The segment it joined, or the directory that could not take one.
            self.log_path = match &log {
                Ok(log) => log.path().unwrap_or(&dir).to_path_buf(),
                Err(_) => dir,
            };
            log
        } else {
            TaskLog::to_file(&self.log_path)
        }
        .map_err(|e| {
            failed(format!(
                "cannot create log {}: {e}",
                self.log_path.display()
            ))
        })?;
        let caps = &self.engine.registry.policy().task_limits;
        let log = log
            .with_redactions(self.request.redact.iter().cloned())
            .with_limits(caps.log_line_bytes, caps.log_bytes);
        self.log = if self.request.echo_log {
            log.with_echo(|line| eprintln!("{line}"))
        } else {
            log
        };
        if let Some(live) = &self.request.live_handle {
            *live.log.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.log.clone());
        }
        let plugin = resolved.map_err(|e| failed(e.to_string()))?;
        self.plugin_version = Some(plugin.manifest.version.to_string());
        if plugin.grant.process && !self.request.process_allowed {
            return Err(failed(format!(
                "this project may not run task types that start processes (`{}` holds the `process` capability): an admin allows it with `shoal projects allow-process PROJECT`",
                plugin.manifest.id
            )));
        }
        // Only plugins that may touch files or run processes get a work dir; creating
        // one per task for the rest would cost a directory entry per logic task.
        if plugin.grant.work_dir || plugin.grant.process {
            use std::os::unix::fs::DirBuilderExt;
            // Private to the task: other tasks' processes must not look in.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.work_dir)
                .map_err(|e| {
                    failed(format!(
                        "cannot create work dir {}: {e}",
                        self.work_dir.display()
                    ))
                })?;
        }
        if !self.request.in_files.is_empty() {
            if !(plugin.grant.work_dir || plugin.grant.process) {
                return Err(failed(format!(
                    "task type `{}` has no work dir to receive IN FILE parameters",
                    plugin.manifest.id
                )));
            }
            crate::file_params::write_in_files(&self.work_dir, &self.request.in_files)
                .map_err(failed)?;
        }
        self.emit(TaskEvent::Dispatched {
            plugin: plugin.manifest.id.clone(),
            version: plugin.manifest.version.to_string(),
            log_path: self.log_path.clone(),
        });
        self.log.info(
            LogStream::Host,
            &format!(
                "task `{}` (instance {}, attempt {}) runs on plugin {} {} ({})",
                self.request.identity.task_name,
                self.request.identity.task_instance_id,
                self.request.identity.attempt,
                plugin.manifest.id,
                plugin.manifest.version,
                plugin.execution_class()
            ),
        );

        // Held until the task ends, whatever the exit path; an external job gives its
        // container slot back between polls (see `Containers`).
        let mut slot = match self.engine.containers.clone() {
            None => None,
            Some(containers) => {
                let request = SlotRequest {
                    task_instance_id: self.request.identity.task_instance_id,
                    task_name: self.request.identity.task_name.clone(),
                    class: plugin.execution_class(),
                    priority: self.request.priority,
                    task_group: self.request.task_group.clone(),
                };
                tokio::select! {
                    slot = containers.acquire(request) => Some(slot.map_err(|e| failed(e.to_string()))?),
                    () = self.cancel.cancelled() => {
                        return Err((TaskState::Killed, "killed while waiting for a slot".to_owned()));
                    }
                }
            }
        };

        let handle = match self.request.attach_to.clone() {
            Some(handle) => {
                self.log.info(
                    LogStream::Host,
                    &format!("re-attaching to external job `{handle}`"),
                );
                self.emit(TaskEvent::Running);
                handle
            }
            None => {
                let key = {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    plugin.content_hash.hash(&mut h);
                    self.request.params.to_string().hash(&mut h);
                    h.finish()
                };
                let known_good = self
                    .engine
                    .validated
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&key);
                let errors = if known_good {
                    Vec::new()
                } else {
                    plugin
                        .validate(&self.env(), &self.limits())
                        .await
                        .map_err(|e| self.call_failed(e))?
                };
                if errors.is_empty() && !known_good {
                    let mut validated = self
                        .engine
                        .validated
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if validated.len() >= VALIDATED_CAPACITY {
                        validated.clear();
                    }
                    validated.insert(key);
                }
                if !errors.is_empty() {
                    let list: Vec<String> = errors
                        .iter()
                        .map(|e| format!("`{}`: {}", e.field, e.message))
                        .collect();
                    return Err(failed(format!("invalid parameters: {}", list.join("; "))));
                }
                self.emit(TaskEvent::Running);
                match plugin
                    .start(&self.env(), &self.limits())
                    .await
                    .map_err(|e| self.call_failed(e))?
                {
                    StartReply::Finished(outcome) => return Ok(outcome),
                    StartReply::Running { handle } => handle,
                }
            }
        };
        self.handle = Some(handle.clone());
        // From here on the task waits on a job elsewhere, which may need the container
        // itself (a child run's tasks): it holds the slot only while a poll runs.
        if let Some(slot) = slot.as_mut() {
            slot.release_container();
        }
        self.emit(TaskEvent::HandleAssigned {
            handle: handle.clone(),
        });
        if let Some(sink) = self.request.persist_handle.clone() {
            tokio::select! {
                () = sink.store(handle.clone()) => {}
                () = self.cancel.cancelled() => {
                    return Err(self.cancel_job(&plugin, &handle, CallError::Cancelled).await);
                }
            }
        }
        self.follow(&plugin, &handle, slot.as_mut()).await
    }

    /// Poll an external job until it ends, the deadline passes or the task is killed;
    /// in the last two cases the job itself is cancelled through the plugin. `slot`
    /// (without its container slot) is taken back for each poll and given back after.
    /// The cancel call runs without one: a kill must not wait behind the queue.
    async fn follow(
        &mut self,
        plugin: &Arc<LoadedPlugin>,
        handle: &str,
        mut slot: Option<&mut SlotGuard>,
    ) -> Result<TaskOutcome, (TaskState, String)> {
        let until = |at: Option<Instant>| async move {
            match at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // The first poll comes at once: it is the one that submits a job whose handle was
        // just stored (Flink), or sees a child run that ended quickly.
        let mut wait = Duration::ZERO;
        // A child run's end wakes the wait at once (SubWorkflow). Subscribed before the
        // first poll, so an end between a poll and the next wait is not missed.
        let mut child_ends = self
            .request
            .workflow_host
            .as_ref()
            .and_then(|host| host.child_ends(&self.request.identity));
        loop {
            let stop = tokio::select! {
                () = tokio::time::sleep(wait) => None,
                () = child_ended(child_ends.as_mut()) => None,
                () = until(self.deadline) => Some(CallError::TimedOut),
                () = self.cancel.cancelled() => Some(CallError::Cancelled),
            };
            if let Some(reason) = stop {
                let current = self.current_handle(handle);
                return Err(self.cancel_job(plugin, &current, reason).await);
            }
            if let Some(slot) = slot.as_deref_mut() {
                let stop = tokio::select! {
                    () = slot.reacquire_container() => None,
                    () = until(self.deadline) => Some(CallError::TimedOut),
                    () = self.cancel.cancelled() => Some(CallError::Cancelled),
                };
                if let Some(reason) = stop {
                    return Err(self.cancel_job(plugin, handle, reason).await);
                }
            }
            // An action on the job and a poll of it take turns; an action may have
            // replaced the handle (a stop with a savepoint) or ended the job.
            let live = self.request.live_handle.clone();
            let _turn = match &live {
                Some(l) => tokio::select! {
                    t = l.turn.lock() => Some(t),
                    () = self.cancel.cancelled() => {
                        let current = self.current_handle(handle);
                        return Err(self.cancel_job(plugin, &current, CallError::Cancelled).await);
                    }
                },
                None => None,
            };
            if self.cancel.is_cancelled() {
                let current = self.current_handle(handle);
                return Err(self
                    .cancel_job(plugin, &current, CallError::Cancelled)
                    .await);
            }
            wait = self.engine.config.poll_interval;
            let current = self.current_handle(handle);
            let reply = plugin.poll(&self.env(), &self.limits(), &current).await;
            if let Some(slot) = slot.as_deref_mut() {
                slot.release_container();
            }
            match reply {
                Ok(PollReply::Finished(outcome)) => return Ok(outcome),
                Ok(PollReply::Running { note }) => {
                    if !note.is_empty() {
                        self.log.info(LogStream::Host, &note);
                    }
                    self.emit(TaskEvent::Progress { note });
                }
                Err(reason @ (CallError::TimedOut | CallError::Cancelled)) => {
                    return Err(self.cancel_job(plugin, handle, reason).await);
                }
                Err(e) => return Err(self.call_failed(e)),
            }
        }
    }

    /// The handle to follow: the node's live copy when it keeps one, else `handle`.
    fn current_handle(&mut self, handle: &str) -> String {
        let current = self
            .request
            .live_handle
            .as_ref()
            .and_then(|h| h.get())
            .unwrap_or_else(|| handle.to_owned());
        self.handle = Some(current.clone());
        current
    }

    async fn cancel_job(
        &mut self,
        plugin: &Arc<LoadedPlugin>,
        handle: &str,
        reason: CallError,
    ) -> (TaskState, String) {
        // The task's own deadline has passed or its token fired; the cancel call gets
        // a fresh, short budget of its own.
        let limits = CallLimits::timeout(Duration::from_secs(30));
        let result = plugin.cancel(&self.env(), &limits, handle).await;
        let note = match result {
            Ok(Ok(())) => format!("external job `{handle}` cancelled"),
            Ok(Err(m)) => format!("cancelling external job `{handle}` failed: {m}"),
            Err(e) => format!("cancelling external job `{handle}` failed: {e}"),
        };
        self.log.write(LogStream::Host, LogLevel::Warn, &note);
        self.call_failed(reason)
    }

    fn call_failed(&self, error: CallError) -> (TaskState, String) {
        match error {
            CallError::Cancelled => (TaskState::Killed, "killed".to_owned()),
            CallError::TimedOut => (
                TaskState::Failed,
                format!(
                    "timed out after {:?}; the plugin and its processes were stopped",
                    self.request.timeout.unwrap_or_default()
                ),
            ),
            other => (TaskState::Failed, other.to_string()),
        }
    }
}

/// Resolves when a child run of the task may have ended; never without a stream of ends.
async fn child_ended(ends: Option<&mut ChildEnds>) {
    match ends {
        Some(ends) => ends.next().await,
        None => std::future::pending().await,
    }
}
