//! The master's side of the plugins' `workflow` interface: what SubWorkflow and
//! Dependent tasks ask of the engine (start a child run and follow it, look up other
//! workflows' runs), answered from the store and the master itself.
//!
//! A plugin learns only about its own run. A plugin chooses the instance ids it passes
//! and the project names it asks about, so neither is trusted:
//!
//! - `child-status` and `stop-child` answer only for a child this task started: an
//!   instance whose `parent_task_instance_id` is one of the task instances (any attempt,
//!   archived ones included) with the caller's task name in the caller's workflow
//!   instance. Any other id, existing or not, gets "instance N was not started by this
//!   task", so ids of other runs cannot be probed.
//! - `last-run` looks at the run's own project freely. Another project may be read only
//!   when every non-admin user who holds any permission on the run's project holds at
//!   least `read` on the other one. The store records neither who created a project (its
//!   creator simply gets `edit`) nor who started a run, and what a Dependent task learns
//!   (the other runs' states, in its log, its state and its message) is shown to every
//!   member of its project; so that is the set of users who must already be allowed to
//!   see it. Admins may read every project and do not count. A project without members
//!   (embedded mode has no users at all) belongs to the operator alone. The refusal
//!   names the member who lacks access and reads the same whether the other project
//!   exists or not.

use std::collections::BTreeMap;

use shoal_protocol::{ChildEnds, ChildStatus, HostFuture, TaskIdentity, WorkflowHost};
use shoal_store::WorkflowInstanceRow;

use super::{Master, Operation, RunRequest};
use crate::state::WorkflowState;

/// Answers one workflow instance's tasks.
pub(super) struct EngineHost {
    pub(super) master: Master,
    /// The caller's run: its project and business time.
    pub(super) project: String,
    pub(super) schedule_time: i64,
    /// The run's secret values: a child's startup parameters are stored and shown, so
    /// a secret passed down is masked there (the child reads `${secret.X}` itself).
    pub(super) redact: Vec<String>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn mask(value: &str, secrets: &[String]) -> String {
    let mut out = value.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), shoal_model::log::REDACTED);
        }
    }
    out
}

impl EngineHost {
    async fn start(
        &self,
        caller: &TaskIdentity,
        workflow: &str,
        params: Vec<(String, String)>,
    ) -> Result<u64, String> {
        let store = self.master.store();
        let parent = caller.workflow_instance_id as i64;
        // A child started by an earlier attempt of this task that the engine lost (it
        // stopped before the handle was stored) is followed, not started twice.
        let siblings: Vec<i64> = store
            .task_instances(parent)
            .await
            .map_err(err)?
            .into_iter()
            .filter(|r| r.task_name == caller.task_name)
            .map(|r| r.id)
            .collect();
        if let Some(running) = store
            .child_instances(&siblings)
            .await
            .map_err(err)?
            .into_iter()
            .rev()
            .find(|c| {
                !super::instance::parse_workflow_state(&c.state).is_ok_and(|s| s.is_finished())
            })
        {
            return Ok(running.id as u64);
        }
        let definition = store
            .definition(&self.project, workflow, None)
            .await
            .map_err(err)?
            .ok_or_else(|| {
                format!(
                    "there is no workflow `{workflow}` in project `{}` (save it first, or reference its file with $WORKFLOW{{...}})",
                    self.project
                )
            })?;
        let mut run = RunRequest::new(definition.id, definition.version);
        run.startup_params = params
            .into_iter()
            .map(|(k, v)| (k, mask(&v, &self.redact)))
            .collect::<BTreeMap<_, _>>();
        run.schedule_time = Some(self.schedule_time);
        run.parent_task_instance_id = Some(caller.task_instance_id as i64);
        let id = self.master.start(run).await.map_err(err)?;
        Ok(id as u64)
    }

    /// The child `instance`, if the calling task started it.
    async fn own_child(
        &self,
        caller: &TaskIdentity,
        instance: u64,
    ) -> Result<WorkflowInstanceRow, String> {
        let store = self.master.store();
        let not_ours = || format!("instance {instance} was not started by this task");
        let id = i64::try_from(instance).map_err(|_| not_ours())?;
        let row = store
            .workflow_instance(id)
            .await
            .map_err(err)?
            .ok_or_else(not_ours)?;
        let parent = row.parent_task_instance_id.ok_or_else(not_ours)?;
        let starter = store
            .task_instance(parent)
            .await
            .map_err(err)?
            .ok_or_else(not_ours)?;
        if starter.workflow_instance_id != caller.workflow_instance_id as i64
            || starter.task_name != caller.task_name
        {
            return Err(not_ours());
        }
        Ok(row)
    }

