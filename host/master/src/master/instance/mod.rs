//! The worker that owns one workflow instance.
//!
//! It handles the instance's events strictly in order, in batches: every event becomes
//! named transitions of the workflow and task state machines plus the store writes that
//! record them; the whole batch is committed (one group commit), and only then are its
//! effects carried out: tasks launched or killed, timers started, watchers told. While
//! a batch is being stored, the events that queue meanwhile may already be decided into
//! the next batch (see `InstanceWorker::pipelines`); it is stored after the one in
//! flight, and its effects wait for it in turn. A crash at any point therefore leaves
//! the store saying what was decided, never less; a restarted engine rebuilds the
//! worker from the store ([`InstanceWorker::load`]) and carries on: finished tasks stay
//! finished, external jobs are re-attached through their persisted handle, and an
//! attempt that was running on the lost process runs again.
//!
//! When the store keeps refusing a batch (longer than [`commit`](InstanceWorker::commit)
//! retries), the worker gives the instance up the way a lost engine would: it stops every
//! task attempt it launched (their results could not be stored, and a recovery runs again
//! whatever was not durably finished, so one left running would run twice), waits until
//! they are gone, and retires. External jobs are only let go, not cancelled: their handles
//! are stored, and recovery re-attaches to them. The master loads the instance again
//! after a while (`MasterConfig::recover_after`, doubling while the store keeps refusing).

mod act;
mod advance;
mod decide;
#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use shoal_model::Trigger;
use shoal_protocol::{TakeOver, TaskKey, TaskUpdate};
use shoal_store::{StoreError, TaskInstanceRow, WorkflowInstanceRow, Write};
use shoal_workflow::WorkflowDefinition;
use tokio::sync::{mpsc, oneshot};

use super::{Master, MasterError, Operation, Progress, StartTasks};
use crate::graph::ExecutionGraph;
use crate::state::{TaskInstanceState as T, WorkflowState as W};
use act::Sealing;

/// What ended the wait while a batch was being stored.
enum Next {
    Stored(Result<Vec<Option<i64>>, act::Refusal>),
    Event(Event),
}

/// Project of definitions saved without one.
pub const DEFAULT_PROJECT: &str = "default";

/// OUT parameter with which a logic task (Switch, Condition) names the downstream tasks
/// to follow: a JSON array of task names. Its other direct downstream tasks are skipped.
pub const BRANCH_PARAM: &str = "shoal.branch";

type Reply = oneshot::Sender<Result<(), MasterError>>;

/// Who asked for an action on a job, to be answered once the node has answered.
pub(super) enum ControlAnswer {
    Direct(oneshot::Sender<Result<String, MasterError>>),
    /// Taken from the store's command queue: answered on the event stream.
    Queued {
        command_id: i64,
        op: String,
        reply: Reply,
    },
}

impl ControlAnswer {
    pub(super) fn send(self, result: Result<String, MasterError>) {
        match self {
            Self::Direct(reply) => {
                let _ = reply.send(result);
            }
            Self::Queued { reply, .. } => {
                let _ = reply.send(result.map(|_| ()));
            }
        }
    }
}

/// What happens to an instance, in the order it happened.
pub(super) enum Event {
    /// What the node executing a task attempt reports; `ack` is told once the batch
    /// holding it is stored (or at once when it is stale).
    Update {
        key: TaskKey,
        update: TaskUpdate,
        ack: Option<oneshot::Sender<()>>,
    },
    /// The task could not be launched (its parameters do not resolve, say);
    /// `unreachable` when its node did not answer (it may be gone).
    LaunchFailed {
        name: String,
        id: i64,
        message: String,
        unreachable: bool,
    },
    /// Time to try placing the tasks waiting in `dispatching` again.
    PlaceDue,
    /// Ready tasks were left for a later batch ([`advance::BEGIN_PER_BATCH`]): begin
    /// the next of them.
    BeginMore,
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
    /// These nodes died or registered again as a new generation: whatever this
    /// instance ran on them is asked after, and what they no longer hold is failed over.
    HostsLost {
        hosts: Arc<Vec<String>>,
        /// When the registry was read: attempts placed later went to the new generation.
        seen_at: std::time::Instant,
    },
    /// The node of the attempt (row `id`) does not hold it any more: fail it over.
    AttemptLost {
        name: String,
        id: i64,
    },
    /// An action on a task's job (`Operation::Control` from the API, say).
    Control {
        task: String,
        action: String,
        args: serde_json::Value,
        answer: ControlAnswer,
    },
    /// The node answered an action on the job of attempt row `id`.
    ControlDone {
        name: String,
        id: i64,
        action: String,
        outcome: Box<Result<shoal_protocol::ControlDone, String>>,
        answer: ControlAnswer,
    },
}

