//! Deciding what runs next: ready tasks begin (skipped, delayed or dispatched), the
//! instance settles when nothing is left, and every transition becomes its writes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use shoal_params::RunContext;
use shoal_store::{Write, now_ms};
use shoal_workflow::{Flag, TaskDefinition};

use super::super::MasterError;
use super::super::params::business_time;
use super::writes::RowUpdate;
use super::{BRANCH_PARAM, Decider, Effect, Event, Slot, is_executing};
use crate::graph::NodeStatus;
use crate::state::{TaskAction, TaskInstanceState as T, WorkflowAction, WorkflowState as W};

/// How soon a task waiting in `dispatching` tries placement again.
const PLACE_AGAIN: Duration = Duration::from_millis(200);

/// Most tasks one batch begins. A wide fan-out's first tasks then start once the first
/// slice of its rows is stored, running while the next slice is decided and stored,
/// rather than after every row of it (10,000 rows: ~0.1 s on SQLite, ~0.25 s on
/// PostgreSQL here, with nothing running meanwhile).
pub(super) const BEGIN_PER_BATCH: usize = 1024;

/// What [`Decider::place_or_wait`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placed {
    /// Placed, and moved on to `dispatched`.
    Yes,
    /// No node can take it now: it waits in `dispatching`.
    Waiting,
    /// The transition was refused (the task is not where it could move on from).
    Refused,
}

impl Decider {
    // ---- deciding what runs --------------------------------------------------------