    /// Refuse unless the run's project may read `other` (see the module doc).
    async fn may_read(&self, other: &str) -> Result<(), String> {
        if other == self.project {
            return Ok(());
        }
        let store = self.master.store();
        for user in store.users().await.map_err(err)? {
            if user.role == "admin"
                || store
                    .permission(&self.project, user.id)
                    .await
                    .map_err(err)?
                    .is_none()
            {
                continue;
            }
            if store
                .permission(other, user.id)
                .await
                .map_err(err)?
                .is_none()
            {
                return Err(format!(
                    "project `{}` may not look at runs of project `{other}`: its member `{}` cannot read `{other}` (a Dependent task may only look at projects every member of its own project can read)",
                    self.project, user.name
                ));
            }
        }
        Ok(())
    }

    async fn status(&self, caller: &TaskIdentity, instance: u64) -> Result<ChildStatus, String> {
        let store = self.master.store();
        let row = self.own_child(caller, instance).await?;
        let state = super::instance::parse_workflow_state(&row.state).map_err(err)?;
        let mut out_params = BTreeMap::new();
        if state.is_finished() {
            for task in store.task_instances(row.id).await.map_err(err)? {
                if let Some(map) = task.out_params.as_object() {
                    for (k, v) in map {
                        if k != super::instance::BRANCH_PARAM {
                            let v = v
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string());
                            out_params.insert(k.clone(), v);
                        }
                    }
                }
            }
        }
        Ok(ChildStatus {
            state: row.state,
            finished: state.is_finished(),
            succeeded: state == WorkflowState::Succeeded,
            out_params: out_params.into_iter().collect(),
        })
    }

    async fn last(
        &self,
        project: Option<&str>,
        workflow: &str,
        task: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Option<String>, String> {
        let store = self.master.store();
        let project = project.unwrap_or(&self.project);
        self.may_read(project).await?;
        let Some(definition) = store
            .definition(project, workflow, None)
            .await
            .map_err(err)?
        else {
            return Err(format!(
                "there is no workflow `{workflow}` in project `{project}`"
            ));
        };
        let Some(run) = store
            .latest_run_between(definition.id, from_ms, to_ms)
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let Some(task) = task else {
            return Ok(Some(run.state));
        };
        let latest = store
            .task_instances(run.id)
            .await
            .map_err(err)?
            .into_iter()
            .rev()
            .find(|r| r.task_name == task);
        let finished = super::instance::parse_workflow_state(&run.state)
            .map_err(err)?
            .is_finished();
        Ok(Some(match latest {
            Some(row) => row.state,
            // The run finished without ever starting that task (a branch not taken).
            None if finished => "skipped".to_owned(),
            None => run.state,
        }))
    }
}

impl WorkflowHost for EngineHost {
    fn start_child<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        workflow: &'a str,
        params: Vec<(String, String)>,
    ) -> HostFuture<'a, Result<u64, String>> {
        Box::pin(self.start(caller, workflow, params))
    }

    fn child_status<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<ChildStatus, String>> {
        Box::pin(self.status(caller, instance))
    }

    fn stop_child<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.own_child(caller, instance).await?;
            match self.master.operate(instance as i64, Operation::Stop).await {
                Ok(()) => Ok(()),
                // Already over: nothing to stop.
                Err(super::MasterError::Illegal(_)) => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn last_run<'a>(
        &'a self,
        _caller: &'a TaskIdentity,
        project: Option<&'a str>,
        workflow: &'a str,
        task: Option<&'a str>,
        from_ms: i64,
        to_ms: i64,
    ) -> HostFuture<'a, Result<Option<String>, String>> {
        Box::pin(self.last(project, workflow, task, from_ms, to_ms))
    }

    fn child_ends(&self, caller: &TaskIdentity) -> Option<ChildEnds> {
        Some(ChildEnds::new(self.master.child_ends(), caller))
    }
}