/// What to do once the current batch is stored.
pub(super) enum Effect {
    /// Start (or re-attach to) the task's current attempt.
    Launch {
        name: String,
        attach_to: Option<String>,
    },
    /// Kill the task's attempt (row `id`; 0: the row this batch creates) where it runs.
    Kill {
        name: String,
        id: i64,
    },
    Timer {
        after: Duration,
        event: Event,
    },
    Workflow(W),
    /// Tell watchers about a task transition (its state at the time, not at commit) of
    /// attempt `attempt`, row `id` (0: the row this batch creates).
    Task {
        name: String,
        id: i64,
        attempt: u32,
        state: T,
        message: String,
    },
    Reply(Reply, Result<(), MasterError>),
    Stored(oneshot::Sender<()>),
    /// Tell watchers (alerts) that a task with the warn strategy outran its timeout.
    TimeoutWarning {
        name: String,
        id: i64,
    },
    /// Carry out an action on the job of the task's current attempt, on `host` (none:
    /// a node placed now, as the attempt ended).
    Control {
        name: String,
        host: Option<String>,
        handle: String,
        action: String,
        args: serde_json::Value,
        answer: ControlAnswer,
    },
    /// Answer an action once its outcome is stored.
    ControlAnswer(ControlAnswer, Result<String, MasterError>),
    /// Queue an event for this instance's worker once the batch is stored.
    Later(Event),
}

/// One task's current attempt.
pub(super) struct Slot {
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
    /// How many of the task's attempts in this run were failovers (re-dispatches after
    /// their node was lost): they do not count against its retries.
    failovers: u32,
    /// The current attempt is a failover.
    failover: bool,
    /// When the current attempt was placed on `host` (none: placed by an earlier owner).
    placed_at: Option<std::time::Instant>,
}