    /// Start what may start, and settle the instance when nothing is left.
    pub(super) fn advance(&mut self) {
        match self.state {
            W::Running => {
                // Slots freed by this batch's ends go to the tasks that waited longest.
                if !self.waiting.is_empty() {
                    self.place_waiting();
                }
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
                    let mut begun = 0;
                    'more: loop {
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
                            if self.slots.contains_key(&name) {
                                continue;
                            }
                            if begun == BEGIN_PER_BATCH {
                                // The rest once this batch is stored (ready stays
                                // ready: a later look at the whole graph finds them).
                                self.effects.push(Effect::Later(Event::BeginMore));
                                break 'more;
                            }
                            self.begin(&name);
                            begun += 1;
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
                for name in self.names_in(&[T::Submitted, T::Delayed, T::Dispatching, T::Retrying])
                {
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
    pub(super) fn kill_all(&mut self, why: &str) {
        let mut names: Vec<String> = self.slots.keys().cloned().collect();
        names.sort();
        for name in names {
            let slot = self.slots.get_mut(&name).expect("listed");
            if is_executing(slot.state) {
                let id = slot.id;
                self.effects.push(Effect::Kill { name, id });
            } else if !slot.state.is_finished() {
                self.end(&name, TaskAction::Kill, why);
            }
        }
    }

    /// A ready task's first step: skipped when forbidden, delayed when it has a
    /// delay, otherwise dispatched.
    pub(super) fn begin(&mut self, name: &str) {
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
            let placed = self.place_or_wait(name, TaskAction::Dispatch);
            let started = (placed == Placed::Yes).then(now_ms);
            self.insert_row(name, started);
            if placed == Placed::Yes {
                self.launch_after_commit(name);
            }
        }
    }

    pub(super) fn skip(&mut self, name: &str, why: &str) {
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
    pub(super) fn dispatch(&mut self, name: &str) {
        if self.slots[name].ran {
            // A resumed retry: its earlier attempt failed and the next one gets a row.
            self.save_state(name, T::Failed);
            let slot = self.slots.get_mut(name).expect("present");
            slot.attempt += 1;
            let placed = self.place_or_wait(name, TaskAction::Dispatch);
            if placed != Placed::Refused {
                self.insert_row(name, (placed == Placed::Yes).then(now_ms));
            }
            if placed == Placed::Yes {
                self.launch_after_commit(name);
            }
            return;
        }
        match self.place_or_wait(name, TaskAction::Dispatch) {
            Placed::Yes => self.dispatched(name),
            Placed::Waiting => self.save(name, RowUpdate::default()),
            Placed::Refused => {}
        }
    }

    /// The slot was just placed: store its node and start time, then launch it (or
    /// follow its job again, when it has a handle).
    pub(super) fn dispatched(&mut self, name: &str) {
        let host = self.slots[name].host.clone();
        self.save(
            name,
            RowUpdate {
                started_at: Some(now_ms()),
                host: Some(host),
                ..Default::default()
            },
        );
        match self.slots[name].handle.clone() {
            Some(handle) => self.effects.push(Effect::Launch {
                name: name.to_owned(),
                attach_to: Some(handle),
            }),
            None => self.launch_after_commit(name),
        }
    }

    /// Choose the node for the task's attempt and move it on with `action` (to
    /// `dispatched`); when no node can take it now, it waits in `dispatching` instead
    /// (DolphinScheduler's tasks wait for a worker of their group the same way) and
    /// placement is tried again shortly.
    pub(super) fn place_or_wait(&mut self, name: &str, action: TaskAction) -> Placed {
        // Behind others already waiting: wait too, in order, without asking.
        let placed = if self.waiting.is_empty() {
            self.try_place(name)
        } else {
            Err(String::new())
        };
        match placed {
            Ok(()) => {
                if self.task(name, action, "") {
                    Placed::Yes
                } else {
                    Placed::Refused
                }
            }
            Err(why) => {
                if let Some(slot) = self.slots.get_mut(name) {
                    // Not the last attempt's node: none, until one is chosen.
                    slot.host.clear();
                }
                let waiting = self.slots.get(name).map(|s| s.state) == Some(T::Dispatching);
                // Only the first to wait says why: thousands may follow it.
                let why = if self.waiting.is_empty() {
                    why
                } else {
                    String::new()
                };
                if !waiting && !self.task(name, TaskAction::Wait, &why) {
                    return Placed::Refused;
                }
                self.retry_placement(name);
                Placed::Waiting
            }
        }
    }

    /// Queue `name` for placement once a node has room.
    pub(super) fn retry_placement(&mut self, name: &str) {
        self.waiting.push(name);
        self.arm_place_timer();
    }

    fn arm_place_timer(&mut self) {
        if !self.place_timer && !self.waiting.is_empty() {
            self.place_timer = true;
            self.effects.push(Effect::Timer {
                after: PLACE_AGAIN,
                event: Event::PlaceDue,
            });
        }
    }

    /// Place waiting tasks, oldest first, until one finds no node.
    pub(super) fn place_waiting(&mut self) {
        if self.state != W::Running || self.failing {
            return;
        }
        while let Some(name) = self.waiting.front().cloned() {
            if self.slots.get(&name).map(|s| s.state) != Some(T::Dispatching) {
                // Paused, killed or placed meanwhile.
                self.waiting.pop_front();
                continue;
            }
            if self.try_place(&name).is_err() {
                break;
            }
            self.waiting.pop_front();
            if self.task(&name, TaskAction::Dispatch, "") {
                self.dispatched(&name);
            }
        }
        self.arm_place_timer();
    }

    /// The retry interval is over: the failed attempt's row says so and a new attempt
    /// starts.
    pub(super) fn next_attempt(&mut self, name: &str) {
        self.next_attempt_as(name, false);
    }

    /// The task's next attempt; `failover` when it replaces one its node lost.
    pub(super) fn next_attempt_as(&mut self, name: &str, failover: bool) {
        self.save_state(name, T::Failed);
        let placed = self.place_or_wait(name, TaskAction::RetryDue);
        if placed == Placed::Refused {
            return;
        }
        if let Some(slot) = self.slots.get_mut(name) {
            slot.attempt += 1;
            slot.failover = failover;
            slot.failovers += u32::from(failover);
        }
        self.insert_row(name, (placed == Placed::Yes).then(now_ms));
        if placed == Placed::Yes {
            self.launch_after_commit(name);
        }
    }

    /// Choose the node for the task's next attempt; it is stored with the attempt's row
    /// in this batch, before anything is sent to that node. Err (why) when no node can
    /// take it now.
    pub(super) fn try_place(&mut self, name: &str) -> Result<(), String> {
        let (group, task_type) = match self.task_def(name) {
            Some(t) => (Some(t.worker_group.clone()), t.task_type.clone()),
            None => (None, String::new()),
        };
        let host = (self.placer)(&task_type, group.as_deref())?;
        if let Some(slot) = self.slots.get_mut(name) {
            slot.host = host;
            slot.placed_at = Some(std::time::Instant::now());
        }
        Ok(())
    }

    pub(super) fn launch_after_commit(&mut self, name: &str) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.ran = true;
            slot.handle = None;
        }
        self.effects.push(Effect::Launch {
            name: name.to_owned(),
            attach_to: None,
        });
    }

    pub(super) fn new_slot(&mut self, task: &TaskDefinition, attempt: u32) {
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
                failovers: 0,
                failover: false,
                placed_at: None,
            },
        );
    }

