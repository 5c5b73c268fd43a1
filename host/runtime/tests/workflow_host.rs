//! The master's hook into `shoal:task/workflow` end to end: the built-in `sub-workflow`
//! and `dependent` components run through the runtime against a fake [`WorkflowHost`],
//! and without one, as under `shoal task run`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_model::{ExecutionClass, OperatorPolicy, TaskLog, TaskOutcome, TaskStatus};
use shoal_runtime::{
    CallLimits, ChildStatus, CompileCache, EngineConfig, HostFuture, LoadedPlugin,
    OUTSIDE_WORKFLOW, PluginEngine, PluginRegistry, PollReply, StartReply, TaskEnv, TaskIdentity,
    WorkflowHost,
};

/// 2024-03-06 10:30 UTC.
const SCHEDULE: i64 = 1_709_721_000_000;
const DAY: i64 = 86_400_000;
/// 2024-03-06 00:00 UTC, the business day of [`SCHEDULE`].
const TODAY: i64 = SCHEDULE - 10 * 3_600_000 - 30 * 60_000;

/// (workflow, task, from_ms, state) of the newest runs.
type Runs = Vec<(String, Option<String>, i64, String)>;

/// Records every call; answers from what the test put in.
#[derive(Default)]
struct FakeMaster {
    calls: Mutex<Vec<String>>,
    child: Mutex<Option<ChildStatus>>,
    runs: Mutex<Runs>,
}

impl FakeMaster {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, caller: &TaskIdentity, call: String) {
        self.calls.lock().unwrap().push(format!(
            "{}/{}: {call}",
            caller.workflow_instance_id, caller.task_instance_id
        ));
    }
}

impl WorkflowHost for FakeMaster {
    fn start_child<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        workflow: &'a str,
        params: Vec<(String, String)>,
    ) -> HostFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            self.record(caller, format!("start {workflow} {params:?}"));
            if workflow == "missing" {
                return Err("no workflow named `missing` in project `p`".into());
            }
            Ok(17)
        })
    }

    fn child_status<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<ChildStatus, String>> {
        Box::pin(async move {
            self.record(caller, format!("status {instance}"));
            self.child
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| format!("no child {instance}"))
        })
    }

    fn stop_child<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        instance: u64,
    ) -> HostFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.record(caller, format!("stop {instance}"));
            Ok(())
        })
    }

    fn last_run<'a>(
        &'a self,
        caller: &'a TaskIdentity,
        project: Option<&'a str>,
        workflow: &'a str,
        task: Option<&'a str>,
        from_ms: i64,
        to_ms: i64,
    ) -> HostFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            self.record(
                caller,
                format!("last-run {project:?} {workflow} {task:?} {from_ms}..{to_ms}"),
            );
            Ok(self
                .runs
                .lock()
                .unwrap()
                .iter()
                .find(|(w, t, from, _)| w == workflow && t.as_deref() == task && *from == from_ms)
                .map(|(_, _, _, state)| state.clone()))
        })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    work: tempfile::TempDir,
    registry: PluginRegistry,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(&EngineConfig::default()).unwrap();
    let registry = PluginRegistry::new(
        engine,
        CompileCache::new(dir.path().join("cache")),
        OperatorPolicy::default(),
        dir.path().join("plugins"),
    )
    .unwrap();
    for (manifest, wasm) in shoal_builtins::BUILTIN_PLUGINS {
        registry.add_builtin(manifest, wasm).unwrap();
    }
    Fixture {
        _dir: dir,
        work: tempfile::tempdir().unwrap(),
        registry,
    }
}

fn env(work_dir: &Path, params: serde_json::Value, host: Option<Arc<FakeMaster>>) -> TaskEnv {
    TaskEnv {
        identity: TaskIdentity {
            workflow_instance_id: 7,
            task_instance_id: 42,
            task_name: "child".into(),
            attempt: 1,
        },
        params,
        work_dir: work_dir.to_path_buf(),
        log: TaskLog::discard(),
        upstream_states: Vec::new(),
        workflow_host: host.map(|h| h as Arc<dyn WorkflowHost>),
        schedule_time_ms: SCHEDULE,
    }
}

fn limits() -> CallLimits {
    CallLimits::timeout(Duration::from_secs(30))
}

async fn start(plugin: &LoadedPlugin, env: &TaskEnv) -> StartReply {
    let errors = plugin.validate(env, &limits()).await.unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    plugin.start(env, &limits()).await.unwrap()
}

fn finished(reply: StartReply) -> TaskOutcome {
    match reply {
        StartReply::Finished(outcome) => outcome,
        StartReply::Running { handle } => panic!("still running with handle {handle}"),
    }
}

#[tokio::test]
async fn both_are_external_jobs_found_by_dolphinschedulers_names() {
    let f = fixture();
    for (written, id) in [("SubWorkflow", "sub-workflow"), ("Dependent", "dependent")] {
        let plugin = f.registry.resolve(written, None).await.unwrap();
        assert_eq!(plugin.manifest.id, id);
        assert_eq!(
            plugin.info.execution_class,
            ExecutionClass::ExternalJob,
            "{id}"
        );
    }
}