/// What an instance's decisions need: its definition, graph and task slots, and what
/// the current batch decided (writes to store, effects to carry out once stored). It
/// knows nothing of the store or of task execution, so unit tests drive it directly.
pub(super) struct Decider {
    /// Chooses the node of a task's next attempt: (task type, worker group) → node.
    pub(super) placer: Placer,
    pub(super) id: i64,
    pub(super) definition: Arc<WorkflowDefinition>,
    pub(super) project: String,
    pub(super) state: W,
    pub(super) graph: ExecutionGraph,
    pub(super) slots: HashMap<String, Slot>,
    pub(super) seq: i64,
    pub(super) startup: BTreeMap<String, String>,
    pub(super) schedule_time: i64,
    pub(super) writes: Vec<Write>,
    pub(super) effects: Vec<Effect>,
    /// A task failed under failure strategy `end`: nothing new starts.
    pub(super) failing: bool,
    /// Attempts lost with a previous process, to run again once loaded.
    pub(super) lost: Vec<String>,
    /// Attempts that still run where they were dispatched: nothing to launch.
    pub(super) still_running: Vec<String>,
    /// Task rows created by this batch: (index of the insert among `writes`, task).
    pub(super) inserts: Vec<(usize, String)>,
    pub(super) waits: u64,
    /// Slots not in a final state, and slots dispatched or running: kept as counts so
    /// deciding what to do after each batch does not walk every task.
    pub(super) unfinished: usize,
    pub(super) executing: usize,
    /// Tasks that reached a final state since the last look for ready tasks.
    pub(super) finished_now: Vec<String>,
    /// Look at the whole graph for ready tasks (after loading, resume, recover, rerun).
    pub(super) rescan: bool,
    /// Some slot was put back to `submitted` (a resume).
    pub(super) resubmitted: bool,
    /// Task names by the row id of an attempt, to route updates (ids of earlier attempts
    /// stay, and find a slot whose current attempt is another).
    pub(super) rows: HashMap<i64, String>,
    /// Task definitions by name (a workflow may have thousands).
    pub(super) index: HashMap<String, usize>,
    /// Distributed mode: this master's ownership epoch of the instance, which every
    /// batch is fenced on and every dispatch carries (`None`: the single-node engine).
    pub(super) epoch: Option<i64>,
    /// Tasks waiting in `dispatching` for a node, oldest first. One timer for all of
    /// them (and every batch in which a task ended) tries placement again, not one
    /// timer per task: a fan-out of thousands waits here.
    pub(super) waiting: WaitQueue,
    /// The placement timer is set.
    pub(super) place_timer: bool,
    /// The newest external-job handle of each task in this run, across its attempts
    /// (and reruns): what a restarted attempt may resume from.
    pub(super) last_handles: HashMap<String, String>,
    /// Actions on jobs sent to a node and not answered yet: the worker stays until
    /// each is answered and recorded.
    pub(super) pending_controls: usize,
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

/// How storing a batch ended.
pub(super) enum Committed {
    Stored,
    /// The store kept refusing it: give the instance up (and load it again later).
    Refused,
    /// The instance's ownership moved on: this worker must stop acting on it.
    Fenced,
}

fn is_executing(state: T) -> bool {
    matches!(state, T::Dispatched | T::Running)
}

/// `(task type, worker group) → node` for a task's next attempt, or why no node can
/// take it now.
pub(super) type Placer = Arc<dyn Fn(&str, Option<&str>) -> Result<String, String> + Send + Sync>;

/// The worker that owns one instance: its [`Decider`] plus what carries decisions out.
pub(super) struct InstanceWorker {
    d: Decider,
    master: Master,
    /// The project's secrets as `secret.NAME` params; in memory only.
    secrets: BTreeMap<String, String>,
    /// The project's datasources, passwords open; in memory only. A task gets those its
    /// parameters name.
    datasources: Vec<shoal_model::GrantedDatasource>,
    tenancy: super::tenancy::ProjectTenancy,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    /// Control commands to the nodes that execute this instance's attempts, in order.
    control: mpsc::UnboundedSender<super::control::Control>,
    /// The master's term this worker was loaded in.
    term: u64,
    /// A child run's parent task: told when this run ends (SubWorkflow).
    parent: Option<shoal_protocol::ChildEnd>,
}

impl Decider {
    /// The decisions of a new instance of `definition` (nothing stored yet but the
    /// instance row), every task of it selected.
    #[cfg(test)]
    pub(super) fn fresh(
        id: i64,
        definition: WorkflowDefinition,
        placer: Placer,
    ) -> Result<Self, MasterError> {
        let edges: Vec<(String, Vec<String>)> = definition
            .tasks
            .iter()
            .map(|t| (t.name.clone(), t.deps.clone()))
            .collect();
        let graph = ExecutionGraph::new(&edges, &super::scope(&StartTasks::All))?;
        Ok(Self {
            placer,
            id,
            project: definition
                .project
                .clone()
                .unwrap_or_else(|| DEFAULT_PROJECT.to_owned()),
            definition: Arc::new(definition),
            state: W::Submitted,
            graph,
            slots: HashMap::new(),
            seq: 0,
            startup: BTreeMap::new(),
            schedule_time: 0,
            writes: Vec::new(),
            effects: Vec::new(),
            failing: false,
            lost: Vec::new(),
            still_running: Vec::new(),
            inserts: Vec::new(),
            waits: 0,
            unfinished: 0,
            executing: 0,
            finished_now: Vec::new(),
            rescan: true,
            resubmitted: false,
            rows: HashMap::new(),
            index: HashMap::new(),
            epoch: None,
            waiting: Default::default(),
            place_timer: false,
            last_handles: HashMap::new(),
            pending_controls: 0,
        }
        .counted())
    }
}

impl std::ops::Deref for InstanceWorker {
    type Target = Decider;
    fn deref(&self) -> &Decider {
        &self.d
    }
}

impl std::ops::DerefMut for InstanceWorker {
    fn deref_mut(&mut self) -> &mut Decider {
        &mut self.d
    }
}
impl InstanceWorker {
    /// Rebuild an instance's worker from the store.
    pub(super) async fn load(master: Master, id: i64) -> Result<Self, MasterError> {
        let row = master
            .store()
            .workflow_instance(id)
            .await?
            .ok_or(MasterError::NoSuchInstance(id))?;
        match Self::load_row(master, row, false).await? {
            Some(worker) => Ok(worker),
            None => unreachable!("a load from the stored row always builds a worker"),
        }
    }

