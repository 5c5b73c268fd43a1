//! The master's side of the plugins' `workflow` interface: what SubWorkflow and
//! Dependent tasks ask of the engine (start a child run and follow it, look up other
//! workflows' runs), answered from the store and the master itself.

use std::collections::BTreeMap;

use shoal_runtime::{ChildStatus, HostFuture, TaskIdentity, WorkflowHost};

use super::{Master, Operation, RunRequest};
use crate::state::WorkflowState;

/// Answers one workflow instance's tasks.
pub(super) struct EngineHost {
    pub(super) master: Master,
    /// The caller's run: its project and business time.
    pub(super) project: String,
    pub(super) schedule_time: i64,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
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
            .find(|c| !super::worker::parse_workflow_state(&c.state).is_ok_and(|s| s.is_finished()))
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
        run.startup_params = params.into_iter().collect::<BTreeMap<_, _>>();
        run.schedule_time = Some(self.schedule_time);
        run.parent_task_instance_id = Some(caller.task_instance_id as i64);
        let id = self.master.start(run).await.map_err(err)?;
        Ok(id as u64)
    }

    async fn status(&self, instance: u64) -> Result<ChildStatus, String> {
        let store = self.master.store();
        let row = store
            .workflow_instance(instance as i64)
            .await
            .map_err(err)?
            .ok_or_else(|| format!("there is no workflow instance {instance}"))?;
        let state = super::worker::parse_workflow_state(&row.state).map_err(err)?;
        let mut out_params = BTreeMap::new();
        if state.is_finished() {
            for task in store.task_instances(row.id).await.map_err(err)? {
                if let Some(map) = task.out_params.as_object() {
                    for (k, v) in map {
                        if k != super::worker::BRANCH_PARAM {
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
        let finished = super::worker::parse_workflow_state(&run.state)
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
        _caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<ChildStatus, String>> {
        Box::pin(self.status(instance))
    }

    fn stop_child<'a>(
        &'a self,
        _caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<(), String>> {
        Box::pin(async move {
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
}
