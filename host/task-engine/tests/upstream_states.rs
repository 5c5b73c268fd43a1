//! [`TaskRequest::upstream_states`] reaches the plugin: the master fills it, the
//! TaskEngine passes it into the runtime, and the built-in `condition` task picks its
//! branch from it.

use std::sync::Arc;
use std::time::Duration;

use shoal_model::{OperatorPolicy, TaskState};
use shoal_runtime::{CompileCache, EngineConfig, PluginEngine, PluginRegistry};
use shoal_task_engine::{TaskEngine, TaskEngineConfig, TaskRequest};
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
            datasource_root: root.join("datasources"),
            log_root: root.join("logs"),
            poll_interval: Duration::from_millis(20),
            work_dirs: Default::default(),
        },
    )
}

#[tokio::test]
async fn condition_gets_the_requests_upstream_states() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let params = serde_json::json!({
        "success_task": "on_success",
        "failed_task": ["on_failure", "alert"],
        "groups": [{"op": "and", "groups": [{"task": "extract", "flag": true}]}]
    });

    for (state, expected) in [
        ("succeeded", r#"["on_success"]"#),
        ("failed", r#"["on_failure","alert"]"#),
    ] {
        let request = TaskRequest {
            upstream_states: vec![("extract".into(), state.into())],
            ..TaskRequest::new("Condition", params.clone())
        };
        let report = engine
            .execute(request, CancellationToken::new(), |_| {})
            .await;
        assert_eq!(report.state, TaskState::Succeeded, "{}", report.message);
        assert_eq!(
            report.out_params,
            vec![("shoal.branch".to_owned(), expected.to_owned())],
            "upstream {state}"
        );
    }

    // `TaskRequest::new` leaves the list empty, as for a task run on its own.
    let report = engine
        .execute(
            TaskRequest::new("condition", params),
            CancellationToken::new(),
            |_| {},
        )
        .await;
    assert_eq!(report.state, TaskState::Failed);
    assert!(
        report.message.contains("no upstream tasks"),
        "{}",
        report.message
    );
}
