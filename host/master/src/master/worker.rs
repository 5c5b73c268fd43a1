//! The worker that owns one workflow instance.
//!
//! It handles the instance's events strictly in order, in batches: every event becomes
//! named transitions of the workflow and task state machines plus the store writes that
//! record them; the whole batch is committed (one group commit), and only then are its
//! effects carried out: tasks launched or killed, timers started, watchers told. A crash
//! at any point therefore leaves the store saying what was decided, never less; a
//! restarted engine rebuilds the worker from the store ([`InstanceWorker::load`]) and
//! carries on: finished tasks stay finished, external jobs are re-attached through their
//! persisted handle, and an attempt that was running on the lost process runs again.
//!
//! When the store keeps refusing a batch (longer than [`commit`](InstanceWorker::commit)
//! retries), the worker gives the instance up the way a lost engine would: it stops every
//! task attempt it launched (their results could not be stored, and a recovery runs again
//! whatever was not durably finished, so one left running would run twice), waits until
//! they are gone, and retires. External jobs are only let go, not cancelled: their handles
//! are stored, and recovery re-attaches to them. The master loads the instance again
//! after a while (`MasterConfig::recover_after`, doubling while the store keeps refusing).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shoal_model::{TaskState, Trigger};
use shoal_params::RunContext;
use shoal_protocol::{TakeOver, TaskIdentity, TaskKey, TaskReport, TaskRequest, TaskUpdate};
use shoal_store::{StoreError, TaskInstanceRow, Write, now_ms};
use shoal_workflow::{FailureStrategy, Flag, TaskDefinition, TimeoutStrategy, WorkflowDefinition};
use tokio::sync::{mpsc, oneshot};

use super::params::{business_time, out_params, task_params};
use super::{Master, MasterError, Operation, Progress, StartTasks};
use crate::graph::{ExecutionGraph, NodeStatus};
use crate::state::{TaskAction, TaskInstanceState as T, WorkflowAction, WorkflowState as W};

/// Project of definitions saved without one.
pub const DEFAULT_PROJECT: &str = "default";

/// OUT parameter with which a logic task (Switch, Condition) names the downstream tasks
/// to follow: a JSON array of task names. Its other direct downstream tasks are skipped.
pub const BRANCH_PARAM: &str = "shoal.branch";

type Reply = oneshot::Sender<Result<(), MasterError>>;

/// What happens to an instance, in the order it happened.
pub(super) enum Event {
    /// What the node executing a task attempt reports; `ack` is told once the batch
    /// holding it is stored (or at once when it is stale).
    Update {
        key: TaskKey,
        update: TaskUpdate,
        ack: Option<oneshot::Sender<()>>,
    },
    /// The task could not be launched (its parameters do not resolve, say).
    LaunchFailed {
        name: String,
        id: i64,
        message: String,
    },
    /// A wait ended; `wait` tells which (see [`Slot::wait`]).
    DelayDue {
        name: String,
        wait: u64,
    },
    RetryDue {
        name: String,
        wait: u64,
    },
    /// The attempt was to be launched, but the instance is stopping meanwhile.
    NotLaunched {
        name: String,
        id: i64,
    },
    TimeoutWarning {
        name: String,
        id: i64,
    },
    Operation {
        op: Operation,
        reply: Reply,
    },
    /// An operation taken from the store's command queue; its outcome is also appended
    /// to the event stream for whoever queued it.
    Queued {
        op: Operation,
        command_id: i64,
        reply: Reply,
    },
}

/// What to do once the current batch is stored.
enum Effect {
    /// Start (or re-attach to) the task's current attempt.
    Launch {
        name: String,
        attach_to: Option<String>,
    },
    /// Kill the task's current attempt where it runs.
    Kill {
        name: String,
    },
    Timer {
        after: Duration,
        event: Event,
    },
    Workflow(W),
    /// Tell watchers about a task transition (its state at the time, not at commit).
    Task {
        name: String,
        state: T,
        message: String,
    },
    Reply(Reply, Result<(), MasterError>),
    Stored(oneshot::Sender<()>),
    /// Tell watchers (alerts) that a task with the warn strategy outran its timeout.
    TimeoutWarning {
        name: String,
    },
}

/// One task's current attempt.
struct Slot {
    /// Row of the current attempt (0 until its insert is stored).
    id: i64,
    attempt: u32,
    state: T,
    task_type: String,
    /// The row's attempt was dispatched, so running it again needs a new row.
    ran: bool,
    out_params: BTreeMap<String, String>,
    /// The node that runs (or ran) the current attempt, as stored in its row.
    host: String,
    /// When the current wait (delay or retry interval) ends, in ms since the epoch.
    due_at: i64,
    /// Which wait is current: a timer of an earlier wait finds a different number and
    /// is ignored.
    wait: u64,
    /// The external job's handle, once stored.
    handle: Option<String>,
}

