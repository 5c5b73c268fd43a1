//! The workflow engine end to end: real master, real store (each scenario on a SQLite
//! file and on a fresh PostgreSQL database), real plugins and real shell processes.

use shoal_master::Operation;
use shoal_master::state::{TaskInstanceState as T, WorkflowState as W};
use shoal_store::Store;
use shoal_tests::flow::Flow;

#[path = "engine/batches.rs"]
mod batches;
use batches::a_wide_fan_out_stores_every_batch_in_order_while_deciding_the_next;

/// Each scenario runs once on SQLite and once on PostgreSQL.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_and_postgres() {
                shoal_store::testing::on_both(|store, _url| super::$name(store)).await
            }
        }
    )*};
}

on_both_databases!(
    params_flow_downstream_by_priority,
    pydolphinscheduler_input_and_output_params_flow,
    file_params_pass_a_file_downstream,
    retries_until_success,
    retries_exhausted_fail_the_workflow,
    timeout_fails_or_warns,
    failure_strategy_end_kills_the_rest,
    failure_strategy_continue_finishes_other_branches,
    forbidden_tasks_are_skipped_and_pass_through,
    delayed_task_waits_then_runs,
    switch_follows_one_branch,
    condition_branches_on_upstream_result,
    pydolphinscheduler_switch_and_condition_imply_their_edges,
    pause_then_resume,
    stop_kills_running_tasks,
    recover_reruns_only_failed_tasks,
    force_success_unblocks_downstream,
    kill_one_task,
    rerun_starts_afresh,
    start_from_a_task,
    unknown_parameter_fails_the_task_clearly,
    sub_workflow_runs_a_child_and_returns_its_out_params,
    sub_workflow_hears_its_child_end_without_polling,
    dependent_waits_for_another_workflows_run,
    stopping_a_parent_stops_its_child,
    a_wide_fan_out_stores_every_batch_in_order_while_deciding_the_next,
);

async fn params_flow_downstream_by_priority(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: params
  param:
    g: global
    shadowed: from-global
    dt: $[yyyyMMdd]
tasks:
  - name: produce
    task_type: Shell
    command: |
      echo "#{setValue(up=from-upstream)}"
      echo "#{setValue(shadowed=from-upstream)}"
  - name: consume
    task_type: Shell
    deps: [produce]
    local_params:
      - prop: mine
        direct: IN
        type: VARCHAR
        value: local-${up}
    command: |
      echo "#{setValue(seen=${up}|${shadowed}|${g}|${mine}|${s}|${dt}|${system.workflow.instance.id})}"
"##;
    let id = flow
        .start_with(yaml, |run| {
            run.startup_params.insert("s".into(), "from-startup".into());
        })
        .await;
    let state = flow.wait(id).await;
    let attempts = flow.attempts(id).await;
    let logs: Vec<String> = attempts
        .values()
        .flatten()
        .filter_map(|r| r.log_path.as_ref())
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    assert_eq!(state, W::Succeeded, "{attempts:#?}\n{}", logs.join("\n"));
    let consume = &attempts["consume"][0];
    let today = chrono_today();
    assert_eq!(
        consume.out_params["seen"],
        format!("from-upstream|from-upstream|global|local-from-upstream|from-startup|{today}|{id}")
    );
}

/// pydolphinscheduler's `input_params` / `output_params` run as IN and OUT local
/// parameters: an IN value reaches the command, an OUT value set there reaches the
/// downstream task.
async fn pydolphinscheduler_input_and_output_params_flow(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: typed-params
tasks:
  - name: produce
    task_type: Shell
    input_params:
      greeting: VARCHAR(hello)
      n: 3
    output_params:
      made: VARCHAR()
    command: echo "#{setValue(made=${greeting}-${n})}"
  - name: consume
    task_type: Shell
    deps: [produce]
    command: echo "#{setValue(seen=${made})}"
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Succeeded);
    let attempts = flow.attempts(id).await;
    assert_eq!(attempts["produce"][0].out_params["made"], "hello-3");
    assert_eq!(attempts["consume"][0].out_params["seen"], "hello-3");
}