    /// The worker of an instance `row` describes as [`Master::start`] just inserted it,
    /// without reading back what it wrote: nothing has happened to it yet unless its
    /// event stream says so, and then (None) it must be loaded from the store.
    pub(super) async fn load_fresh(
        master: Master,
        row: WorkflowInstanceRow,
    ) -> Result<Option<Self>, MasterError> {
        Self::load_row(master, row, true).await
    }

    async fn load_row(
        master: Master,
        row: WorkflowInstanceRow,
        fresh: bool,
    ) -> Result<Option<Self>, MasterError> {
        let store = master.store().clone();
        let id = row.id;
        // Distributed mode: every load is a new ownership term, which fences whatever
        // an earlier term (of this or a stale process) still believes.
        let epoch =
            match master.owner() {
                Some(me) => Some(store.claim_instance(id, me).await?.ok_or_else(|| {
                    MasterError::NotOwner {
                        instance: id,
                        owner: row.owner.clone().unwrap_or_default(),
                    }
                })?),
                None => None,
            };
        let bad = |message: String| MasterError::BadDefinition {
            id: row.definition_id,
            version: row.version,
            message,
        };
        let mut definition: WorkflowDefinition = master
            .definition(row.definition_id, row.version)
            .await?
            .spec
            .as_ref()
            .clone();
        // An operator's pin holds a task type at one version for this workflow, unless
        // the task names a version itself.
        // What the worker needs from the store, read side by side (each is one query;
        // one after another they were most of a fresh run's time to its first task).
        let (pins, rows, seq, handles) = if fresh {
            let (pins, seq) = tokio::try_join!(
                store.plugin_pins(row.definition_id),
                store.last_event_seq(id),
            )?;
            if seq != 0 {
                return Ok(None);
            }
            (pins, Vec::new(), 0, Vec::new())
        } else {
            tokio::try_join!(
                store.plugin_pins(row.definition_id),
                store.task_instances(id),
                store.last_event_seq(id),
                store.task_handles(id),
            )?
        };
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
        let mut graph = ExecutionGraph::new(&edges, &super::scope(&start))?;
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
        let mut latest: HashMap<&str, &TaskInstanceRow> = HashMap::new();
        // Failover attempts of each task since its current run began (attempt 1).
        let mut failovers: HashMap<&str, u32> = HashMap::new();
        for r in &rows {
            latest.insert(r.task_name.as_str(), r);
            let count = failovers.entry(r.task_name.as_str()).or_default();
            if r.attempt <= 1 {
                *count = 0;
            }
            *count += u32::from(r.failover);
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
            if is_executing(state) {
                // The attempt may still run where it was dispatched (only this master
                // went away): if so it reports here from now on and nothing restarts.
                let key = TaskKey {
                    workflow_instance_id: id as u64,
                    task_instance_id: r.id as u64,
                    attempt: r.attempt as u32,
                };
                match master.take_over(&host, key, epoch.unwrap_or(0)).await {
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
                    failovers: failovers.get(name).copied().unwrap_or(0),
                    failover: r.failover,
                    placed_at: None,
                },
            );
        }
        let project = definition
            .project
            .clone()
            .unwrap_or_else(|| DEFAULT_PROJECT.to_owned());
        let (secrets, datasources, tenancy) = tokio::join!(
            master.secret_params(&project),
            master.datasources(&project),
            master.project_tenancy(&project),
        );
        let parent = match row.parent_task_instance_id {
            Some(task) => store
                .task_instance(task)
                .await?
                .map(|t| shoal_protocol::ChildEnd {
                    workflow_instance_id: t.workflow_instance_id as u64,
                    task_name: t.task_name,
                }),
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let control = super::control::Controller::spawn(master.client().clone(), tx.clone());
        let placer: Placer = {
            let client = master.client().clone();
            Arc::new(
                move |task_type, group| match client.place(task_type, group) {
                    Ok(Some(host)) => Ok(host),
                    Ok(None) => Err(format!(
                        "every worker of group `{}` is busy; waiting for a free slot",
                        group.unwrap_or("default")
                    )),
                    Err(e) => Err(format!("{e}; waiting for one")),
                },
            )
        };
        let d = Decider {
            placer,
            id,
            project,
            definition: Arc::new(definition),
            state: parse_workflow_state(&row.state)?,
            graph,
            slots,
            seq,
            startup,
            schedule_time: row.schedule_time,
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
            epoch,
            waiting: Default::default(),
            place_timer: false,
            last_handles: handles.into_iter().collect(),
            pending_controls: 0,
        }
        .counted();
        let term = master.term();
        Ok(Some(Self {
            d,
            master,
            secrets,
            datasources,
            tenancy,
            tx,
            rx,
            control,
            term,
            parent,
        }))
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
        match self.commit().await {
            Committed::Stored => {}
            Committed::Refused => return self.give_up().await,
            Committed::Fenced => return self.fenced(),
        }
        self.master.stored(self.id);
        // A batch being stored while the next one is decided ([`Self::pipelines`]).
        let mut storing: Option<(act::Sealed, act::Storing)> = None;
        loop {
            if storing.is_none() {
                match self.seal() {
                    Sealing::Nothing => {}
                    Sealing::Fenced => return self.fenced(),
                    Sealing::Sealed(sealed, write) if self.pipelines(&sealed) => {
                        self.master.count_batch(true);
                        storing = Some((sealed, write));
                    }
                    Sealing::Sealed(sealed, write) => {
                        self.master.count_batch(false);
                        let outcome = write.await;
                        match self.settle(sealed, outcome) {
                            Committed::Stored => {}
                            Committed::Refused => return self.give_up().await,
                            Committed::Fenced => return self.fenced(),
                        }
                    }
                }
            }
            if let Some((_, write)) = storing.as_mut() {
                // Its effects wait for it; what happens meanwhile is decided into the
                // next batch, stored after it: batches land in order.
                let next = tokio::select! {
                    biased;
                    outcome = write => Next::Stored(outcome),
                    Some(event) = self.rx.recv() => Next::Event(event),
                };
                match next {
                    Next::Stored(outcome) => {
                        let Some((sealed, _)) = storing.take() else {
                            continue;
                        };
                        match self.settle(sealed, outcome) {
                            Committed::Stored => {}
                            Committed::Refused => return self.give_up().await,
                            Committed::Fenced => return self.fenced(),
                        }
                    }
                    Next::Event(event) => self.decide(event),
                }
                continue;
            }
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
            self.decide(first);
        }
    }

    /// Decide on `first` and on everything that queued behind it: one batch, one
    /// commit for all.
    fn decide(&mut self, first: Event) {
        self.on_event(first);
        for _ in 0..4096 {
            match self.rx.try_recv() {
                Ok(event) => self.on_event(event),
                Err(_) => break,
            }
        }
        self.advance();
    }

    /// Whether to decide the next batch while `sealed` is stored, rather than wait for
    /// it. Only when events already wait: otherwise there is nothing to overlap, and
    /// waiting in line is the shorter path. Only when `sealed` creates no task rows:
    /// what is decided next may then name every row by its id. And only when it
    /// launches nothing and acts on no job: those effects read the task's slot when
    /// carried out, and the next batch may have moved it on. Effects still wait for
    /// their own batch, so nothing is acted on before it is stored.
    fn pipelines(&self, sealed: &act::Sealed) -> bool {
        sealed.inserts.is_empty()
            && !self.rx.is_empty()
            && !sealed
                .effects
                .iter()
                .any(|e| matches!(e, Effect::Launch { .. } | Effect::Control { .. }))
    }

    /// Another master owns the instance now (this one was declared dead, or the instance
    /// was loaded again elsewhere): stop at once and touch nothing. Its attempts are the
    /// new owner's, which took them over; stopping them here would undo its work.
    fn fenced(self) {
        tracing::warn!(
            "instance {}: another master owns it now; this one stops acting on it",
            self.id
        );
        self.retire();
    }

    /// Decide on `event`; what needs asking a node first is asked on the side.
    fn on_event(&mut self, event: Event) {
        match event {
            Event::HostsLost { hosts, seen_at } => self.ask_after(&hosts, seen_at),
            event => self.handle(event),
        }
    }

    /// Ask the nodes in `hosts` whether they still run this instance's attempts; each
    /// one they do not hold comes back as [`Event::AttemptLost`]. Asked rather than
    /// assumed: a node that registered again may have kept nothing, but a slow one that
    /// never lost its lease still runs its attempts, and they must not run twice.
    fn ask_after(&self, hosts: &[String], seen_at: std::time::Instant) {
        let epoch = self.epoch.unwrap_or(0) as u64;
        for (name, s) in &self.slots {
            if is_executing(s.state)
                && s.id > 0
                && hosts.contains(&s.host)
                && s.placed_at.is_none_or(|at| at < seen_at)
            {
                let _ = self.control.send(super::control::Control::AskAfter {
                    host: s.host.clone(),
                    key: self.key_of(s),
                    name: name.clone(),
                    epoch,
                });
            }
        }
    }

    /// Finished or paused, and no task attempt still reporting.
    fn settled(&self) -> bool {
        (self.state.is_finished() || self.state == W::Paused)
            && self.executing == 0
            && self.pending_controls == 0
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
        self.master.retire(self.id, &self.tx);
        self.master
            .publish(Progress::Released { instance: self.id });
        // Operations sent between the last look and the retirement go to a fresh
        // worker, which handles queued events before it settles.
        self.rx.close();
        while let Ok(event) = self.rx.try_recv() {
            if let Event::Operation { .. } | Event::Queued { .. } | Event::Control { .. } = event {
                let master = self.master.clone();
                let id = self.id;
                tokio::spawn(async move {
                    let _ = master.send(id, event).await;
                });
            }
        }
    }
}

/// Task names in the order they began to wait, each at most once; asking whether one
/// waits costs a hash lookup, not a scan (thousands wait in a large fan-out).
#[derive(Debug, Default)]
pub(super) struct WaitQueue {
    order: std::collections::VecDeque<String>,
    queued: std::collections::HashSet<String>,
}

impl WaitQueue {
    /// Queue `name` at the back unless it waits already.
    pub(super) fn push(&mut self, name: &str) {
        if self.queued.insert(name.to_owned()) {
            self.order.push_back(name.to_owned());
        }
    }

    pub(super) fn front(&self) -> Option<&String> {
        self.order.front()
    }

    pub(super) fn pop_front(&mut self) -> Option<String> {
        let name = self.order.pop_front()?;
        self.queued.remove(&name);
        Some(name)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