/// Fields of a task row to change beside its state.
#[derive(Default)]
struct RowUpdate {
    message: Option<String>,
    out_params: Option<serde_json::Value>,
    handle: Option<String>,
    plugin_version: Option<String>,
    log_path: Option<String>,
    host: Option<String>,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

impl RowUpdate {
    /// The store write that sets row `id` to `state` and these fields.
    fn into_write(self, id: i64, state: T) -> Write {
        Write::UpdateTaskInstance {
            id,
            state: state.to_string(),
            host: self.host,
            plugin_version: self.plugin_version,
            handle: self.handle,
            message: self.message,
            out_params: self.out_params,
            log_path: self.log_path,
            started_at: self.started_at,
            ended_at: self.ended_at,
        }
    }
}

pub(super) struct InstanceWorker {
    master: Master,
    id: i64,
    definition: Arc<WorkflowDefinition>,
    project: String,
    state: W,
    graph: ExecutionGraph,
    slots: HashMap<String, Slot>,
    seq: i64,
    startup: BTreeMap<String, String>,
    /// The project's secrets as `secret.NAME` params; in memory only.
    secrets: BTreeMap<String, String>,
    tenancy: super::tenancy::ProjectTenancy,
    schedule_time: i64,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    writes: Vec<Write>,
    effects: Vec<Effect>,
    /// A task failed under failure strategy `end`: nothing new starts.
    failing: bool,
    /// Attempts lost with a previous process, to run again once loaded.
    lost: Vec<String>,
    /// Attempts that still run where they were dispatched: nothing to launch.
    still_running: Vec<String>,
    /// Task rows created by this batch: (index of the insert among `writes`, task).
    inserts: Vec<(usize, String)>,
    waits: u64,
    /// Slots not in a final state, and slots dispatched or running: kept as counts so
    /// deciding what to do after each batch does not walk every task.
    unfinished: usize,
    executing: usize,
    /// Tasks that reached a final state since the last look for ready tasks.
    finished_now: Vec<String>,
    /// Look at the whole graph for ready tasks (after loading, resume, recover, rerun).
    rescan: bool,
    /// Some slot was put back to `submitted` (a resume).
    resubmitted: bool,
    /// Task names by the row id of an attempt, to route updates (ids of earlier attempts
    /// stay, and find a slot whose current attempt is another).
    rows: HashMap<i64, String>,
    /// Task definitions by name (a workflow may have thousands).
    index: HashMap<String, usize>,
    /// Control commands to the nodes that execute this instance's attempts, in order.
    control: mpsc::UnboundedSender<super::control::Control>,
}

pub(super) fn parse_workflow_state(text: &str) -> Result<W, MasterError> {
    serde_json::from_value(json!(text)).map_err(|_| {
        MasterError::Store(StoreError::Corrupt(format!(
            "unknown workflow state `{text}`"
        )))
    })
}

fn parse_task_state(text: &str) -> Result<T, MasterError> {
    serde_json::from_value(json!(text)).map_err(|_| {
        MasterError::Store(StoreError::Corrupt(format!("unknown task state `{text}`")))
    })
}

fn is_executing(state: T) -> bool {
    matches!(state, T::Dispatched | T::Running)
}

impl InstanceWorker {
    /// Rebuild an instance's worker from the store.
    pub(super) async fn load(master: Master, id: i64) -> Result<Self, MasterError> {
        let store = master.store().clone();
        let row = store
            .workflow_instance(id)
            .await?
            .ok_or(MasterError::NoSuchInstance(id))?;
        let stored = store
            .definition_by_id(row.definition_id, row.version)
            .await?
            .ok_or(MasterError::NoSuchDefinition {
                id: row.definition_id,
                version: row.version,
            })?;
        let bad = |message: String| MasterError::BadDefinition {
            id: row.definition_id,
            version: row.version,
            message,
        };
        let mut definition: WorkflowDefinition =
            serde_json::from_value(stored.spec).map_err(|e| bad(e.to_string()))?;
        // An operator's pin holds a task type at one version for this workflow, unless
        // the task names a version itself.
        let pins = store.plugin_pins(row.definition_id).await?;
        for task in definition
            .tasks
            .iter_mut()
            .filter(|t| t.plugin_version.is_none())
        {
            if let Some((_, v)) = pins
                .iter()
                .find(|(plugin, _)| shoal_model::task::task_type_matches(&task.task_type, plugin))
            {
                task.plugin_version = v.parse().ok();
            }
        }
        let start: StartTasks =
            serde_json::from_value(row.start_tasks.clone()).map_err(|e| bad(e.to_string()))?;
        let startup: BTreeMap<String, String> =
            serde_json::from_value(row.startup_params.clone()).map_err(|e| bad(e.to_string()))?;
        let edges: Vec<(String, Vec<String>)> = definition
            .tasks
            .iter()
            .map(|t| (t.name.clone(), t.deps.clone()))
            .collect();
        let mut graph = ExecutionGraph::new(&edges, &start.scope())?;
        for task in &definition.tasks {
            if master
                .trigger(&task.task_type, task.plugin_version.as_ref())
                .await
                == Trigger::AllDone
            {
                graph.set_all_done(&task.name)?;
            }
        }

        let mut slots = HashMap::new();
        let mut lost = Vec::new();
        let mut still_running = Vec::new();
        let mut row_index = HashMap::new();
        let rows = store.task_instances(id).await?;
        let mut latest: HashMap<&str, &TaskInstanceRow> = HashMap::new();
        for r in &rows {
            latest.insert(r.task_name.as_str(), r);
        }
        let interval = |name: &str| {
            definition
                .task(name)
                .map(|t| t.retry_interval_ms)
                .unwrap_or(0) as i64
        };
        let delay = |name: &str| definition.task(name).map(|t| t.delay_ms).unwrap_or(0) as i64;
        for (name, r) in latest {
            if definition.task(name).is_none() {
                continue;
            }
            let state = parse_task_state(&r.state)?;
            row_index.insert(r.id, name.to_owned());
            let out_params = serde_json::from_value(r.out_params.clone()).unwrap_or_default();
            let due_at = match state {
                T::Retrying => r.ended_at.unwrap_or(r.updated_at) + interval(name),
                T::Delayed => r.created_at + delay(name),
                _ => 0,
            };
            let host = r.host.clone().unwrap_or_default();
            if is_executing(state) && r.started_at.is_some() {
                // The attempt may still run where it was dispatched (only this master
                // went away): if so it reports here from now on and nothing restarts.
                let key = TaskKey {
                    workflow_instance_id: id as u64,
                    task_instance_id: r.id as u64,
                    attempt: r.attempt as u32,
                };
                match master.take_over(&host, key).await {
                    TakeOver::Running => {
                        still_running.push(name.to_owned());
                    }
                    TakeOver::Unknown if r.handle.is_none() => lost.push(name.to_owned()),
                    TakeOver::Unknown => {}
                }
            }
            graph.set_state(name, state)?;
            slots.insert(
                name.to_owned(),
                Slot {
                    id: r.id,
                    attempt: r.attempt as u32,
                    state,
                    task_type: r.task_type.clone(),
                    ran: r.started_at.is_some(),
                    out_params,
                    host,
                    due_at,
                    wait: 0,
                    handle: r.handle.clone(),
                },
            );
        }
        let project = definition
            .project
            .clone()
            .unwrap_or_else(|| DEFAULT_PROJECT.to_owned());
        let secrets = master.secret_params(&project).await;
        let tenancy = master.project_tenancy(&project).await;
        let (tx, rx) = mpsc::unbounded_channel();
        let control = super::control::Controller::spawn(master.client().clone(), tx.clone());
        Ok(Self {
            master,
            id,
            project,
            definition: Arc::new(definition),
            state: parse_workflow_state(&row.state)?,
            graph,
            slots,
            seq: store.last_event_seq(id).await?,
            startup,
            secrets,
            tenancy,
            schedule_time: row.schedule_time,
            tx,
            rx,
            writes: Vec::new(),
            effects: Vec::new(),
            failing: false,
            lost,
            still_running,
            inserts: Vec::new(),
            waits: 0,
            unfinished: 0,
            executing: 0,
            finished_now: Vec::new(),
            rescan: true,
            resubmitted: false,
            index: HashMap::new(),
            rows: row_index,
            control,
        }
        .counted())
    }