/// DolphinScheduler's FILE parameters: an OUT FILE names a file the task leaves in its
/// work dir, which becomes `<task>.<param>`; an IN FILE naming that key gets the file in
/// its own work dir under its own name. A file that is missing or a symlink fails the
/// task that should have passed it.
async fn file_params_pass_a_file_downstream(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: files
tasks:
  - name: produce
    task_type: Shell
    command: printf 'id,n\n1,42\n' > report.csv
    output_params:
      report: FILE(report.csv)
  - name: consume
    task_type: Python
    deps: [produce]
    input_params:
      data.csv: FILE(produce.report)
    definition: |
      rows = open("data.csv").read().splitlines()
      print("${setValue(last=" + rows[-1] + ")}")
"##;
    let (id, state) = flow.run(yaml).await;
    let attempts = flow.attempts(id).await;
    assert_eq!(state, W::Succeeded, "{attempts:#?}");
    assert_eq!(attempts["consume"][0].out_params["last"], "1,42");
    assert!(
        attempts["produce"][0].out_params["produce.report"]
            .as_str()
            .unwrap_or_default()
            .starts_with("data:application/octet-stream;name=report.csv;base64,")
    );

    let yaml = r##"
workflow:
  name: bad-files
  failure_strategy: continue
tasks:
  - name: sneaky
    task_type: Shell
    command: ln -s /etc/hostname link.txt
    local_params:
      - {prop: f, direct: OUT, type: FILE, value: link.txt}
  - name: lost
    task_type: Shell
    command: "true"
    local_params:
      - {prop: f, direct: OUT, type: FILE, value: nothing.txt}
  - name: orphan
    task_type: Shell
    command: "true"
    local_params:
      - {prop: f, direct: IN, type: FILE, value: nobody.f}
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Failed);
    let attempts = flow.attempts(id).await;
    let message = |t: &str| attempts[t][0].message.clone();
    assert!(
        message("sneaky").contains("`link.txt` is a symlink"),
        "{}",
        message("sneaky")
    );
    assert!(
        message("lost").contains("`nothing.txt` does not exist"),
        "{}",
        message("lost")
    );
    assert!(
        message("orphan").contains("no upstream task passed a file as `nobody.f`"),
        "{}",
        message("orphan")
    );
}

fn chrono_today() -> String {
    let out = std::process::Command::new("date")
        .arg("+%Y%m%d")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn retries_until_success(store: Store) {
    // The marker lives on the host across attempts; a sandboxed task (which sees only
    // its own work dir) could not keep it.
    let flow = Flow::with_policy(store, "sandbox = \"none\"");
    let marker = flow.harness.dir.path().join("tried-once");
    let yaml = format!(
        r##"
workflow:
  name: retries
tasks:
  - name: flaky
    task_type: Shell
    fail_retry_times: 2
    fail_retry_interval: 0
    command: if [ -f {m} ]; then echo ok; else touch {m}; exit 3; fi
"##,
        m = marker.display()
    );
    let (id, state) = flow.run(&yaml).await;
    assert_eq!(state, W::Succeeded);
    let attempts = &flow.attempts(id).await["flaky"];
    let summary: Vec<(i64, &str)> = attempts
        .iter()
        .map(|r| (r.attempt, r.state.as_str()))
        .collect();
    assert_eq!(summary, vec![(1, "failed"), (2, "succeeded")]);
    let kinds = flow.event_kinds(id).await;
    assert!(kinds.contains(&"task-retry".to_string()), "{kinds:?}");
}

async fn retries_exhausted_fail_the_workflow(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: exhausted
tasks:
  - name: broken
    task_type: Shell
    fail_retry_times: 1
    fail_retry_interval: 0
    command: exit 3
  - name: after
    task_type: Shell
    deps: [broken]
    command: echo never
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Failed);
    let attempts = flow.attempts(id).await;
    assert_eq!(attempts["broken"].len(), 2);
    assert!(attempts["broken"].iter().all(|r| r.state == "failed"));
    assert!(
        attempts["broken"][1].message.contains("exit"),
        "{}",
        attempts["broken"][1].message
    );
    assert!(!attempts.contains_key("after"), "a blocked task never runs");
}

