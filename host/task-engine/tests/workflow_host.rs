//! [`TaskRequest::workflow_host`] and [`TaskRequest::schedule_time_ms`] reach the plugin:
//! the built-in `sub-workflow` task runs as an external job through the TaskEngine,
//! polling a fake master until its child finishes, and stops the child when the task
//! times out.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_model::{OperatorPolicy, TaskState};
use shoal_runtime::{
    ChildStatus, CompileCache, EngineConfig, HostFuture, PluginEngine, PluginRegistry,
    TaskIdentity, WorkflowHost,
};
use shoal_task_engine::{TaskEngine, TaskEngineConfig, TaskEvent, TaskRequest};
use tokio_util::sync::CancellationToken;

fn engine(root: &std::path::Path) -> TaskEngine {
    let registry = PluginRegistry::new(
        PluginEngine::new(&EngineConfig::default()).unwrap(),
        CompileCache::new(root.join("cache")),
        OperatorPolicy::default(),
        root.join("plugins"),
    )
    .unwrap();
    for (manifest, wasm) in shoal_builtins::BUILTIN_PLUGINS {
        registry.add_builtin(manifest, wasm).unwrap();
    }
    TaskEngine::new(
        Arc::new(registry),
        TaskEngineConfig {
            work_root: root.join("work"),
            log_root: root.join("logs"),
            poll_interval: Duration::from_millis(20),
        },
    )
}

/// A child that runs for `polls` status calls, then succeeds (never, when `polls` is
/// `u32::MAX`).
struct FakeMaster {
    polls: u32,
    seen: AtomicU32,
    stopped: Mutex<Vec<u64>>,
}

impl FakeMaster {
    fn new(polls: u32) -> Arc<Self> {
        Arc::new(Self {
            polls,
            seen: AtomicU32::new(0),
            stopped: Mutex::new(Vec::new()),
        })
    }
}

impl WorkflowHost for FakeMaster {
    fn start_child<'a>(
        &'a self,
        _caller: &'a TaskIdentity,
        _workflow: &'a str,
        _params: Vec<(String, String)>,
    ) -> HostFuture<'a, Result<u64, String>> {
        Box::pin(async { Ok(17) })
    }

    fn child_status<'a>(
        &'a self,
        _caller: &'a TaskIdentity,
        _instance: u64,
    ) -> HostFuture<'a, Result<ChildStatus, String>> {
        Box::pin(async move {
            let done = self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.polls;
            Ok(ChildStatus {
                state: if done { "succeeded" } else { "running" }.into(),
                finished: done,
                succeeded: done,
                out_params: if done {
                    vec![("rows".into(), "42".into())]
                } else {
                    Vec::new()
                },
            })
        })
    }

    fn stop_child<'a>(
        &'a self,
        _caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.stopped.lock().unwrap().push(instance);
            Ok(())
        })
    }

    fn last_run<'a>(
        &'a self,
        _caller: &'a TaskIdentity,
        _project: Option<&'a str>,
        _workflow: &'a str,
        _task: Option<&'a str>,
        _from_ms: i64,
        _to_ms: i64,
    ) -> HostFuture<'a, Result<Option<String>, String>> {
        Box::pin(async { Ok(None) })
    }
}

fn request(master: &Arc<FakeMaster>) -> TaskRequest {
    TaskRequest {
        workflow_host: Some(master.clone() as Arc<dyn WorkflowHost>),
        schedule_time_ms: 1_709_721_000_000,
        ..TaskRequest::new("SubWorkflow", serde_json::json!({"workflow_name": "other"}))
    }
}

#[tokio::test]
async fn sub_workflow_polls_its_child_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let master = FakeMaster::new(3);
    let request = request(&master);
    // The request stays printable and clonable with the master in it.
    assert!(format!("{request:?}").contains("WorkflowHost"));
    let mut events = Vec::new();
    let report = engine
        .execute(request.clone(), CancellationToken::new(), |e| {
            events.push(e.clone())
        })
        .await;
    assert_eq!(report.state, TaskState::Succeeded, "{}", report.message);
    assert_eq!(report.handle.as_deref(), Some("17"));
    assert_eq!(report.out_params, [("rows".to_owned(), "42".to_owned())]);
    assert!(events.contains(&TaskEvent::HandleAssigned {
        handle: "17".into()
    }));
    assert!(events.contains(&TaskEvent::Progress {
        note: "child instance 17 is running".into()
    }));
    assert!(master.stopped.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_timed_out_sub_workflow_stops_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let master = FakeMaster::new(u32::MAX);
    let request = TaskRequest {
        timeout: Some(Duration::from_millis(300)),
        ..request(&master)
    };
    let report = engine
        .execute(request, CancellationToken::new(), |_| {})
        .await;
    assert_ne!(report.state, TaskState::Succeeded, "{}", report.message);
    assert_eq!(*master.stopped.lock().unwrap(), [17]);
}

#[tokio::test]
async fn without_a_master_it_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let report = engine
        .execute(
            TaskRequest::new(
                "sub-workflow",
                serde_json::json!({"workflow_name": "other"}),
            ),
            CancellationToken::new(),
            |_| {},
        )
        .await;
    assert_eq!(report.state, TaskState::Failed);
    assert!(
        report
            .message
            .contains("only available inside a workflow run"),
        "{}",
        report.message
    );
}