    fn task_def(&self, name: &str) -> Option<&TaskDefinition> {
        self.index.get(name).map(|&i| &self.definition.tasks[i])
    }

    fn counted(mut self) -> Self {
        self.index = self
            .definition
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let states: Vec<T> = self.slots.values().map(|s| s.state).collect();
        for state in states {
            self.count(None, Some(state));
        }
        self
    }

    /// Keep `unfinished` and `executing` in step with a slot's state change (`None`: no
    /// slot).
    fn count(&mut self, from: Option<T>, to: Option<T>) {
        let unfinished = |s: Option<T>| s.is_some_and(|s| !s.is_finished()) as usize;
        let executing = |s: Option<T>| s.is_some_and(is_executing) as usize;
        self.unfinished = self.unfinished + unfinished(to) - unfinished(from);
        self.executing = self.executing + executing(to) - executing(from);
    }

    fn remove_slot(&mut self, name: &str) {
        if let Some(slot) = self.slots.remove(name) {
            self.count(Some(slot.state), None);
        }
    }

    pub(super) fn sender(&self) -> mpsc::UnboundedSender<Event> {
        self.tx.clone()
    }

    pub(super) fn id(&self) -> i64 {
        self.id
    }

    /// Queue an event before the worker starts.
    pub(super) fn enqueue(&mut self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Take back an event queued before the worker started.
    pub(super) fn dequeue(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    pub(super) async fn run(mut self) {
        self.resume_after_load();
        self.advance();
        if !self.commit().await {
            return self.give_up().await;
        }
        self.master.stored(self.id);
        loop {
            // A settled instance still handles what was queued for it (an operation
            // that loaded it, say) before its worker goes.
            let first = if self.settled() {
                match self.rx.try_recv() {
                    Ok(event) => event,
                    Err(_) => return self.retire(),
                }
            } else {
                match self.rx.recv().await {
                    Some(event) => event,
                    None => return self.retire(),
                }
            };
            self.handle(first);
            // Everything that queued meanwhile joins this batch: one commit for all.
            for _ in 0..4096 {
                match self.rx.try_recv() {
                    Ok(event) => self.handle(event),
                    Err(_) => break,
                }
            }
            self.advance();
            if !self.commit().await {
                return self.give_up().await;
            }
        }
    }

    /// Finished or paused, and no task attempt still reporting.
    fn settled(&self) -> bool {
        (self.state.is_finished() || self.state == W::Paused) && self.executing == 0
    }

    /// The store refused this instance's state: stop the attempts this worker launched
    /// and wait until they are gone (dropping an executor drops its plugin call's store,
    /// which kills the processes it started), then retire. Only then may another worker
    /// load the instance, so no attempt runs twice at once.
    async fn give_up(self) {
        let executing: Vec<(String, TaskKey)> = self
            .slots
            .values()
            .filter(|s| is_executing(s.state) && s.id > 0)
            .map(|s| (s.host.clone(), self.key_of(s)))
            .collect();
        let running = executing.len();
        let (done, gone) = oneshot::channel();
        let _ = self
            .control
            .send(super::control::Control::LetGo { executing, done });
        let _ = gone.await;
        if running > 0 {
            tracing::warn!(
                "instance {}: stopped {running} task executor(s) whose results could not be stored",
                self.id
            );
        }
        let (master, id) = (self.master.clone(), self.id);
        self.retire();
        master.recover_later(id);
    }

    fn retire(mut self) {
        self.master.retire(self.id);
        self.master
            .publish(Progress::Released { instance: self.id });
        // Operations sent between the last look and the retirement go to a fresh
        // worker, which handles queued events before it settles.
        self.rx.close();
        while let Ok(event) = self.rx.try_recv() {
            if let Event::Operation { .. } | Event::Queued { .. } = event {
                let master = self.master.clone();
                let id = self.id;
                tokio::spawn(async move {
                    let _ = master.send(id, event).await;
                });
            }
        }
    }

    /// Pick up where the stored state leaves off.
    fn resume_after_load(&mut self) {
        if self.state == W::Submitted {
            let _ = self.workflow(WorkflowAction::Start);
        }
        if !matches!(self.state, W::Running | W::ReadyPause | W::ReadyStop) {
            return;
        }
        let now = now_ms();
        let mut names: Vec<String> = self.slots.keys().cloned().collect();
        names.sort();
        for name in names {
            let slot = &self.slots[&name];
            let (state, attach_to) = (slot.state, slot.handle.clone());
            let after = Duration::from_millis((slot.due_at - now).max(0) as u64);
            match state {
                T::Delayed => {
                    let n = name.clone();
                    self.start_wait(&name, after, |wait| Event::DelayDue { name: n, wait });
                }
                T::Retrying => {
                    let n = name.clone();
                    self.start_wait(&name, after, |wait| Event::RetryDue { name: n, wait });
                }
                T::Dispatched | T::Running
                    if !self.lost.contains(&name) && !self.still_running.contains(&name) =>
                {
                    self.effects.push(Effect::Launch { name, attach_to });
                }
                _ => {}
            }
        }
        for name in std::mem::take(&mut self.lost) {
            // The process that ran this attempt is gone and left no handle to re-attach
            // to: the attempt is lost, and runs again at once (unless the instance was
            // being stopped or paused anyway).
            if self.state != W::Running {
                self.end(
                    &name,
                    TaskAction::Kill,
                    "the engine stopped while this attempt ran",
                );
                continue;
            }
            let message = "the engine stopped while this attempt ran; it runs again";
            if self.end(&name, TaskAction::Fail { retries_left: true }, message) {
                self.next_attempt(&name);
            }
        }
    }

    /// Start a wait for `slot` (delay or retry interval); `event` builds the timer's
    /// event from the wait's number.
    fn start_wait(&mut self, name: &str, after: Duration, event: impl FnOnce(u64) -> Event) {
        self.waits += 1;
        let wait = self.waits;
        if let Some(slot) = self.slots.get_mut(name) {
            slot.wait = wait;
            slot.due_at = now_ms() + after.as_millis() as i64;
        }
        self.effects.push(Effect::Timer {
            after,
            event: event(wait),
        });
    }

    // ---- events ------------------------------------------------------------------

    fn handle(&mut self, event: Event) {
        match event {
            Event::Update { key, update, ack } => {
                self.update(key, update);
                if let Some(ack) = ack {
                    self.effects.push(Effect::Stored(ack));
                }
            }
            Event::LaunchFailed { name, id, message } => {
                if self.is_current(&name, id) && is_executing(self.slots[&name].state) {
                    self.failed(&name, message, false, RowUpdate::default());
                }
            }
            Event::NotLaunched { name, id } => {
                if self.is_current(&name, id) && is_executing(self.slots[&name].state) {
                    self.end(
                        &name,
                        TaskAction::Kill,
                        "not started: the instance is stopping",
                    );
                }
            }
            Event::DelayDue { name, wait } => {
                if self.wait_is_over(&name, T::Delayed, wait) {
                    self.dispatch(&name);
                }
            }
            Event::RetryDue { name, wait } => {
                if self.wait_is_over(&name, T::Retrying, wait) {
                    self.next_attempt(&name);
                }
            }
            Event::TimeoutWarning { name, id } => {
                if self.is_current(&name, id) && is_executing(self.slots[&name].state) {
                    let slot = &self.slots[&name];
                    let state = slot.state;
                    let after = self.task_def(&name).and_then(|t| t.timeout_ms);
                    let payload = json!({"task": name, "task_instance_id": id, "attempt": slot.attempt, "after_ms": after});
                    self.append("task-timeout-warning", payload);
                    self.effects.push(Effect::Task {
                        name: name.clone(),
                        state,
                        message: "running longer than its timeout (strategy: warn)".into(),
                    });
                    self.effects.push(Effect::TimeoutWarning { name });
                }
            }
            Event::Operation { op, reply } => {
                let result = self.operate(op);
                self.effects.push(Effect::Reply(reply, result));
            }
            Event::Queued {
                op,
                command_id,
                reply,
            } => {
                let result = self.operate(op.clone());
                let message = match &result {
                    Ok(()) => String::new(),
                    Err(e) => e.to_string(),
                };
                self.append(
                    "command",
                    json!({"command_id": command_id, "op": op.to_string(), "accepted": result.is_ok(), "message": message}),
                );
                self.effects.push(Effect::Reply(reply, result));
            }
        }
    }

    /// An update from the node executing an attempt. One for an attempt that is not
    /// the task's current one, or a repeat of one already applied, changes nothing.
    fn update(&mut self, key: TaskKey, update: TaskUpdate) {
        let id = key.task_instance_id as i64;
        let Some(name) = self.rows.get(&id).cloned() else {
            return;
        };
        if !self.is_current(&name, id) || !is_executing(self.slots[&name].state) {
            return;
        }
        match update {
            TaskUpdate::Running {
                plugin_version,
                log_path,
            } => {
                // Stored with the start, so the log can be read (and followed) live.
                self.started(
                    &name,
                    RowUpdate {
                        plugin_version,
                        log_path,
                        ..Default::default()
                    },
                );
            }
            TaskUpdate::Handle { handle } => {
                if let Some(slot) = self.slots.get_mut(&name) {
                    if slot.handle.as_deref() == Some(handle.as_str()) {
                        return;
                    }
                    slot.handle = Some(handle.clone());
                }
                self.save(
                    &name,
                    RowUpdate {
                        handle: Some(handle),
                        ..Default::default()
                    },
                );
            }
            TaskUpdate::LogPosition { .. } => {}
            TaskUpdate::Ended { report } => self.ended(&name, *report),
        }
    }

    fn key_of(&self, slot: &Slot) -> TaskKey {
        TaskKey {
            workflow_instance_id: self.id as u64,
            task_instance_id: slot.id as u64,
            attempt: slot.attempt,
        }
    }

    /// Whether a timer for wait number `wait` still means something: the task is still
    /// in that wait and the instance may start tasks.
    fn wait_is_over(&self, name: &str, state: T, wait: u64) -> bool {
        self.slots
            .get(name)
            .is_some_and(|s| s.state == state && s.wait == wait)
            && self.state == W::Running
            && !self.failing
    }

    /// The plugin began executing (after waiting for a container slot, maybe).
    fn started(&mut self, name: &str, row: RowUpdate) {
        if self.slots[name].state == T::Dispatched && self.task(name, TaskAction::Start, "") {
            self.save(name, row);
        }
    }

    fn is_current(&self, name: &str, id: i64) -> bool {
        self.slots.get(name).is_some_and(|s| s.id == id)
    }

    fn ended(&mut self, name: &str, report: TaskReport) {
        let row = RowUpdate {
            message: Some(report.message.clone()),
            plugin_version: report.plugin_version.clone(),
            log_path: Some(report.log_path.display().to_string()),
            ended_at: Some(now_ms()),
            ..Default::default()
        };
        match report.state {
            TaskState::Succeeded => self.succeeded(name, &report, row),
            TaskState::Killed => {
                if self.task(name, TaskAction::Kill, &report.message) {
                    self.save(name, row);
                }
            }
            _ => self.failed(name, report.message, true, row),
        }
    }

    fn succeeded(&mut self, name: &str, report: &TaskReport, mut row: RowUpdate) {
        let Some(task) = self.task_def(name).cloned() else {
            return;
        };
        let ctx = self.run_context(name, self.slots[name].id);
        let upstream = self.upstream_pool(name);
        let out = out_params(
            &self.definition,
            &task,
            &self.startup,
            &upstream,
            &ctx,
            &report.out_params,
        );
        if !self.task(name, TaskAction::Succeed, &report.message) {
            return;
        }
        row.out_params = Some(json!(out));
        self.save(name, row);
        let branch = out.get(BRANCH_PARAM).cloned();
        if let Some(slot) = self.slots.get_mut(name) {
            slot.out_params = out;
        }
        if let Some(branch) = branch {
            self.take_branch(name, &branch);
        }
    }

    /// A logic task chose which downstream tasks run: skip the others, and whatever
    /// only they lead to.
    fn take_branch(&mut self, name: &str, branch: &str) {
        let chosen: Vec<String> = match serde_json::from_str(branch) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("task `{name}` named its branch badly (`{branch}`): {e}");
                return;
            }
        };
        let mut queue: Vec<String> = self
            .graph
            .downstream(name)
            .into_iter()
            .filter(|d| !chosen.contains(d))
            .collect();
        while let Some(next) = queue.pop() {
            if self.slots.contains_key(&next) || !self.graph.is_selected(&next) {
                continue;
            }
            // A task with another upstream that may still let it run is not skipped.
            let ups = self.graph.upstream(&next);
            let all_skipped = ups.iter().all(|u| {
                u == name && !chosen.contains(&next)
                    || self.slots.get(u).is_some_and(|s| s.state == T::Skipped)
                    || !self.graph.is_selected(u)
            });
            if !all_skipped {
                continue;
            }
            self.skip(&next, &format!("not on the branch `{name}` chose"));
            queue.extend(self.graph.downstream(&next));
        }
    }