async fn timeout_fails_or_warns(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: timeouts
  failure_strategy: continue
tasks:
  - name: too-slow
    task_type: Shell
    timeout: 300ms
    timeout_strategy: FAILED
    command: sleep 30
  - name: warned
    task_type: Shell
    timeout: 100ms
    timeout_strategy: WARN
    command: sleep 1
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Failed);
    let attempts = flow.attempts(id).await;
    assert_eq!(attempts["too-slow"][0].state, "failed");
    assert!(
        attempts["too-slow"][0].message.contains("timed out"),
        "{}",
        attempts["too-slow"][0].message
    );
    assert_eq!(attempts["warned"][0].state, "succeeded");
    assert!(
        flow.event_kinds(id)
            .await
            .contains(&"task-timeout-warning".to_string())
    );
}

async fn failure_strategy_end_kills_the_rest(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: end
  failure_strategy: end
tasks:
  - name: long
    task_type: Shell
    command: sleep 60
  - name: breaks
    task_type: Shell
    command: sleep 0.3; exit 1
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Failed);
    let states = flow.states(id).await;
    assert_eq!(states["breaks"], "failed");
    assert_eq!(states["long"], "killed");
}

async fn failure_strategy_continue_finishes_other_branches(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: continue
  failure_strategy: continue
tasks:
  - name: breaks
    task_type: Shell
    command: exit 1
  - name: blocked
    task_type: Shell
    deps: [breaks]
    command: echo never
  - name: other
    task_type: Shell
    command: sleep 0.5
  - name: other-next
    task_type: Noop
    deps: [other]
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Failed);
    let states = flow.states(id).await;
    assert_eq!(states["other"], "succeeded");
    assert_eq!(states["other-next"], "succeeded");
    assert!(!states.contains_key("blocked"));
}

async fn forbidden_tasks_are_skipped_and_pass_through(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: forbidden
tasks:
  - name: off
    task_type: Shell
    flag: NO
    command: exit 1
  - name: next
    task_type: Noop
    deps: [off]
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Succeeded);
    let attempts = flow.attempts(id).await;
    assert_eq!(attempts["off"][0].state, "skipped");
    assert!(attempts["off"][0].message.contains("flag: NO"));
    assert_eq!(attempts["next"][0].state, "succeeded");
}

async fn delayed_task_waits_then_runs(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: delayed
tasks:
  - name: later
    task_type: Noop
    delay_time: 400ms
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Succeeded);
    let kinds = flow.event_kinds(id).await;
    let delay = kinds
        .iter()
        .position(|k| k == "task-delay")
        .expect("delayed");
    let dispatch = kinds
        .iter()
        .position(|k| k == "task-dispatch")
        .expect("dispatched");
    assert!(delay < dispatch);
    let row = &flow.attempts(id).await["later"][0];
    assert!(row.started_at.unwrap() - row.created_at >= 400, "{row:?}");
}

async fn switch_follows_one_branch(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: switch
  param:
    x: 5
tasks:
  - name: decide
    task_type: Switch
    condition:
      - task: big
        condition: "${x} > 3"
      - task: small
  - name: big
    task_type: Noop
    deps: [decide]
  - name: small
    task_type: Noop
    deps: [decide]
  - name: after-small
    task_type: Noop
    deps: [small]
  - name: join
    task_type: Noop
    deps: [big, small]
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Succeeded);
    let states = flow.states(id).await;
    assert_eq!(states["big"], "succeeded");
    assert_eq!(states["small"], "skipped");
    assert_eq!(states["after-small"], "skipped");
    assert_eq!(states["join"], "succeeded");
}

async fn condition_branches_on_upstream_result(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: condition
tasks:
  - name: check
    task_type: Shell
    command: exit 1
  - name: cond
    task_type: Condition
    deps: [check]
    success_task: on-success
    failed_task: on-failure
    op: AND
    groups:
      - op: AND
        groups:
          - task: check
            flag: true
  - name: on-success
    task_type: Noop
    deps: [cond]
  - name: on-failure
    task_type: Noop
    deps: [cond]
"##;
    let (id, state) = flow.run(yaml).await;
    let states = flow.states(id).await;
    assert_eq!(states["check"], "failed");
    assert_eq!(states["cond"], "succeeded");
    assert_eq!(states["on-failure"], "succeeded");
    assert_eq!(states["on-success"], "skipped");
    assert_eq!(
        state,
        W::Succeeded,
        "a failure a Condition handles does not fail the run"
    );
}

