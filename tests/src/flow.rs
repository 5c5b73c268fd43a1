//! Running workflows through a real master: a store (SQLite file or PostgreSQL
//! database), the TaskEngine with the built-in plugins, and helpers to publish YAML and
//! read back what ran.

use std::collections::BTreeMap;
use std::path::Path;

use shoal_master::state::{TaskInstanceState, WorkflowState};
use shoal_master::{Master, MasterConfig, Progress, RunRequest};
use shoal_store::{Store, TaskInstanceRow};

use crate::Harness;

/// A master over `store`, running tasks on a fresh [`Harness`].
pub struct Flow {
    pub harness: Harness,
    pub master: Master,
}

impl Flow {
    pub fn new(store: Store) -> Self {
        Self::with_policy(store, "")
    }

    /// A flow whose TaskEngine runs under operator policy `policy` (TOML).
    pub fn with_policy(store: Store, policy: &str) -> Self {
        Self::with_harness(store, Harness::with_policy(policy))
    }

    /// A flow whose tasks run on `harness`.
    pub fn with_harness(store: Store, harness: Harness) -> Self {
        let master = Master::new(store, harness.in_process(), MasterConfig::default());
        Self { harness, master }
    }

    pub fn store(&self) -> &Store {
        self.master.store()
    }

    /// Save a YAML definition; returns (definition id, version).
    pub async fn publish(&self, yaml: &str) -> (i64, i64) {
        let loaded = shoal_workflow::load_str(yaml, Path::new("test.yaml"))
            .unwrap_or_else(|d| panic!("test workflow does not load:\n{d}"));
        let wf = loaded.workflow;
        let saved = self
            .store()
            .save_definition(
                wf.project.as_deref().unwrap_or("default"),
                &wf.name,
                &serde_json::to_value(&wf).unwrap(),
                yaml,
            )
            .await
            .unwrap();
        (saved.definition_id, saved.version)
    }

    /// Start a run of the YAML workflow; returns the instance id.
    pub async fn start(&self, yaml: &str) -> i64 {
        let (id, version) = self.publish(yaml).await;
        self.master
            .start(RunRequest::new(id, version))
            .await
            .unwrap()
    }

    pub async fn start_with(&self, yaml: &str, edit: impl FnOnce(&mut RunRequest)) -> i64 {
        let (id, version) = self.publish(yaml).await;
        let mut run = RunRequest::new(id, version);
        edit(&mut run);
        self.master.start(run).await.unwrap()
    }

    /// Run to the end (or a pause); returns the final state.
    pub async fn run(&self, yaml: &str) -> (i64, WorkflowState) {
        let id = self.start(yaml).await;
        (id, self.wait(id).await)
    }

    pub async fn wait(&self, id: i64) -> WorkflowState {
        tokio::time::timeout(std::time::Duration::from_secs(120), self.master.wait(id))
            .await
            .expect("the instance settled within two minutes")
            .unwrap()
    }

    /// Every stored attempt, by task name, oldest first.
    pub async fn attempts(&self, id: i64) -> BTreeMap<String, Vec<TaskInstanceRow>> {
        let mut by_task: BTreeMap<String, Vec<TaskInstanceRow>> = BTreeMap::new();
        for row in self.store().task_instances(id).await.unwrap() {
            by_task.entry(row.task_name.clone()).or_default().push(row);
        }
        by_task
    }

    /// The state of each task's latest attempt.
    pub async fn states(&self, id: i64) -> BTreeMap<String, String> {
        self.attempts(id)
            .await
            .into_iter()
            .map(|(k, v)| (k, v.last().unwrap().state.clone()))
            .collect()
    }

    /// Wait until `task` of instance `id` reaches `state` (as stored).
    pub async fn when_task(&self, id: i64, task: &str, state: TaskInstanceState) {
        let mut updates = self.master.subscribe();
        let reached = async {
            loop {
                let rows = self.store().task_instances(id).await.unwrap();
                if rows
                    .iter()
                    .any(|r| r.task_name == task && r.state == state.to_string())
                {
                    return;
                }
                let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
                    loop {
                        if let Ok(Progress::Task { instance, .. }) = updates.recv().await
                            && instance == id
                        {
                            return;
                        }
                    }
                })
                .await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), reached)
            .await
            .unwrap_or_else(|_| panic!("task `{task}` never reached {state}"));
    }

    pub async fn event_kinds(&self, id: i64) -> Vec<String> {
        self.store()
            .events(id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}