    fn failed(&mut self, name: &str, message: String, may_retry: bool, mut row: RowUpdate) {
        let Some(task) = self.task_def(name) else {
            return;
        };
        let (retries, interval, strategy) = (
            task.fail_retry_times,
            task.retry_interval_ms,
            self.definition.failure_strategy,
        );
        let attempt = self.slots[name].attempt;
        let retries_left =
            may_retry && self.state == W::Running && !self.failing && attempt <= retries;
        if !self.task(name, TaskAction::Fail { retries_left }, &message) {
            return;
        }
        row.message = Some(message);
        row.ended_at.get_or_insert_with(now_ms);
        self.save(name, row);
        if retries_left {
            let name_owned = name.to_owned();
            self.start_wait(name, Duration::from_millis(interval), |wait| {
                Event::RetryDue {
                    name: name_owned,
                    wait,
                }
            });
        } else if strategy == FailureStrategy::End && !self.absorbed(name) {
            self.failing = true;
        }
    }

    /// A failure handled by an all-done task downstream (a Condition) ends nothing.
    fn absorbed(&self, name: &str) -> bool {
        self.graph
            .downstream(name)
            .iter()
            .any(|d| self.graph.is_selected(d) && self.graph.is_all_done(d))
    }

    // ---- operations --------------------------------------------------------------