/// pydolphinscheduler's YAML: no task names the Switch or the Condition in its `deps`,
/// nor the Condition the tasks it checks. Only the chosen branches run, after their
/// Switch or Condition, which waits for what it checks.
async fn pydolphinscheduler_switch_and_condition_imply_their_edges(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: pyds-style
  param:
    x: 1
tasks:
  - name: big
    task_type: Shell
    command: echo big
  - name: small
    task_type: Shell
    command: sleep 0.3
  - name: decide
    task_type: Switch
    condition:
      - task: big
        condition: "${x} > 3"
      - task: small
  - name: check
    task_type: Shell
    command: sleep 0.3; exit 1
  - name: on-success
    task_type: Noop
  - name: on-failure
    task_type: Noop
  - name: cond
    task_type: Condition
    success_task: on-success
    failed_task: on-failure
    op: AND
    groups:
      - op: AND
        groups:
          - task: check
            flag: true
"##;
    let (id, state) = flow.run(yaml).await;
    let states = flow.states(id).await;
    assert_eq!(states["decide"], "succeeded");
    assert_eq!(states["small"], "succeeded");
    assert_eq!(
        states["big"], "skipped",
        "the branch not chosen does not run"
    );
    assert_eq!(states["check"], "failed");
    assert_eq!(states["cond"], "succeeded");
    assert_eq!(states["on-failure"], "succeeded");
    assert_eq!(states["on-success"], "skipped");
    assert_eq!(state, W::Succeeded);
    // Each ran after what it follows, not beside it.
    let rows = flow.store().task_instances(id).await.unwrap();
    let row = |n: &str| rows.iter().find(|r| r.task_name == n).unwrap().clone();
    assert!(
        row("small").started_at >= row("decide").ended_at,
        "{rows:#?}"
    );
    assert!(row("cond").started_at >= row("check").ended_at, "{rows:#?}");
    assert!(
        row("on-failure").started_at >= row("cond").ended_at,
        "{rows:#?}"
    );
}

async fn pause_then_resume(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: pausing
tasks:
  - name: first
    task_type: Shell
    command: sleep 0.5
  - name: second
    task_type: Noop
    deps: [first]
"##;
    let id = flow.start(yaml).await;
    flow.when_task(id, "first", T::Running).await;
    flow.master.operate(id, Operation::Pause).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Paused);
    let states = flow.states(id).await;
    assert_eq!(
        states["first"], "succeeded",
        "a running task finishes on pause"
    );
    assert!(
        !states.contains_key("second"),
        "nothing new starts while paused"
    );
    assert!(flow.master.operate(id, Operation::Pause).await.is_err());

    flow.master.operate(id, Operation::Resume).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Succeeded);
    assert_eq!(flow.states(id).await["second"], "succeeded");
}

async fn stop_kills_running_tasks(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: stopping
tasks:
  - name: long
    task_type: Shell
    command: sleep 60
  - name: after
    task_type: Noop
    deps: [long]
"##;
    let id = flow.start(yaml).await;
    flow.when_task(id, "long", T::Running).await;
    flow.master.operate(id, Operation::Stop).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Stopped);
    let states = flow.states(id).await;
    assert_eq!(states["long"], "killed");
    assert!(!states.contains_key("after"));
}

async fn recover_reruns_only_failed_tasks(store: Store) {
    // The marker lives on the host across attempts; a sandboxed task (which sees only
    // its own work dir) could not keep it.
    let flow = Flow::with_policy(store, "sandbox = \"none\"");
    let marker = flow.harness.dir.path().join("fixed");
    let yaml = format!(
        r##"
workflow:
  name: recover
tasks:
  - name: good
    task_type: Shell
    command: echo good
  - name: needs-fix
    task_type: Shell
    deps: [good]
    command: test -f {m}
  - name: after
    task_type: Noop
    deps: [needs-fix]
"##,
        m = marker.display()
    );
    let (id, state) = flow.run(&yaml).await;
    assert_eq!(state, W::Failed);
    std::fs::write(&marker, "").unwrap();
    flow.master.operate(id, Operation::Recover).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Succeeded);
    let attempts = flow.attempts(id).await;
    assert_eq!(attempts["good"].len(), 1, "a success is kept, not rerun");
    let fix: Vec<&str> = attempts["needs-fix"]
        .iter()
        .map(|r| r.state.as_str())
        .collect();
    assert_eq!(fix, ["failed", "succeeded"]);
    assert_eq!(attempts["after"][0].state, "succeeded");
}

