//! `shoal:task/workflow` end to end: the built-in `condition` and `switch` components run
//! through the runtime with [`TaskEnv::upstream_states`] set as the master sets it, and
//! the branch they pick comes back as the `shoal.branch` OUT parameter.

use std::path::Path;
use std::sync::Arc;

use shoal_model::{OperatorPolicy, TaskOutcome, TaskStatus, Trigger};
use shoal_runtime::{
    CallLimits, CompileCache, EngineConfig, LoadedPlugin, PluginEngine, PluginRegistry, StartReply,
    TaskEnv, TaskIdentity,
};

const BRANCH: &str = "shoal.branch";

struct Fixture {
    _dir: tempfile::TempDir,
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
        registry,
    }
}

fn env(work_dir: &Path, params: serde_json::Value, upstream: &[(&str, &str)]) -> TaskEnv {
    let identity = TaskIdentity {
        workflow_instance_id: 7,
        task_instance_id: 42,
        task_name: "condition".into(),
        attempt: 1,
    };
    TaskEnv {
        upstream_states: upstream
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect(),
        ..TaskEnv::new(identity, params, work_dir.to_path_buf())
    }
}

async fn start(plugin: &Arc<LoadedPlugin>, env: &TaskEnv) -> TaskOutcome {
    let limits = CallLimits::timeout(std::time::Duration::from_secs(30));
    assert!(plugin.validate(env, &limits).await.unwrap().is_empty());
    match plugin.start(env, &limits).await.unwrap() {
        StartReply::Finished(outcome) => outcome,
        StartReply::Running { handle } => panic!("a logic task returned a handle: {handle}"),
    }
}

fn branch(outcome: &TaskOutcome) -> Option<Vec<String>> {
    let (_, value) = outcome.out_params.iter().find(|(k, _)| k == BRANCH)?;
    Some(serde_json::from_str(value).expect("shoal.branch is a JSON array of names"))
}

/// The Condition example of DolphinScheduler's Python SDK (yaml_define/Condition.yaml).
fn ds_condition() -> serde_json::Value {
    serde_json::json!({
        "success_task": "success_branch",
        "failed_task": "fail_branch",
        "op": "AND",
        "groups": [
            {"op": "AND", "groups": [
                {"task": "pre_task_1", "flag": true},
                {"task": "pre_task_2", "flag": true}
            ]},
            {"op": "OR", "groups": [
                {"task": "pre_task_3", "flag": false}
            ]}
        ]
    })
}

#[tokio::test]
async fn condition_reads_upstream_states_and_picks_the_branch() {
    let f = fixture();
    let plugin = f.registry.resolve("condition", None).await.unwrap();
    let work = tempfile::tempdir().unwrap();

    let all_as_asked = [
        ("pre_task_1", "succeeded"),
        ("pre_task_2", "forced-success"),
        ("pre_task_3", "failed"),
    ];
    let outcome = start(&plugin, &env(work.path(), ds_condition(), &all_as_asked)).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.message);
    assert_eq!(branch(&outcome), Some(vec!["success_branch".to_owned()]));
    assert!(
        outcome.message.contains("success_task `success_branch`"),
        "{}",
        outcome.message
    );

    let one_failed = [
        ("pre_task_1", "succeeded"),
        ("pre_task_2", "failed"),
        ("pre_task_3", "killed"),
    ];
    let outcome = start(&plugin, &env(work.path(), ds_condition(), &one_failed)).await;
    // The condition itself succeeds: it could evaluate; the branch carries the result.
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.message);
    assert_eq!(branch(&outcome), Some(vec!["fail_branch".to_owned()]));
    assert!(
        outcome
            .message
            .contains("pre_task_2 failed (wanted success)"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn condition_without_upstream_states_fails_naming_the_task() {
    let f = fixture();
    let plugin = f.registry.resolve("condition", None).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    // Run on its own (`shoal task run`): the host serves an empty list.
    let outcome = start(&plugin, &env(work.path(), ds_condition(), &[])).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome.message.contains("`pre_task_1`"),
        "{}",
        outcome.message
    );
    assert_eq!(branch(&outcome), None);

    let outcome = start(
        &plugin,
        &env(
            work.path(),
            ds_condition(),
            &[("pre_task_1", "succeeded"), ("pre_task_2", "succeeded")],
        ),
    )
    .await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome
            .message
            .contains("`pre_task_3`, which is not a direct upstream task"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn switch_follows_the_first_true_branch() {
    let f = fixture();
    let plugin = f.registry.resolve("switch", None).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let params = |var: &str| {
        serde_json::json!({"condition": [
            {"task": "switch_child_1", "condition": format!("{var} > 1")},
            {"task": "switch_child_2"}
        ]})
    };
    let outcome = start(&plugin, &env(work.path(), params("5"), &[])).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.message);
    assert_eq!(branch(&outcome), Some(vec!["switch_child_1".to_owned()]));

    let outcome = start(&plugin, &env(work.path(), params("0"), &[])).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.message);
    assert_eq!(branch(&outcome), Some(vec!["switch_child_2".to_owned()]));
    assert!(
        outcome.message.contains("default branch"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn switch_validation_names_the_second_default() {
    let f = fixture();
    let plugin = f.registry.resolve("switch", None).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let params = serde_json::json!({"condition": [{"task": "a"}, {"task": "b"}]});
    let limits = CallLimits::timeout(std::time::Duration::from_secs(30));
    let errors = plugin
        .validate(&env(work.path(), params, &[]), &limits)
        .await
        .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "condition[1]");
}

#[tokio::test]
async fn the_manifests_carry_the_trigger() {
    let f = fixture();
    let condition = f.registry.resolve("condition", None).await.unwrap();
    assert_eq!(condition.manifest.flow.trigger, Trigger::AllDone);
    for id in ["switch", "noop", "shell"] {
        let plugin = f.registry.resolve(id, None).await.unwrap();
        assert_eq!(plugin.manifest.flow.trigger, Trigger::AllSuccess, "{id}");
    }
}

/// A plugin that never imports `shoal:task/workflow` (here `noop`) still links: the
/// interface is additive. Its upstream states are simply not asked for.
#[tokio::test]
async fn plugins_that_do_not_import_workflow_still_run() {
    let f = fixture();
    let plugin = f.registry.resolve("noop", None).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let outcome = start(
        &plugin,
        &env(
            work.path(),
            serde_json::json!({"set": {"k": "v"}}),
            &[("up", "failed")],
        ),
    )
    .await;
    assert_eq!(outcome.status, TaskStatus::Succeeded);
    assert_eq!(outcome.out_params, vec![("k".to_owned(), "v".to_owned())]);
}