    fn operate(&mut self, op: Operation) -> Result<(), MasterError> {
        match op {
            Operation::Stop => {
                self.workflow(WorkflowAction::Stop)?;
                if self.state == W::Stopped {
                    self.kill_all("stopped by an operator");
                }
            }
            Operation::Pause => self.workflow(WorkflowAction::Pause)?,
            Operation::Resume => {
                self.workflow(WorkflowAction::Resume)?;
                for name in self.names_in(&[T::Paused]) {
                    if self.task(&name, TaskAction::Resume, "resumed") {
                        self.save(&name, RowUpdate::default());
                    }
                }
                self.rescan = true;
            }
            Operation::Rerun => {
                self.workflow(WorkflowAction::Rerun)?;
                self.writes.push(Write::ArchiveTaskInstances {
                    workflow_instance_id: self.id,
                });
                let names: Vec<String> = self.slots.keys().cloned().collect();
                for name in names {
                    self.remove_slot(&name);
                    self.graph.clear_state(&name)?;
                }
                self.failing = false;
                self.rescan = true;
            }
            Operation::Recover => {
                self.workflow(WorkflowAction::Recover)?;
                for name in self.names_in(&[T::Failed, T::Killed]) {
                    self.remove_slot(&name);
                    self.graph.clear_state(&name)?;
                }
                self.failing = false;
                self.rescan = true;
            }
            Operation::ForceSuccess { task } => {
                self.known(&task)?;
                let from = self.slots[&task].state;
                from.apply(TaskAction::ForceSuccess)?;
                self.task(
                    &task,
                    TaskAction::ForceSuccess,
                    "forced to success by an operator",
                );
                self.save(&task, RowUpdate::default());
            }
            Operation::Kill { task } => {
                self.known(&task)?;
                let slot = self.slots.get_mut(&task).expect("checked");
                slot.state.apply(TaskAction::Kill)?;
                if is_executing(slot.state) {
                    self.effects.push(Effect::Kill { name: task });
                } else {
                    self.end(&task, TaskAction::Kill, "killed by an operator");
                }
            }
        }
        Ok(())
    }

    fn known(&self, task: &str) -> Result<(), MasterError> {
        if self.slots.contains_key(task) {
            Ok(())
        } else {
            Err(MasterError::NoSuchTask {
                instance: self.id,
                task: task.to_owned(),
            })
        }
    }

    fn names_in(&self, states: &[T]) -> Vec<String> {
        let mut names: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| states.contains(&s.state))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    // ---- deciding what runs --------------------------------------------------------

    /// Start what may start, and settle the instance when nothing is left.
    fn advance(&mut self) {
        match self.state {
            W::Running => {
                if self.failing {
                    self.finished_now.clear();
                    self.kill_all("another task failed (failure strategy: end)");
                } else {
                    if std::mem::take(&mut self.resubmitted) {
                        for name in self.names_in(&[T::Submitted]) {
                            self.dispatch(&name);
                        }
                    }
                    // Starting a task can finish it at once (a forbidden task is
                    // skipped), which can make more tasks ready.
                    loop {
                        let finished = std::mem::take(&mut self.finished_now);
                        let ready = if std::mem::take(&mut self.rescan) {
                            self.graph.ready()
                        } else if finished.is_empty() {
                            break;
                        } else {
                            self.graph
                                .ready_after(&finished)
                                .unwrap_or_else(|| self.graph.ready())
                        };
                        for name in ready {
                            if !self.slots.contains_key(&name) {
                                self.begin(&name);
                            }
                        }
                    }
                }
                // Walking the graph for completion is worth it only once nothing runs.
                if self.unfinished == 0 && (self.failing || self.graph.is_complete()) {
                    let action = if self.failing || self.graph.has_failure() {
                        WorkflowAction::TaskFailed
                    } else {
                        WorkflowAction::AllSucceeded
                    };
                    let _ = self.workflow(action);
                }
            }
            W::ReadyPause => {
                for name in self.names_in(&[T::Submitted, T::Delayed, T::Retrying]) {
                    if self.task(&name, TaskAction::Pause, "paused") {
                        self.save(&name, RowUpdate::default());
                    }
                }
                let executing = self.executing > 0;
                if !executing && self.graph.is_complete() {
                    let action = if self.graph.has_failure() {
                        WorkflowAction::TaskFailed
                    } else {
                        WorkflowAction::AllSucceeded
                    };
                    let _ = self.workflow(action);
                } else if !executing {
                    let _ = self.workflow(WorkflowAction::Drained);
                }
            }
            W::ReadyStop => {
                self.kill_all("stopped by an operator");
                if self.executing == 0 {
                    let _ = self.workflow(WorkflowAction::Drained);
                }
            }
            _ => {}
        }
    }