async fn force_success_unblocks_downstream(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: forced
tasks:
  - name: broken
    task_type: Shell
    command: exit 1
  - name: after
    task_type: Noop
    deps: [broken]
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Failed);
    let op = Operation::ForceSuccess {
        task: "after".into(),
    };
    assert!(
        flow.master.operate(id, op).await.is_err(),
        "after never ran"
    );
    let op = Operation::ForceSuccess {
        task: "broken".into(),
    };
    flow.master.operate(id, op).await.unwrap();
    assert_eq!(flow.states(id).await["broken"], "forced-success");
    flow.master.operate(id, Operation::Recover).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Succeeded);
    let attempts = flow.attempts(id).await;
    assert_eq!(attempts["broken"].len(), 1, "a forced success is not rerun");
    assert_eq!(attempts["after"][0].state, "succeeded");
}

async fn kill_one_task(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: kill
tasks:
  - name: long
    task_type: Shell
    command: sleep 60
"##;
    let id = flow.start(yaml).await;
    flow.when_task(id, "long", T::Running).await;
    let op = Operation::Kill {
        task: "long".into(),
    };
    flow.master.operate(id, op).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Failed);
    assert_eq!(flow.states(id).await["long"], "killed");
}

async fn rerun_starts_afresh(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: rerun
tasks:
  - name: a
    task_type: Noop
  - name: b
    task_type: Noop
    deps: [a]
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Succeeded);
    let before: Vec<i64> = flow
        .store()
        .task_instances(id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    flow.master.operate(id, Operation::Rerun).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Succeeded);
    let after: Vec<i64> = flow
        .store()
        .task_instances(id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "every task ran again"
    );
}

async fn start_from_a_task(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: partial
tasks:
  - name: a
    task_type: Noop
  - name: b
    task_type: Noop
    deps: [a]
  - name: c
    task_type: Noop
    deps: [b]
"##;
    let id = flow
        .start_with(yaml, |run| {
            run.start_tasks = shoal_master::StartTasks::WithDownstream(vec!["b".into()]);
        })
        .await;
    assert_eq!(flow.wait(id).await, W::Succeeded);
    let states = flow.states(id).await;
    assert!(!states.contains_key("a"));
    assert_eq!(states["b"], "succeeded");
    assert_eq!(states["c"], "succeeded");
}

async fn unknown_parameter_fails_the_task_clearly(store: Store) {
    let flow = Flow::new(store);
    let yaml = r##"
workflow:
  name: unknown-param
tasks:
  - name: a
    task_type: Shell
    fail_retry_times: 3
    command: echo ${nope}
"##;
    let (id, state) = flow.run(yaml).await;
    assert_eq!(state, W::Failed);
    let attempts = &flow.attempts(id).await["a"];
    assert_eq!(attempts.len(), 1, "a parameter error is not retried");
    assert!(
        attempts[0].message.contains("nope"),
        "{}",
        attempts[0].message
    );
}

/// A child's end reaches its SubWorkflow task as an event: with external jobs polled once
/// an hour, the parent still ends as soon as its child does (and its OUT params arrive).
async fn sub_workflow_hears_its_child_end_without_polling(store: Store) {
    let harness =
        shoal_tests::Harness::with_poll_interval("", std::time::Duration::from_secs(3600));
    let flow = Flow::with_harness(store, harness);
    flow.publish(
        "workflow:\n  name: short-child\ntasks:\n  - name: nap\n    task_type: Shell\n    command: sleep 0.02; echo '#{setValue(napped=yes)}'\n",
    )
    .await;
    let yaml = "workflow:\n  name: eager-parent\ntasks:\n  - name: call\n    task_type: SubWorkflow\n    workflow_name: short-child\n";
    let id = flow.start(yaml).await;
    let state = tokio::time::timeout(std::time::Duration::from_secs(60), flow.master.wait(id))
        .await
        .expect("the parent ended within a minute, not at the next hourly poll")
        .unwrap();
    let attempts = flow.attempts(id).await;
    assert_eq!(state, W::Succeeded, "{attempts:#?}");
    assert_eq!(attempts["call"][0].out_params["napped"], "yes");
}

