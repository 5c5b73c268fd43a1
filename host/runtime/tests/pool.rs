//! The pooling allocator's slots under pressure (real shell processes in real work
//! dirs, the built-in components): more concurrent plugin calls than the pool has slots
//! all succeed, the extra ones waiting for a slot; and a plugin still loads while task
//! calls fill the pool, on a reserved slot.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_model::{OperatorPolicy, TaskOutcome, TaskStatus};
use shoal_runtime::{
    CallLimits, CompileCache, EngineConfig, LoadedPlugin, PluginEngine, PluginRegistry, StartReply,
    TaskEnv, TaskIdentity,
};

fn registry(root: &Path, config: EngineConfig) -> PluginRegistry {
    let engine = PluginEngine::new(&config).unwrap();
    assert!(
        engine.is_pooling(),
        "this test is about the pooling allocator, which could not reserve its memory here"
    );
    let registry = PluginRegistry::new(
        engine,
        CompileCache::new(root.join("cache")),
        OperatorPolicy::default(),
        root.join("plugins"),
    )
    .unwrap();
    for (manifest, wasm) in shoal_builtins::BUILTIN_PLUGINS {
        registry.add_builtin(manifest, wasm).unwrap();
    }
    registry
}

/// Run `sleep SECS` through the shell plugin on a task of its own.
fn spawn_shell(
    shell: &Arc<LoadedPlugin>,
    root: &Path,
    n: usize,
    sleep: Duration,
) -> tokio::task::JoinHandle<TaskOutcome> {
    let shell = Arc::clone(shell);
    let work_dir = root.join(format!("work-{n}"));
    std::fs::create_dir_all(&work_dir).unwrap();
    tokio::spawn(async move {
        let env = TaskEnv::new(
            TaskIdentity {
                workflow_instance_id: 1,
                task_instance_id: n as u64 + 1,
                task_name: format!("t{n}"),
                attempt: 1,
            },
            serde_json::json!({
                "command": format!("sleep {}; echo done-{n}", sleep.as_secs_f64())
            }),
            work_dir,
        );
        let limits = CallLimits::timeout(Duration::from_secs(60));
        match shell.start(&env, &limits).await {
            Ok(StartReply::Finished(outcome)) => outcome,
            other => panic!("task {n}: {other:?}"),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_calls_than_pool_slots_wait_and_all_succeed() {
    const SLOTS: u32 = 2;
    const TASKS: usize = 6;
    const SLEEP: Duration = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(
        dir.path(),
        EngineConfig {
            pooling_slots: SLOTS,
            reserved_slots: 0,
            ..EngineConfig::default()
        },
    );
    let shell = registry.resolve("shell", None).await.unwrap();
    assert_eq!(
        registry.engine().free_slots(),
        Some(SLOTS as usize),
        "loading returned its slot"
    );

    let started = Instant::now();
    let calls: Vec<_> = (0..TASKS)
        .map(|n| spawn_shell(&shell, dir.path(), n, SLEEP))
        .collect();
    for (n, call) in calls.into_iter().enumerate() {
        let outcome = call.await.unwrap();
        assert_eq!(
            outcome.status,
            TaskStatus::Succeeded,
            "task {n}: {outcome:?}"
        );
    }
    // With two slots, six calls of SLEEP each take at least three rounds: the extra
    // ones waited rather than running beside the others.
    let rounds = TASKS.div_ceil(SLOTS as usize) as u32;
    assert!(
        started.elapsed() >= SLEEP * rounds,
        "took only {:?}",
        started.elapsed()
    );
    assert_eq!(registry.engine().free_slots(), Some(SLOTS as usize));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_loads_on_a_reserved_slot_while_task_calls_fill_the_pool() {
    const SLEEP: Duration = Duration::from_secs(4);
    let dir = tempfile::tempdir().unwrap();
    // Two slots for task calls, one kept for describe and cancel.
    let registry = registry(
        dir.path(),
        EngineConfig {
            pooling_slots: 3,
            reserved_slots: 1,
            ..EngineConfig::default()
        },
    );
    let shell = registry.resolve("shell", None).await.unwrap();
    // Two run and two wait for a task slot.
    let calls: Vec<_> = (0..4)
        .map(|n| spawn_shell(&shell, dir.path(), n, SLEEP))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while registry.engine().free_slots() != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the task calls never took their slots"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Loading `noop` describes it: on the reserved slot, before any task call is done
    // (behind the waiting ones it would come only after the first two ended).
    let noop = registry.resolve("noop", None).await.unwrap();
    assert_eq!(noop.manifest.id, "noop");
    assert!(
        calls.iter().all(|c| !c.is_finished()),
        "the load waited for the task calls"
    );
    for (n, call) in calls.into_iter().enumerate() {
        let outcome = call.await.unwrap();
        assert_eq!(
            outcome.status,
            TaskStatus::Succeeded,
            "task {n}: {outcome:?}"
        );
    }
    assert_eq!(registry.engine().free_slots(), Some(3));
}
