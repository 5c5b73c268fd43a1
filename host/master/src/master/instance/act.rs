//! Carrying a batch out: seal it (its store write, one group commit, as a future the
//! worker may hold while it decides the next batch), settle it once stored (act on its
//! effects), and build the requests that dispatch task attempts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use shoal_protocol::{TaskIdentity, TaskRequest};
use shoal_workflow::TimeoutStrategy;

use super::super::params::task_params;
use super::super::{MasterError, Progress};
use super::writes::coalesce;
use super::{Committed, Effect, Event, InstanceWorker};
use crate::state::WorkflowState as W;
use shoal_store::{StoreError, Write};

impl InstanceWorker {
    /// Store the batch, then act on it. [`Committed::Refused`] when the store keeps
    /// refusing it: the worker stops, leaving the instance as last stored for a later
    /// recovery; [`Committed::Fenced`] when another master owns the instance now.
    pub(super) async fn commit(&mut self) -> Committed {
        match self.seal() {
            Sealing::Nothing => Committed::Stored,
            Sealing::Fenced => Committed::Fenced,
            Sealing::Sealed(sealed, storing) => {
                self.master.count_batch(false);
                let outcome = storing.await;
                self.settle(sealed, outcome)
            }
        }
    }

    /// Take the batch decided so far out of the decider: the future that stores its
    /// writes (retrying as [`commit`](Self::commit) says), and what to do once it is
    /// stored. The future owns everything it needs, so the worker may go on deciding
    /// the next batch while it runs ([`Self::run`]'s pipelining).
    pub(super) fn seal(&mut self) -> Sealing {
        if self.term != self.master.term() {
            return Sealing::Fenced;
        }
        if self.writes.is_empty() && self.effects.is_empty() {
            return Sealing::Nothing;
        }
        let mut writes = coalesce(std::mem::take(&mut self.writes), &mut self.inserts);
        if let (Some(owner), Some(epoch)) = (self.master.owner(), self.epoch) {
            // Inside the batch's transaction: a batch of a term that ended stores nothing.
            writes.push(Write::Fence {
                workflow_instance_id: self.id,
                owner: owner.to_owned(),
                owner_gen: epoch,
            });
        }
        let sealed = Sealed {
            inserts: std::mem::take(&mut self.inserts),
            effects: std::mem::take(&mut self.effects),
        };
        let store = self.master.store().clone();
        let limit = self.master.inner.config.store_write_timeout;
        let id = self.id;
        let storing = async move {
            let mut tries = 0;
            loop {
                let attempt = tokio::time::timeout(limit, store.write(writes.clone()));
                let (error, again) = match attempt.await {
                    Ok(Ok(ids)) => return Ok(ids),
                    Ok(Err(StoreError::Fenced { .. })) => return Err(Refusal::Fenced),
                    Ok(Err(e)) => (e.to_string(), true),
                    // No answer: the batch may still commit later, and sending it again
                    // could store it twice. Recovery reads whatever did land.
                    Err(_) => (format!("the store did not answer within {limit:?}"), false),
                };
                tries += 1;
                if tries >= 5 || !again {
                    tracing::error!(
                        "instance {id}: storing its state failed {tries} time(s), last: {error}; its tasks are stopped and it stays as last stored until the engine recovers it",
                    );
                    return Err(Refusal::Refused(error));
                }
                tokio::time::sleep(Duration::from_millis(50 << tries)).await;
            }
        };
        Sealing::Sealed(sealed, Box::pin(storing))
    }