async fn sub_workflow_runs_a_child_and_returns_its_out_params(store: Store) {
    let flow = Flow::new(store);
    flow.publish(
        r##"
workflow:
  name: child
  param:
    greeting: none
tasks:
  - name: greet
    task_type: Shell
    command: echo "#{setValue(answer=${greeting}-from-child)}"
"##,
    )
    .await;
    let yaml = r##"
workflow:
  name: parent
  param:
    word: hello
tasks:
  - name: call
    task_type: SubWorkflow
    workflow_name: child
    params:
      greeting: ${word}
  - name: use
    task_type: Shell
    deps: [call]
    command: echo "#{setValue(seen=${answer})}"
"##;
    let (id, state) = flow.run(yaml).await;
    let attempts = flow.attempts(id).await;
    assert_eq!(state, W::Succeeded, "{attempts:#?}");
    assert_eq!(attempts["use"][0].out_params["seen"], "hello-from-child");
    let call = &attempts["call"][0];
    let child: i64 = call.handle.as_deref().unwrap().parse().unwrap();
    let child_row = flow
        .store()
        .workflow_instance(child)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(child_row.state, "succeeded");
    assert_eq!(child_row.parent_task_instance_id, Some(call.id));

    // A failing child fails its parent task, naming the child.
    flow.publish(
        "workflow:\n  name: bad-child\ntasks:\n  - name: boom\n    task_type: Shell\n    command: exit 2\n",
    )
    .await;
    let (id, state) = flow
        .run("workflow:\n  name: parent2\ntasks:\n  - name: call\n    task_type: SubWorkflow\n    workflow_name: bad-child\n")
        .await;
    assert_eq!(state, W::Failed);
    let call = &flow.attempts(id).await["call"][0];
    assert!(call.message.contains("bad-child"), "{}", call.message);
}

async fn dependent_waits_for_another_workflows_run(store: Store) {
    let flow = Flow::new(store);
    let (_, state) = flow
        .run("workflow:\n  name: upstream\ntasks:\n  - name: load\n    task_type: Noop\n")
        .await;
    assert_eq!(state, W::Succeeded);
    let dependent = |cycle: &str, timeout: &str| {
        format!(
            r##"
workflow:
  name: downstream-{cycle}
tasks:
  - name: wait-for-upstream
    task_type: Dependent
    timeout: {timeout}
    dependence:
      op: and
      groups:
        - op: and
          groups:
            - process_definition_name: upstream
              dependent_task_name: load
              dependent_date: {cycle}
  - name: report
    task_type: Noop
    deps: [wait-for-upstream]
"##
        )
    };
    // Today's run of `upstream` succeeded: the dependency holds.
    let (id, state) = flow.run(&dependent("today", "30s")).await;
    let attempts = flow.attempts(id).await;
    assert_eq!(state, W::Succeeded, "{attempts:#?}");
    // Nothing ran yesterday: the task waits until its timeout fails it.
    let (id, state) = flow.run(&dependent("last1Days", "1s")).await;
    assert_eq!(state, W::Failed);
    let wait = &flow.attempts(id).await["wait-for-upstream"][0];
    assert!(wait.message.contains("timed out"), "{}", wait.message);
}

async fn stopping_a_parent_stops_its_child(store: Store) {
    let flow = Flow::new(store);
    flow.publish("workflow:\n  name: slow-child\ntasks:\n  - name: wait\n    task_type: Shell\n    command: sleep 60\n")
        .await;
    let id = flow
        .start("workflow:\n  name: waiting-parent\ntasks:\n  - name: call\n    task_type: SubWorkflow\n    workflow_name: slow-child\n")
        .await;
    // The child's own task running means the child exists and its handle is stored.
    let child = loop {
        let call = flow
            .attempts(id)
            .await
            .get("call")
            .and_then(|a| a[0].handle.clone());
        if let Some(child) = call.and_then(|h| h.parse::<i64>().ok()) {
            flow.when_task(child, "wait", T::Running).await;
            break child;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    flow.master.operate(id, Operation::Stop).await.unwrap();
    assert_eq!(flow.wait(id).await, W::Stopped);
    assert_eq!(
        flow.wait(child).await,
        W::Stopped,
        "the child is stopped with its parent"
    );
    assert_eq!(flow.states(child).await["wait"], "killed");
}
