//! Loading a run `Master::start` just inserted without reading it back, against a real
//! SQLite store: only while its event stream is still empty.

use std::sync::Arc;

use shoal_protocol::{
    BoxFuture, ClientError, ControlDone, ControlRequest, RunningTask, TakeOver, TaskEventSink,
    TaskExecutorClient, TaskKey, TaskRequest, TaskTypeInfo,
};
use shoal_store::{Store, Write};

use super::InstanceWorker;
use crate::master::{Master, MasterConfig};

/// A client for loads that dispatch nothing: every node is unreachable.
struct NoNodes;

fn unreachable_node<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, ClientError>> {
    Box::pin(async {
        Err(ClientError::Unreachable {
            host: "none".into(),
            why: "this test has no nodes".into(),
        })
    })
}

impl TaskExecutorClient for NoNodes {
    fn connect(&self, _: Arc<dyn TaskEventSink>) {}
    fn place(&self, _: &str, _: Option<&str>) -> Result<Option<String>, ClientError> {
        Ok(None)
    }
    fn dispatch(&self, _: TaskRequest) -> BoxFuture<'_, Result<(), ClientError>> {
        unreachable_node()
    }
    fn kill<'a>(&'a self, _: &'a str, _: TaskKey) -> BoxFuture<'a, Result<(), ClientError>> {
        unreachable_node()
    }
    fn pause<'a>(&'a self, _: &'a str, _: TaskKey) -> BoxFuture<'a, Result<(), ClientError>> {
        unreachable_node()
    }
    fn take_over<'a>(
        &'a self,
        _: &'a str,
        _: TaskKey,
        _: u64,
    ) -> BoxFuture<'a, Result<TakeOver, ClientError>> {
        unreachable_node()
    }
    fn running<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<RunningTask>, ClientError>> {
        unreachable_node()
    }
    fn control<'a>(
        &'a self,
        _: &'a str,
        _: ControlRequest,
    ) -> BoxFuture<'a, Result<Result<ControlDone, String>, ClientError>> {
        unreachable_node()
    }
    fn task_type<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a semver::Version>,
    ) -> BoxFuture<'a, Option<TaskTypeInfo>> {
        Box::pin(async { None })
    }
}

#[tokio::test]
async fn a_fresh_run_loads_without_rereading_until_its_stream_has_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("shoal.db"))
        .await
        .unwrap();
    let spec = serde_json::json!({"name": "w", "tasks": [{"name": "a", "task_type": "noop"}]});
    let version = store
        .save_definition("default", "w", &spec, "test")
        .await
        .unwrap();
    let master = Master::new(store.clone(), Arc::new(NoNodes), MasterConfig::default());
    let mut row = shoal_store::WorkflowInstanceRow {
        id: 0,
        definition_id: version.definition_id,
        version: version.version,
        name: "w".into(),
        state: "submitted".into(),
        schedule_time: 0,
        startup_params: serde_json::json!({}),
        start_tasks: serde_json::to_value(crate::master::StartTasks::All).unwrap(),
        parent_task_instance_id: None,
        created_at: 0,
        started_at: None,
        ended_at: None,
        updated_at: 0,
        owner: None,
        owner_gen: 0,
    };
    let ids = store
        .write(vec![Write::InsertWorkflowInstance {
            definition_id: row.definition_id,
            version: row.version,
            name: row.name.clone(),
            state: row.state.clone(),
            schedule_time: 0,
            startup_params: row.startup_params.clone(),
            start_tasks: row.start_tasks.clone(),
            parent_task_instance_id: None,
            owner: None,
            owner_gen: 0,
            idempotency_key: None,
        }])
        .await
        .unwrap();
    row.id = ids[0].unwrap();

    let worker = InstanceWorker::load_fresh(master.clone(), row.clone())
        .await
        .unwrap()
        .expect("nothing happened to it yet: built from the row");
    assert_eq!((worker.id(), worker.d.seq), (row.id, 0));
    drop(worker);

    // Something acted on the run meanwhile (another load, an operation): what was
    // inserted no longer describes it.
    store
        .write(vec![Write::AppendEvent {
            workflow_instance_id: row.id,
            seq: 1,
            kind: "workflow-state".into(),
            payload: r#"{"from":"submitted","to":"running"}"#.into(),
        }])
        .await
        .unwrap();
    assert!(
        InstanceWorker::load_fresh(master.clone(), row.clone())
            .await
            .unwrap()
            .is_none(),
        "a run with events must be loaded from the store"
    );
    let loaded = InstanceWorker::load(master, row.id).await.unwrap();
    assert_eq!(loaded.d.seq, 1);
}