    /// Kill running attempts (where they run; they report back) and end
    /// waiting ones at once.
    fn kill_all(&mut self, why: &str) {
        let mut names: Vec<String> = self.slots.keys().cloned().collect();
        names.sort();
        for name in names {
            let slot = self.slots.get_mut(&name).expect("listed");
            if is_executing(slot.state) {
                self.effects.push(Effect::Kill { name });
            } else if !slot.state.is_finished() {
                self.end(&name, TaskAction::Kill, why);
            }
        }
    }

    /// A ready task's first step: skipped when forbidden, delayed when it has a
    /// delay, otherwise dispatched.
    fn begin(&mut self, name: &str) {
        let Some(task) = self.task_def(name).cloned() else {
            return;
        };
        if task.flag == Flag::No {
            self.skip(name, "forbidden (flag: NO); its dependents run");
            return;
        }
        self.new_slot(&task, 1);
        if task.delay_ms > 0 {
            self.task(name, TaskAction::Delay, "");
            self.insert_row(name, None);
            let name_owned = name.to_owned();
            self.start_wait(name, Duration::from_millis(task.delay_ms), |wait| {
                Event::DelayDue {
                    name: name_owned,
                    wait,
                }
            });
        } else {
            self.task(name, TaskAction::Dispatch, "");
            self.place(name);
            self.insert_row(name, Some(now_ms()));
            self.launch_after_commit(name);
        }
    }

    fn skip(&mut self, name: &str, why: &str) {
        let Some(task) = self.task_def(name).cloned() else {
            return;
        };
        self.new_slot(&task, 1);
        self.task(name, TaskAction::Skip, why);
        let now = now_ms();
        self.writes.push(Write::InsertTaskInstance {
            workflow_instance_id: self.id,
            task_name: name.to_owned(),
            task_type: task.task_type.clone(),
            attempt: 1,
            state: T::Skipped.to_string(),
            message: why.to_owned(),
            host: None,
            started_at: Some(now),
            ended_at: Some(now),
            failover: false,
        });
        self.inserts.push((self.writes.len() - 1, name.to_owned()));
    }

    /// Dispatch a waiting task (delay over, or resumed after a pause).
    fn dispatch(&mut self, name: &str) {
        if self.slots[name].ran {
            // A resumed retry: its earlier attempt failed and the next one gets a row.
            self.save_state(name, T::Failed);
            let slot = self.slots.get_mut(name).expect("present");
            slot.attempt += 1;
            if self.task(name, TaskAction::Dispatch, "") {
                self.place(name);
                self.insert_row(name, Some(now_ms()));
                self.launch_after_commit(name);
            }
            return;
        }
        if self.task(name, TaskAction::Dispatch, "") {
            let host = self.place(name);
            self.save(
                name,
                RowUpdate {
                    started_at: Some(now_ms()),
                    host: Some(host),
                    ..Default::default()
                },
            );
            self.launch_after_commit(name);
        }
    }

    /// The retry interval is over: the failed attempt's row says so and a new attempt
    /// starts.
    fn next_attempt(&mut self, name: &str) {
        self.save_state(name, T::Failed);
        if !self.task(name, TaskAction::RetryDue, "") {
            return;
        }
        if let Some(slot) = self.slots.get_mut(name) {
            slot.attempt += 1;
        }
        self.place(name);
        self.insert_row(name, Some(now_ms()));
        self.launch_after_commit(name);
    }

    /// Choose the node for the task's next attempt; it is stored with the attempt's row
    /// in this batch, before anything is sent to that node.
    fn place(&mut self, name: &str) -> String {
        let (group, task_type) = match self.task_def(name) {
            Some(t) => (Some(t.worker_group.clone()), t.task_type.clone()),
            None => (None, String::new()),
        };
        let host = match self.master.client().place(&task_type, group.as_deref()) {
            Ok(Some(host)) => host,
            Ok(None) | Err(_) => String::new(),
        };
        if let Some(slot) = self.slots.get_mut(name) {
            slot.host.clone_from(&host);
        }
        host
    }