#[tokio::test]
async fn sub_workflow_starts_polls_and_stops_its_child() {
    let f = fixture();
    let plugin = f.registry.resolve("sub-workflow", None).await.unwrap();
    let master = Arc::new(FakeMaster::default());
    let params =
        serde_json::json!({"workflow_name": "other", "params": {"day": "2024-03-05", "n": 3}});
    let env = env(f.work.path(), params, Some(master.clone()));

    let StartReply::Running { handle } = start(&plugin, &env).await else {
        panic!("a sub-workflow waits for its child");
    };
    assert_eq!(handle, "17");
    assert_eq!(
        master.calls(),
        [r#"7/42: start other [("day", "2024-03-05"), ("n", "3")]"#]
    );

    *master.child.lock().unwrap() = Some(ChildStatus {
        state: "running".into(),
        finished: false,
        succeeded: false,
        out_params: Vec::new(),
    });
    let reply = plugin.poll(&env, &limits(), &handle).await.unwrap();
    assert_eq!(
        reply,
        PollReply::Running {
            note: "child instance 17 is running".into()
        }
    );

    *master.child.lock().unwrap() = Some(ChildStatus {
        state: "succeeded".into(),
        finished: true,
        succeeded: true,
        out_params: vec![("rows".into(), "42".into())],
    });
    let PollReply::Finished(outcome) = plugin.poll(&env, &limits(), &handle).await.unwrap() else {
        panic!("the child finished");
    };
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.message);
    assert_eq!(
        outcome.message,
        "child workflow `other` (instance 17) succeeded"
    );
    assert_eq!(outcome.out_params, [("rows".to_owned(), "42".to_owned())]);

    *master.child.lock().unwrap() = Some(ChildStatus {
        state: "failed".into(),
        finished: true,
        succeeded: false,
        out_params: Vec::new(),
    });
    let PollReply::Finished(outcome) = plugin.poll(&env, &limits(), &handle).await.unwrap() else {
        panic!("the child finished");
    };
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert_eq!(
        outcome.message,
        "child workflow `other` (instance 17) ended failed"
    );

    plugin
        .cancel(&env, &limits(), &handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(master.calls().last().unwrap(), "7/42: stop 17");
}

#[tokio::test]
async fn a_refused_start_fails_the_task_with_the_masters_reason() {
    let f = fixture();
    let plugin = f.registry.resolve("sub-workflow", None).await.unwrap();
    let master = Arc::new(FakeMaster::default());
    let env = env(
        f.work.path(),
        serde_json::json!({"process_definition_name": "missing"}),
        Some(master),
    );
    let outcome = finished(start(&plugin, &env).await);
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert_eq!(
        outcome.message,
        "cannot start workflow `missing` as a child run: no workflow named `missing` in project `p`"
    );
}

#[tokio::test]
async fn without_a_master_both_fail_clearly() {
    let f = fixture();
    let sub = f.registry.resolve("sub-workflow", None).await.unwrap();
    let env_sub = env(
        f.work.path(),
        serde_json::json!({"workflow_name": "x"}),
        None,
    );
    let outcome = finished(start(&sub, &env_sub).await);
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome.message.ends_with(OUTSIDE_WORKFLOW),
        "{}",
        outcome.message
    );

    let dependent = f.registry.resolve("dependent", None).await.unwrap();
    let params =
        serde_json::json!({"dependence": {"groups": [{"groups": [{"workflow_name": "x"}]}]}});
    let outcome = finished(start(&dependent, &env(f.work.path(), params, None)).await);
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert_eq!(
        outcome.message,
        format!("cannot check the dependencies: {OUTSIDE_WORKFLOW}")
    );
}

#[tokio::test]
async fn dependent_waits_until_the_runs_succeeded() {
    let f = fixture();
    let plugin = f.registry.resolve("dependent", None).await.unwrap();
    let master = Arc::new(FakeMaster::default());
    // DolphinScheduler's YAML shape: `denpendence:` empty, the groups beside it.
    let params = serde_json::json!({
        "denpendence": null,
        "op": "and",
        "groups": [{"op": "or", "groups": [
            {"project_name": "etl", "process_definition_name": "load",
             "dependent_task_name": "t1", "dependent_date": "last1Days"}
        ]}]
    });
    let env = env(f.work.path(), params, Some(master.clone()));

    let StartReply::Running { handle } = start(&plugin, &env).await else {
        panic!("no run yet: the task waits");
    };
    assert_eq!(handle, "waiting");
    // Yesterday, relative to the business time the env carries.
    assert_eq!(
        master.calls(),
        [format!(
            "7/42: last-run Some(\"etl\") load Some(\"t1\") {}..{TODAY}",
            TODAY - DAY
        )]
    );
    let PollReply::Running { note } = plugin.poll(&env, &limits(), &handle).await.unwrap() else {
        panic!("still no run");
    };
    assert!(note.contains("no run for 2024-03-05 yet"), "{note}");

    master.runs.lock().unwrap().push((
        "load".into(),
        Some("t1".into()),
        TODAY - DAY,
        "succeeded".into(),
    ));
    let PollReply::Finished(outcome) = plugin.poll(&env, &limits(), &handle).await.unwrap() else {
        panic!("the run succeeded");
    };
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.message);

    // Already decided at start: no waiting at all.
    master.runs.lock().unwrap()[0].3 = "failed".into();
    let outcome = finished(start(&plugin, &env).await);
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome
            .message
            .contains("task `t1`, last1Days): the run for 2024-03-05 is failed"),
        "{}",
        outcome.message
    );
}
