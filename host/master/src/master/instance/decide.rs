//! An instance's decisions on events: task updates, timers and operations become
//! named transitions, the writes that record them and the effects to carry out.

use std::time::Duration;

use serde_json::json;
use shoal_model::TaskState;
use shoal_protocol::{TaskKey, TaskReport, TaskUpdate};
use shoal_store::{Write, now_ms};
use shoal_workflow::{FailureStrategy, TaskDefinition};

use super::super::params::out_params;
use super::super::{MasterError, Operation};
use super::writes::RowUpdate;
use super::{BRANCH_PARAM, ControlAnswer, Decider, Effect, Event, Slot, is_executing};
use crate::state::{TaskAction, TaskInstanceState as T, WorkflowAction, WorkflowState as W};

impl Decider {
    pub(super) fn task_def(&self, name: &str) -> Option<&TaskDefinition> {
        self.index.get(name).map(|&i| &self.definition.tasks[i])
    }

    pub(super) fn counted(mut self) -> Self {
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
    pub(super) fn count(&mut self, from: Option<T>, to: Option<T>) {
        let unfinished = |s: Option<T>| s.is_some_and(|s| !s.is_finished()) as usize;
        let executing = |s: Option<T>| s.is_some_and(is_executing) as usize;
        self.unfinished = self.unfinished + unfinished(to) - unfinished(from);
        self.executing = self.executing + executing(to) - executing(from);
    }

    pub(super) fn remove_slot(&mut self, name: &str) {
        if let Some(slot) = self.slots.remove(name) {
            self.count(Some(slot.state), None);
        }
    }

    /// Pick up where the stored state leaves off.
    pub(super) fn resume_after_load(&mut self) {
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
            let state = slot.state;
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
                T::Dispatching => self.retry_placement(&name),
                // Not held by its node any more, but its job has a handle: followed
                // again, on a node chosen now (the old one may be gone for good).
                T::Dispatched | T::Running
                    if !self.lost.contains(&name) && !self.still_running.contains(&name) =>
                {
                    self.fail_over(
                        &name,
                        "the engine stopped while this attempt ran (its master or worker was lost)",
                    );
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
            self.fail_over(
                &name,
                "the engine stopped while this attempt ran (its master or worker was lost)",
            );
        }
    }

    /// Start a wait for `slot` (delay or retry interval); `event` builds the timer's
    /// event from the wait's number.
    pub(super) fn start_wait(
        &mut self,
        name: &str,
        after: Duration,
        event: impl FnOnce(u64) -> Event,
    ) {
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

    pub(super) fn handle(&mut self, event: Event) {
        match event {
            Event::Update { key, update, ack } => {
                self.update(key, update);
                if let Some(ack) = ack {
                    self.effects.push(Effect::Stored(ack));
                }
            }
            Event::LaunchFailed {
                name,
                id,
                message,
                unreachable,
            } => {
                if self.is_current(&name, id) && is_executing(self.slots[&name].state) {
                    if unreachable {
                        // Its node is gone or cut off: not the task's failure.
                        self.fail_over(&name, &message);
                    } else {
                        self.failed(&name, message, false, RowUpdate::default());
                    }
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
            Event::PlaceDue => {
                self.place_timer = false;
                self.place_waiting();
            }
            Event::BeginMore => self.rescan = true,
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
                    self.append("task-timeout-warning", &payload);
                    let attempt = self.slots[&name].attempt;
                    self.effects.push(Effect::Task {
                        name: name.clone(),
                        id,
                        attempt,
                        state,
                        message: "running longer than its timeout (strategy: warn)".into(),
                    });
                    self.effects.push(Effect::TimeoutWarning { name, id });
                }
            }
            Event::Control {
                task,
                action,
                args,
                answer,
            } => self.control(task, action, args, answer),
            Event::ControlDone {
                name,
                id,
                action,
                outcome,
                answer,
            } => self.control_done(name, id, action, *outcome, answer),
            Event::Queued {
                op: Operation::Control { task, action, args },
                command_id,
                reply,
            } => {
                let op = format!("{action} on `{task}`");
                let answer = ControlAnswer::Queued {
                    command_id,
                    op,
                    reply,
                };
                self.control(task, action, args, answer);
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
                    &json!({"command_id": command_id, "op": op.to_string(), "accepted": result.is_ok(), "message": message}),
                );
                self.effects.push(Effect::Reply(reply, result));
            }
            Event::AttemptLost { name, id } => {
                if self.is_current(&name, id) && is_executing(self.slots[&name].state) {
                    let host = self.slots[&name].host.clone();
                    self.fail_over(&name, &format!("its node {host} was lost"));
                }
            }
            // Asked after by the instance worker, which needs the nodes' answers first.
            Event::HostsLost { .. } => {}
        }
    }

    /// The node running the task's current attempt lost it. An external job (a stored
    /// handle) is followed again from its handle on another node, never submitted
    /// again; any other attempt runs again as a failover attempt, which does not count
    /// against the task's retries.
    pub(super) fn fail_over(&mut self, name: &str, why: &str) {
        let Some(slot) = self.slots.get(name) else {
            return;
        };
        if let Some(handle) = slot.handle.clone() {
            match self.try_place(name) {
                Ok(()) => {
                    let host = self.slots[name].host.clone();
                    self.save(
                        name,
                        RowUpdate {
                            host: Some(host.clone()),
                            message: Some(format!("{why}; following its job again on {host}")),
                            ..Default::default()
                        },
                    );
                    self.effects.push(Effect::Launch {
                        name: name.to_owned(),
                        attach_to: Some(handle),
                    });
                }
                // No node now: it waits in `dispatching`, handle kept, and is followed
                // again once placed.
                Err(wait) => {
                    if self.task(name, TaskAction::Wait, &format!("{why}; {wait}")) {
                        self.save(name, RowUpdate::default());
                        self.retry_placement(name);
                    }
                }
            }
            return;
        }
        if self.state != W::Running {
            self.end(name, TaskAction::Kill, why);
            return;
        }
        let message = format!("{why}; it runs again as a failover attempt");
        if self.end(name, TaskAction::Fail { retries_left: true }, &message) {
            self.next_attempt_as(name, true);
        }
    }

    /// An update from the node executing an attempt. One for an attempt that is not
    /// the task's current one, or a repeat of one already applied, changes nothing.
    pub(super) fn update(&mut self, key: TaskKey, update: TaskUpdate) {
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
                self.last_handles.insert(name.clone(), handle.clone());
                self.save(
                    &name,
                    RowUpdate {
                        handle: Some(handle),
                        ..Default::default()
                    },
                );
            }
            TaskUpdate::LogPosition { .. } => {}
            TaskUpdate::Log {
                offset,
                next_offset,
                text,
                last,
            } => self.writes.push(Write::AppendTaskLog {
                task_instance_id: id,
                start_offset: offset as i64,
                next_offset: next_offset as i64,
                text,
                last,
            }),
            TaskUpdate::Ended { report } => self.ended(&name, *report),
        }
    }

    pub(super) fn key_of(&self, slot: &Slot) -> TaskKey {
        TaskKey {
            workflow_instance_id: self.id as u64,
            task_instance_id: slot.id as u64,
            attempt: slot.attempt,
        }
    }

    /// Whether a timer for wait number `wait` still means something: the task is still
    /// in that wait and the instance may start tasks.
    pub(super) fn wait_is_over(&self, name: &str, state: T, wait: u64) -> bool {
        self.slots
            .get(name)
            .is_some_and(|s| s.state == state && s.wait == wait)
            && self.state == W::Running
            && !self.failing
    }

    /// The plugin began executing (after waiting for a container slot, maybe).
    pub(super) fn started(&mut self, name: &str, row: RowUpdate) {
        if self.slots[name].state == T::Dispatched && self.task(name, TaskAction::Start, "") {
            self.save(name, row);
        }
    }

    pub(super) fn is_current(&self, name: &str, id: i64) -> bool {
        self.slots.get(name).is_some_and(|s| s.id == id)
    }

    pub(super) fn ended(&mut self, name: &str, report: TaskReport) {
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

    pub(super) fn succeeded(&mut self, name: &str, report: &TaskReport, mut row: RowUpdate) {
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
    pub(super) fn take_branch(&mut self, name: &str, branch: &str) {
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

    pub(super) fn failed(
        &mut self,
        name: &str,
        message: String,
        may_retry: bool,
        mut row: RowUpdate,
    ) {
        let Some(task) = self.task_def(name) else {
            return;
        };
        let (retries, interval, strategy) = (
            task.fail_retry_times,
            task.retry_interval_ms,
            self.definition.failure_strategy,
        );
        // Failover attempts were not the task's doing: they use up none of its retries.
        let slot = &self.slots[name];
        let attempt = slot.attempt.saturating_sub(slot.failovers);
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
    pub(super) fn absorbed(&self, name: &str) -> bool {
        self.graph
            .downstream(name)
            .iter()
            .any(|d| self.graph.is_selected(d) && self.graph.is_all_done(d))
    }

    // ---- operations --------------------------------------------------------------

    pub(super) fn operate(&mut self, op: Operation) -> Result<(), MasterError> {
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
                    let id = slot.id;
                    self.effects.push(Effect::Kill { name: task, id });
                } else {
                    self.end(&task, TaskAction::Kill, "killed by an operator");
                }
            }
            // Answered once its node answers: `Master::control` sends it as
            // `Event::Control`, the command queue as a queued operation.
            Operation::Control { action, .. } => {
                return Err(MasterError::Refused(format!(
                    "`{action}` is an action on a task's job: ask for it through Master::control"
                )));
            }
        }
        Ok(())
    }

    /// An action on the job of `task`'s current attempt. Recorded on the event stream
    /// when asked for and when answered; the node is asked once the request is stored.
    /// `cancel` on a running attempt is a kill (which cancels its job); on an ended one
    /// (a stream job left running) it cancels the job through the plugin.
    pub(super) fn control(
        &mut self,
        task: String,
        action: String,
        args: serde_json::Value,
        answer: ControlAnswer,
    ) {
        if let Err(e) = self.known(&task) {
            return self.answer_control(answer, Err(e));
        }
        let slot = &self.slots[&task];
        let executing = is_executing(slot.state);
        let Some(handle) = slot.handle.clone() else {
            let e = MasterError::Refused(format!(
                "task `{task}` ({}) has no external job to act on",
                slot.state
            ));
            return self.answer_control(answer, Err(e));
        };
        if action == shoal_protocol::CANCEL_ACTION && executing {
            let result = self
                .operate(Operation::Kill { task })
                .map(|()| "killed; its job is cancelled".to_owned());
            return self.answer_control(answer, result);
        }
        let (id, attempt) = (slot.id, slot.attempt);
        let host = executing.then(|| slot.host.clone());
        self.append(
            "task-action",
            &json!({"task": task, "task_instance_id": id, "attempt": attempt, "action": action, "args": args, "phase": "requested"}),
        );
        self.pending_controls += 1;
        self.effects.push(Effect::Control {
            name: task,
            host,
            handle,
            action,
            args,
            answer,
        });
    }

    /// The node's answer to an action: recorded, the new handle stored, and a running
    /// attempt whose job the action ended (a stop with a savepoint) ends as killed.
    pub(super) fn control_done(
        &mut self,
        name: String,
        id: i64,
        action: String,
        outcome: Result<shoal_protocol::ControlDone, String>,
        answer: ControlAnswer,
    ) {
        self.pending_controls = self.pending_controls.saturating_sub(1);
        let attempt = self.slots.get(&name).map(|s| s.attempt).unwrap_or(0);
        let (ok, message) = match &outcome {
            Ok(done) => (true, done.message.clone()),
            Err(why) => (false, why.clone()),
        };
        self.append(
            "task-action",
            &json!({"task": name, "task_instance_id": id, "attempt": attempt, "action": action, "phase": "done", "ok": ok, "message": message}),
        );
        let done = match outcome {
            Ok(done) => done,
            Err(why) => {
                let e = MasterError::Refused(format!("{action} on task `{name}`: {why}"));
                return self.answer_control(answer, Err(e));
            }
        };
        if let Some(handle) = done.new_handle.clone() {
            self.last_handles.insert(name.clone(), handle.clone());
            // Stored in the attempt's row while it is still the task's current one (a
            // retry since has a row of its own; the run's newest handle is kept above).
            if let Some(slot) = self.slots.get_mut(&name).filter(|s| s.id == id) {
                slot.handle = Some(handle.clone());
                self.save(
                    &name,
                    RowUpdate {
                        handle: Some(handle),
                        ..Default::default()
                    },
                );
            }
        }
        if done.job_ended && self.is_current(&name, id) && is_executing(self.slots[&name].state) {
            let why = format!("stopped by an operator ({action}): {}", done.message);
            self.effects.push(Effect::Kill {
                name: name.clone(),
                id,
            });
            self.end(&name, TaskAction::Kill, &why);
        }
        self.answer_control(answer, Ok(done.message));
    }

    fn answer_control(&mut self, answer: ControlAnswer, result: Result<String, MasterError>) {
        if let ControlAnswer::Queued { command_id, op, .. } = &answer {
            let message = match &result {
                Ok(m) => m.clone(),
                Err(e) => e.to_string(),
            };
            self.append(
                "command",
                &json!({"command_id": command_id, "op": op, "accepted": result.is_ok(), "message": message}),
            );
        }
        self.effects.push(Effect::ControlAnswer(answer, result));
    }

    pub(super) fn known(&self, task: &str) -> Result<(), MasterError> {
        if self.slots.contains_key(task) {
            Ok(())
        } else {
            Err(MasterError::NoSuchTask {
                instance: self.id,
                task: task.to_owned(),
            })
        }
    }

    pub(super) fn names_in(&self, states: &[T]) -> Vec<String> {
        let mut names: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| states.contains(&s.state))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }
}