    // ---- transitions and writes ----------------------------------------------------

    pub(super) fn workflow(&mut self, action: WorkflowAction) -> Result<(), MasterError> {
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
            &json!({"from": from, "to": to}),
        );
        self.effects.push(Effect::Workflow(to));
        Ok(())
    }

    /// Apply a task transition; false (and nothing recorded) when it is not allowed.
    pub(super) fn task(&mut self, name: &str, action: TaskAction, message: &str) -> bool {
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
            &TaskTransition {
                attempt,
                from,
                message,
                task: name,
                task_instance_id: id,
                to,
            },
        );
        self.effects.push(Effect::Task {
            name: name.to_owned(),
            id,
            attempt,
            state: to,
            message: message.to_owned(),
        });
        true
    }

    pub(super) fn append(&mut self, kind: &str, payload: &impl serde::Serialize) {
        self.seq += 1;
        let payload = serde_json::to_string(payload).unwrap_or_else(|e| {
            // Only a map with non-string keys fails to print; no payload here has one.
            tracing::error!("instance {}: event `{kind}` not printable: {e}", self.id);
            "{}".to_owned()
        });
        self.writes.push(Write::AppendEvent {
            workflow_instance_id: self.id,
            seq: self.seq,
            kind: kind.to_owned(),
            payload,
        });
    }

    /// End the slot's attempt with `action`, recording why and when; false when the
    /// transition is not allowed.
    pub(super) fn end(&mut self, name: &str, action: TaskAction, why: &str) -> bool {
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
    pub(super) fn save(&mut self, name: &str, row: RowUpdate) {
        let slot = &self.slots[name];
        let write = row.into_write(slot.id, slot.state);
        self.writes.push(write);
    }

    /// Store a state for the slot's current row other than the slot's own (the row of
    /// an attempt being replaced).
    pub(super) fn save_state(&mut self, name: &str, state: T) {
        let id = self.slots[name].id;
        self.writes.push(RowUpdate::default().into_write(id, state));
    }

    pub(super) fn insert_row(&mut self, name: &str, started_at: Option<i64>) {
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
            failover: slot.failover,
        });
        self.inserts.push((self.writes.len() - 1, name.to_owned()));
    }

    // ---- what a task attempt sees of its run ------------------------------------------

    pub(super) fn run_context(&self, name: &str, task_instance_id: i64) -> RunContext {
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
    pub(super) fn upstream_pool(&self, name: &str) -> BTreeMap<String, String> {
        let mut pool = BTreeMap::new();
        for up in self.graph.ancestors(name) {
            if let Some(slot) = self.slots.get(up)
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
    pub(super) fn upstream_states(&self, name: &str) -> Vec<(String, String)> {
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
}

/// A task transition's event, printed straight from its fields (no `serde_json::Value` in
/// between). Fields in alphabetical order: the stored text stays what `json!` printed.
#[derive(serde::Serialize)]
struct TaskTransition<'a> {
    attempt: u32,
    from: T,
    message: &'a str,
    task: &'a str,
    task_instance_id: i64,
    to: T,
}