    /// Act on a sealed batch once its store write ended: its effects when it was stored;
    /// when it was not, everyone waiting on it (and on anything decided after it, which
    /// rested on it) is answered with the error.
    pub(super) fn settle(
        &mut self,
        sealed: Sealed,
        outcome: Result<Vec<Option<i64>>, Refusal>,
    ) -> Committed {
        let ids = match outcome {
            Ok(ids) => ids,
            Err(refusal) => {
                let (error, committed): (Box<dyn Fn() -> MasterError>, _) = match refusal {
                    Refusal::Fenced => {
                        let id = self.id;
                        (
                            Box::new(move || MasterError::NotOwner {
                                instance: id,
                                owner: "another master".into(),
                            }),
                            Committed::Fenced,
                        )
                    }
                    Refusal::Refused(e) => (
                        Box::new(move || MasterError::NotStored(e.clone())),
                        Committed::Refused,
                    ),
                };
                refuse_waiting(sealed.effects, &error);
                refuse_waiting(std::mem::take(&mut self.effects), &error);
                return committed;
            }
        };
        for (index, name) in sealed.inserts {
            if let (Some(slot), Some(Some(id))) = (self.slots.get_mut(&name), ids.get(index)) {
                slot.id = *id;
                self.rows.insert(*id, name);
            }
        }
        for effect in sealed.effects {
            match effect {
                Effect::Launch { name, attach_to } => self.launch(&name, attach_to),
                Effect::Kill { name, id } => {
                    // Only the attempt decided on: a later batch may have replaced it
                    // (pipelining), and a replaced attempt has ended or was lost.
                    if let Some(slot) = self
                        .slots
                        .get(&name)
                        .filter(|s| s.id > 0 && (id == 0 || s.id == id))
                    {
                        let key = self.key_of(slot);
                        let _ = self.control.send(super::super::control::Control::Kill {
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
                Effect::Workflow(state) => {
                    self.master.publish(Progress::Workflow {
                        instance: self.id,
                        state,
                    });
                    if state.is_finished()
                        && let Some(parent) = &self.parent
                    {
                        self.master.child_ended(parent.clone());
                    }
                }
                Effect::Task {
                    name,
                    id,
                    attempt,
                    state,
                    message,
                } => {
                    // Row 0: created by this batch, its id known only now.
                    let id = match id {
                        0 => self.slots.get(&name).map_or(0, |s| s.id),
                        id => id,
                    };
                    self.master.publish(Progress::Task {
                        instance: self.id,
                        task: name,
                        task_instance_id: id,
                        attempt,
                        state,
                        message,
                    });
                }
                Effect::TimeoutWarning { name, id } => {
                    self.master.publish(Progress::TimeoutWarning {
                        instance: self.id,
                        task: name,
                        task_instance_id: id,
                    });
                }
                Effect::Reply(reply, result) => {
                    let _ = reply.send(result);
                }
                Effect::Stored(stored) => {
                    let _ = stored.send(());
                }
                Effect::Control {
                    name,
                    host,
                    handle,
                    action,
                    args,
                    answer,
                } => self.send_control(name, host, handle, action, args, answer),
                Effect::ControlAnswer(answer, result) => answer.send(result),
                Effect::Later(event) => {
                    let _ = self.tx.send(event);
                }
            }
        }
        Committed::Stored
    }

    // ---- launching -----------------------------------------------------------------

    pub(super) fn launch(&mut self, name: &str, attach_to: Option<String>) {
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
        let mut request = match self.request_for(&task, id, attempt, &task_type) {
            Ok(r) => r,
            Err(message) => {
                let _ = self.tx.send(Event::LaunchFailed {
                    name: name.to_owned(),
                    id,
                    message,
                    unreachable: false,
                });
                return;
            }
        };
        let timeout = task.timeout_ms.map(Duration::from_millis);
        request.timeout = match task.timeout_strategy {
            TimeoutStrategy::Warn => None,
            TimeoutStrategy::Fail | TimeoutStrategy::Both => timeout,
        };
        request.attach_to = attach_to;
        request.echo_log = self.master.inner.config.echo_task_logs;
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
        request.host = slot_host;
        let _ = self
            .control
            .send(super::super::control::Control::Dispatch(Box::new(request)));
    }

    /// Ask a node to carry out an action on the job of `name`'s current attempt, on the
    /// side (a savepoint may take minutes; the instance goes on meanwhile). The answer
    /// comes back as [`Event::ControlDone`].
    fn send_control(
        &mut self,
        name: String,
        host: Option<String>,
        handle: String,
        action: String,
        args: serde_json::Value,
        answer: super::ControlAnswer,
    ) {
        let tx = self.tx.clone();
        let (Some(task), Some(slot)) = (self.task_def(&name).cloned(), self.slots.get(&name))
        else {
            let outcome = Box::new(Err(format!("task `{name}` is not in this run any more")));
            let _ = tx.send(Event::ControlDone {
                name,
                id: 0,
                action,
                outcome,
                answer,
            });
            return;
        };
        let (id, attempt, task_type) = (slot.id, slot.attempt, slot.task_type.clone());
        let request = self.request_for(&task, id, attempt, &task_type);
        // A running attempt's own node (it follows the job); an ended one's job may be
        // acted on by any node that can run its type.
        let host = match host {
            Some(h) => Ok(h),
            None => (self.placer)(&task_type, Some(&task.worker_group)),
        };
        let client = self.master.client().clone();
        tokio::spawn(async move {
            let outcome = match (request, host) {
                (Err(why), _) | (_, Err(why)) => Err(why),
                (Ok(mut request), Ok(host)) => {
                    request.attach_to = Some(handle);
                    request.host = host.clone();
                    let control = shoal_protocol::ControlRequest {
                        task: request,
                        action: action.clone(),
                        args,
                    };
                    match client.control(&host, control).await {
                        Ok(outcome) => outcome,
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            let _ = tx.send(Event::ControlDone {
                name,
                id,
                action,
                outcome: Box::new(outcome),
                answer,
            });
        });
    }

    /// The request for attempt `attempt` (row `id`) of `task`: parameters resolved as
    /// at dispatch, with what the task may reach (datasources, files, tenancy). `Err`
    /// says why it cannot run.
    pub(super) fn request_for(
        &self,
        task: &shoal_workflow::TaskDefinition,
        id: i64,
        attempt: u32,
        task_type: &str,
    ) -> Result<TaskRequest, String> {
        let name = task.name.as_str();
        let ctx = self.run_context(name, id);
        let upstream = self.upstream_pool(name);
        let params = task_params(
            &self.definition,
            task,
            &self.startup,
            &upstream,
            &self.secrets,
            &ctx,
        )
        .map_err(|e| format!("cannot resolve its parameters: {e}"))?;
        let mut request = TaskRequest::new(task_type, params);
        request.identity = TaskIdentity {
            workflow_instance_id: self.id as u64,
            task_instance_id: id as u64,
            task_name: name.to_owned(),
            attempt,
        };
        request.plugin_version = task.plugin_version.clone();
        request.redact = self.secrets.values().cloned().collect();
        let out = |p: &&shoal_workflow::LocalParam| p.direct == shoal_workflow::ParamDirection::Out;
        request.declared_out = task
            .local_params
            .iter()
            .filter(out)
            .map(|p| (p.prop.clone(), p.kind.clone()))
            .collect();
        request.declared_out_values = task
            .local_params
            .iter()
            .filter(out)
            .map(|p| (p.prop.clone(), p.value.clone()))
            .collect();
        request.previous_handle = self.last_handles.get(name).cloned();
        // DolphinScheduler's FILE parameters: an OUT one names a file the task leaves in
        // its work dir; an IN one names the `<task>.<param>` an upstream FILE parameter
        // became, and gets that file under its own name.
        let is_file = |p: &&shoal_workflow::LocalParam| p.kind.eq_ignore_ascii_case("FILE");
        request.out_files = task
            .local_params
            .iter()
            .filter(is_file)
            .filter(out)
            .map(|p| (p.prop.clone(), p.value.clone()))
            .collect();
        for p in task.local_params.iter().filter(is_file) {
            if p.direct != shoal_workflow::ParamDirection::In {
                continue;
            }
            match upstream.get(p.value.trim()) {
                Some(value) => request.in_files.push((p.prop.clone(), value.clone())),
                None => {
                    return Err(format!(
                        "IN FILE parameter `{}`: no upstream task passed a file as `{}` (an upstream OUT FILE parameter `P` of task `T` is `T.P`)",
                        p.prop, p.value
                    ));
                }
            }
        }
        let named = shoal_model::datasource::named_datasources(&request.params);
        request.datasources = self
            .datasources
            .iter()
            .filter(|d| named.contains(&d.name))
            .cloned()
            .collect();
        request.redact.extend(
            request
                .datasources
                .iter()
                .map(|d| d.password.clone())
                .filter(|p| !p.is_empty()),
        );
        request.project = Some(self.project.clone());
        request.tenant.clone_from(&self.tenancy.tenant);
        request.process_allowed = self.tenancy.process_allowed;
        request.priority = task.priority as u8;
        request.task_group = task.task_group.clone();
        request.upstream_states = self.upstream_states(name);
        request.schedule_time_ms = self.schedule_time;
        request.workflow_host = Some(Arc::new(super::super::host::EngineHost {
            master: self.master.clone(),
            project: self.project.clone(),
            schedule_time: self.schedule_time,
            redact: request.redact.clone(),
        }));
        request.worker_group = Some(task.worker_group.clone());
        request.owner_generation = self.epoch.unwrap_or(0) as u64;
        Ok(request)
    }
}

/// A batch taken out of the decider, waiting for its store write: what to do once
/// stored.
pub(super) struct Sealed {
    /// Task rows the batch creates: (index of the insert among its writes, task).
    pub(super) inserts: Vec<(usize, String)>,
    pub(super) effects: Vec<Effect>,
}

/// Why a batch was not stored.
pub(super) enum Refusal {
    /// Another master owns the instance now.
    Fenced,
    /// The store kept refusing it (the last error).
    Refused(String),
}

/// The future that stores a sealed batch; it owns what it needs.
pub(super) type Storing = Pin<Box<dyn Future<Output = Result<Vec<Option<i64>>, Refusal>> + Send>>;

pub(super) enum Sealing {
    /// Nothing was decided since the last batch.
    Nothing,
    /// The worker's term ended: it must not store anything.
    Fenced,
    Sealed(Sealed, Storing),
}

/// The batch was not stored: drop its effects, answering everyone who waits on one
/// (an operation, an action on a job) with `error`.
fn refuse_waiting(effects: Vec<Effect>, error: &dyn Fn() -> MasterError) {
    for effect in effects {
        match effect {
            Effect::Reply(reply, _) => {
                let _ = reply.send(Err(error()));
            }
            Effect::Control { answer, .. } | Effect::ControlAnswer(answer, _) => {
                answer.send(Err(error()))
            }
            _ => {}
        }
    }
}