    fn launch_after_commit(&mut self, name: &str) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.ran = true;
            slot.handle = None;
        }
        self.effects.push(Effect::Launch {
            name: name.to_owned(),
            attach_to: None,
        });
    }

    fn new_slot(&mut self, task: &TaskDefinition, attempt: u32) {
        self.remove_slot(&task.name);
        self.count(None, Some(T::Submitted));
        self.slots.insert(
            task.name.clone(),
            Slot {
                id: 0,
                attempt,
                state: T::Submitted,
                task_type: task.task_type.clone(),
                ran: false,
                out_params: BTreeMap::new(),
                host: String::new(),
                due_at: 0,
                wait: 0,
                handle: None,
            },
        );
    }

    // ---- transitions and writes ----------------------------------------------------

    fn workflow(&mut self, action: WorkflowAction) -> Result<(), MasterError> {
        let from = self.state;
        let to = from.apply(action)?;
        self.state = to;
        let now = now_ms();
        self.writes.push(Write::UpdateWorkflowInstance {
            id: self.id,
            state: to.to_string(),
            started_at: (action == WorkflowAction::Start).then_some(now),
            ended_at: to.is_finished().then_some(now),
        });
        self.append(
            &format!("workflow-{action}"),
            json!({"from": from, "to": to}),
        );
        self.effects.push(Effect::Workflow(to));
        Ok(())
    }

    /// Apply a task transition; false (and nothing recorded) when it is not allowed.
    fn task(&mut self, name: &str, action: TaskAction, message: &str) -> bool {
        let Some(slot) = self.slots.get_mut(name) else {
            return false;
        };
        let from = slot.state;
        let to = match from.apply(action) {
            Ok(to) => to,
            Err(e) => {
                tracing::debug!("instance {}: task `{name}`: {e}", self.id);
                return false;
            }
        };
        slot.state = to;
        let (id, attempt) = (slot.id, slot.attempt);
        let _ = self.graph.set_state(name, to);
        self.count(Some(from), Some(to));
        if to.is_finished() && !from.is_finished() {
            self.finished_now.push(name.to_owned());
        }
        if to == T::Submitted {
            self.resubmitted = true;
        }
        self.append(
            &format!("task-{action}"),
            json!({"task": name, "task_instance_id": id, "attempt": attempt, "from": from, "to": to, "message": message}),
        );
        self.effects.push(Effect::Task {
            name: name.to_owned(),
            state: to,
            message: message.to_owned(),
        });
        true
    }

    fn append(&mut self, kind: &str, payload: serde_json::Value) {
        self.seq += 1;
        self.writes.push(Write::AppendEvent {
            workflow_instance_id: self.id,
            seq: self.seq,
            kind: kind.to_owned(),
            payload,
        });
    }

    /// End the slot's attempt with `action`, recording why and when; false when the
    /// transition is not allowed.
    fn end(&mut self, name: &str, action: TaskAction, why: &str) -> bool {
        if !self.task(name, action, why) {
            return false;
        }
        self.save(
            name,
            RowUpdate {
                message: Some(why.into()),
                ended_at: Some(now_ms()),
                ..Default::default()
            },
        );
        true
    }

    /// Store the slot's current state, with `row`'s other fields.
    fn save(&mut self, name: &str, row: RowUpdate) {
        let slot = &self.slots[name];
        let write = row.into_write(slot.id, slot.state);
        self.writes.push(write);
    }

    /// Store a state for the slot's current row other than the slot's own (the row of
    /// an attempt being replaced).
    fn save_state(&mut self, name: &str, state: T) {
        let id = self.slots[name].id;
        self.writes.push(RowUpdate::default().into_write(id, state));
    }

    fn insert_row(&mut self, name: &str, started_at: Option<i64>) {
        let slot = &self.slots[name];
        self.writes.push(Write::InsertTaskInstance {
            workflow_instance_id: self.id,
            task_name: name.to_owned(),
            task_type: slot.task_type.clone(),
            attempt: slot.attempt as i64,
            state: slot.state.to_string(),
            message: String::new(),
            host: (!slot.host.is_empty()).then(|| slot.host.clone()),
            started_at,
            ended_at: None,
            failover: false,
        });
        self.inserts.push((self.writes.len() - 1, name.to_owned()));
    }

    /// Store the batch, then act on it. False when the store keeps refusing it: the
    /// worker stops, leaving the instance as last stored for a later recovery.
    async fn commit(&mut self) -> bool {
        if self.writes.is_empty() && self.effects.is_empty() {
            return true;
        }
        let writes = coalesce(std::mem::take(&mut self.writes), &mut self.inserts);
        let mut tries = 0;
        let limit = self.master.inner.config.store_write_timeout;
        let ids = loop {
            let attempt = tokio::time::timeout(limit, self.master.store().write(writes.clone()));
            let (error, again) = match attempt.await {
                Ok(Ok(ids)) => break ids,
                Ok(Err(e)) => (e.to_string(), true),
                // No answer: the batch may still commit later, and sending it again could
                // store it twice. Recovery reads whatever did land.
                Err(_) => (format!("the store did not answer within {limit:?}"), false),
            };
            tries += 1;
            if tries >= 5 || !again {
                tracing::error!(
                    "instance {}: storing its state failed {tries} time(s), last: {error}; its tasks are stopped and it stays as last stored until the engine recovers it",
                    self.id
                );
                for effect in std::mem::take(&mut self.effects) {
                    if let Effect::Reply(reply, _) = effect {
                        let _ = reply.send(Err(MasterError::NotStored(error.clone())));
                    }
                }
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50 << tries)).await;
        };
        for (index, name) in std::mem::take(&mut self.inserts) {
            if let (Some(slot), Some(Some(id))) = (self.slots.get_mut(&name), ids.get(index)) {
                slot.id = *id;
                self.rows.insert(*id, name);
            }
        }
        for effect in std::mem::take(&mut self.effects) {
            match effect {
                Effect::Launch { name, attach_to } => self.launch(&name, attach_to),
                Effect::Kill { name } => {
                    if let Some(slot) = self.slots.get(&name).filter(|s| s.id > 0) {
                        let key = self.key_of(slot);
                        let _ = self.control.send(super::control::Control::Kill {
                            host: slot.host.clone(),
                            key,
                        });
                    }
                }
                Effect::Timer { after, event } => {
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(event);
                    });
                }
                Effect::Workflow(state) => self.master.publish(Progress::Workflow {
                    instance: self.id,
                    state,
                }),
                Effect::Task {
                    name,
                    state,
                    message,
                } => {
                    if let Some(slot) = self.slots.get(&name) {
                        self.master.publish(Progress::Task {
                            instance: self.id,
                            task: name,
                            task_instance_id: slot.id,
                            attempt: slot.attempt,
                            state,
                            message,
                        });
                    }
                }
                Effect::TimeoutWarning { name } => {
                    if let Some(slot) = self.slots.get(&name) {
                        self.master.publish(Progress::TimeoutWarning {
                            instance: self.id,
                            task: name,
                            task_instance_id: slot.id,
                        });
                    }
                }
                Effect::Reply(reply, result) => {
                    let _ = reply.send(result);
                }
                Effect::Stored(stored) => {
                    let _ = stored.send(());
                }
            }
        }
        true
    }

    // ---- launching -----------------------------------------------------------------

    fn run_context(&self, name: &str, task_instance_id: i64) -> RunContext {
        RunContext {
            schedule_time: business_time(self.schedule_time),
            workflow_instance_id: self.id as u64,
            task_instance_id: task_instance_id as u64,
            workflow_definition_name: self.definition.name.clone(),
            task_definition_name: name.to_owned(),
            project_name: self.project.clone(),
        }
    }

    /// OUT parameters of every task upstream of `name`, nearer ones winning.
    fn upstream_pool(&self, name: &str) -> BTreeMap<String, String> {
        let mut pool = BTreeMap::new();
        for up in self.graph.ancestors(name) {
            if let Some(slot) = self.slots.get(&up)
                && slot.state.lets_dependents_run()
            {
                for (k, v) in &slot.out_params {
                    if k != BRANCH_PARAM {
                        pool.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        pool
    }

    /// How each direct upstream task ended, for logic tasks (a Condition).
    fn upstream_states(&self, name: &str) -> Vec<(String, String)> {
        self.graph
            .upstream(name)
            .into_iter()
            .map(|up| {
                let state = match (self.slots.get(&up), self.graph.status(&up)) {
                    (Some(slot), _) => slot.state.to_string(),
                    (None, Some(NodeStatus::NotSelected)) => T::Succeeded.to_string(),
                    (None, _) => T::Failed.to_string(),
                };
                (up, state)
            })
            .collect()
    }

    fn launch(&mut self, name: &str, attach_to: Option<String>) {
        let Some(task) = self.task_def(name).cloned() else {
            return;
        };
        let Some(slot) = self.slots.get(name) else {
            return;
        };
        let (id, attempt, task_type) = (slot.id, slot.attempt, slot.task_type.clone());
        let slot_host = slot.host.clone();
        if self.failing || self.state == W::ReadyStop {
            let _ = self.tx.send(Event::NotLaunched {
                name: name.to_owned(),
                id,
            });
            return;
        }
        let ctx = self.run_context(name, id);
        let upstream = self.upstream_pool(name);
        let params = match task_params(
            &self.definition,
            &task,
            &self.startup,
            &upstream,
            &self.secrets,
            &ctx,
        ) {
            Ok(p) => p,
            Err(e) => {
                let _ = self.tx.send(Event::LaunchFailed {
                    name: name.to_owned(),
                    id,
                    message: format!("cannot resolve its parameters: {e}"),
                });
                return;
            }
        };
        let mut request = TaskRequest::new(task_type, params);
        request.identity = TaskIdentity {
            workflow_instance_id: self.id as u64,
            task_instance_id: id as u64,
            task_name: name.to_owned(),
            attempt,
        };
        request.plugin_version = task.plugin_version.clone();
        request.redact = self.secrets.values().cloned().collect();
        request.tenant.clone_from(&self.tenancy.tenant);
        request.process_allowed = self.tenancy.process_allowed;
        let timeout = task.timeout_ms.map(Duration::from_millis);
        request.timeout = match task.timeout_strategy {
            TimeoutStrategy::Warn => None,
            TimeoutStrategy::Fail | TimeoutStrategy::Both => timeout,
        };
        request.attach_to = attach_to;
        request.echo_log = self.master.inner.config.echo_task_logs;
        request.priority = task.priority as u8;
        request.task_group = task.task_group.clone();
        request.upstream_states = self.upstream_states(name);
        request.schedule_time_ms = self.schedule_time;
        request.workflow_host = Some(Arc::new(super::host::EngineHost {
            master: self.master.clone(),
            project: self.project.clone(),
            schedule_time: self.schedule_time,
            redact: request.redact.clone(),
        }));
        if let (Some(after), TimeoutStrategy::Warn | TimeoutStrategy::Both) =
            (timeout, task.timeout_strategy)
        {
            let tx = self.tx.clone();
            let name = name.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(Event::TimeoutWarning { name, id });
            });
        }
        request.worker_group = Some(task.worker_group.clone());
        request.host = slot_host;
        let _ = self
            .control
            .send(super::control::Control::Dispatch(Box::new(request)));
    }
}

/// Fold several updates of one task row in a batch into one (a short task is dispatched,
/// runs and finishes within one batch): fewer statements, the same final row. Insert
/// positions in `inserts` are moved to match.
fn coalesce(writes: Vec<Write>, inserts: &mut [(usize, String)]) -> Vec<Write> {
    let mut last = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Write::UpdateTaskInstance { id, .. } = w {
            last.insert(*id, i);
        }
    }
    if last.len()
        == writes
            .iter()
            .filter(|w| matches!(w, Write::UpdateTaskInstance { .. }))
            .count()
    {
        return writes;
    }
    let mut earlier: HashMap<i64, Write> = HashMap::new();
    let mut moved = HashMap::new();
    let mut out = Vec::with_capacity(writes.len());
    for (i, w) in writes.into_iter().enumerate() {
        match w {
            Write::UpdateTaskInstance { id, .. } if last[&id] != i => {
                let merged = match earlier.remove(&id) {
                    Some(before) => merge(before, w),
                    None => w,
                };
                earlier.insert(id, merged);
            }
            Write::UpdateTaskInstance { id, .. } => {
                out.push(match earlier.remove(&id) {
                    Some(before) => merge(before, w),
                    None => w,
                });
            }
            other => {
                moved.insert(i, out.len());
                out.push(other);
            }
        }
    }
    for (index, _) in inserts.iter_mut() {
        if let Some(&to) = moved.get(index) {
            *index = to;
        }
    }
    out
}

/// `after` applied on top of `before` (both updates of one row).
fn merge(before: Write, after: Write) -> Write {
    match (before, after) {
        (
            Write::UpdateTaskInstance {
                host: h0,
                plugin_version: p0,
                handle: k0,
                message: m0,
                out_params: o0,
                log_path: l0,
                started_at: s0,
                ended_at: e0,
                ..
            },
            Write::UpdateTaskInstance {
                id,
                state,
                host,
                plugin_version,
                handle,
                message,
                out_params,
                log_path,
                started_at,
                ended_at,
            },
        ) => Write::UpdateTaskInstance {
            id,
            state,
            host: host.or(h0),
            plugin_version: plugin_version.or(p0),
            handle: handle.or(k0),
            message: message.or(m0),
            out_params: out_params.or(o0),
            log_path: log_path.or(l0),
            started_at: started_at.or(s0),
            ended_at: ended_at.or(e0),
        },
        (_, after) => after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: i64, state: &str, message: Option<&str>, started_at: Option<i64>) -> Write {
        Write::UpdateTaskInstance {
            id,
            state: state.into(),
            host: None,
            plugin_version: None,
            handle: None,
            message: message.map(Into::into),
            out_params: None,
            log_path: None,
            started_at,
            ended_at: None,
        }
    }

    #[test]
    fn updates_of_one_row_fold_into_the_last() {
        let insert = Write::InsertTaskInstance {
            workflow_instance_id: 1,
            task_name: "b".into(),
            task_type: "noop".into(),
            attempt: 1,
            state: "dispatched".into(),
            message: String::new(),
            host: None,
            started_at: None,
            ended_at: None,
            failover: false,
        };
        let writes = vec![
            update(7, "dispatched", None, Some(5)),
            update(8, "running", None, None),
            update(7, "running", Some("first"), None),
            insert.clone(),
            update(7, "succeeded", None, None),
        ];
        let mut inserts = vec![(3, "b".to_string())];
        let out = coalesce(writes, &mut inserts);
        assert_eq!(
            out,
            vec![
                update(8, "running", None, None),
                insert,
                update(7, "succeeded", Some("first"), Some(5)),
            ]
        );
        assert_eq!(inserts, vec![(1, "b".to_string())]);
    }
}
