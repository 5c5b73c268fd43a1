//! Loader and structure checks on real files.

use std::path::{Path, PathBuf};

use crate::load::{load_file, load_str};
use crate::model::*;
use crate::validate::{structure, topological_order};

const DS_SHELL: &str = r#"# DolphinScheduler Python SDK example, as users have it
workflow:
  name: "Shell"
  release_state: "offline"
  run: true
  param:
    x: 1
    dt: $[yyyyMMdd-1]

tasks:
  - name: task_parent
    task_type: Shell
    command: |
      echo hello pydolphinscheduler
      echo "${x}"

  - name: task_child_one
    task_type: Shell
    deps: [task_parent]
    command: echo "child one"
    flag: "NO"
    task_priority: HIGH
    fail_retry_times: 2
    fail_retry_interval: 3
    timeout: 5
    timeout_notify_strategy: WARNFAILED
    local_params:
      - { prop: out1, direct: OUT, type: VARCHAR, value: "" }

  - name: switch
    task_type: Switch
    deps: [task_child_one]
    condition:
      - task: branch_big
        condition: "${x} > 1"
      - task: branch_default

  - name: branch_big
    task_type: Shell
    command: echo big

  - name: branch_default
    task_type: Shell
    command: echo default
"#;

fn parse(text: &str) -> Result<WorkflowDefinition, String> {
    load_str(text, Path::new("wf.yaml"))
        .map(|l| l.workflow)
        .map_err(|d| d.to_string())
}

#[test]
fn reads_dolphinscheduler_yaml() {
    let wf = parse(DS_SHELL).unwrap();
    assert_eq!(wf.name, "Shell");
    assert_eq!(wf.global_params["x"], "1");
    assert_eq!(wf.global_params["dt"], "$[yyyyMMdd-1]");
    assert_eq!(wf.tasks.len(), 5);
    assert_eq!(wf.task_lines, vec![11, 17, 30, 38, 42]);
    let parent = &wf.tasks[0];
    assert_eq!(parent.task_type, "Shell");
    assert_eq!(
        parent.params["command"],
        "echo hello pydolphinscheduler\necho \"${x}\"\n"
    );
    let child = &wf.tasks[1];
    assert_eq!(child.deps, vec!["task_parent"]);
    assert_eq!(child.flag, Flag::No);
    assert_eq!(child.priority, Priority::High);
    assert_eq!(
        (child.fail_retry_times, child.retry_interval_ms),
        (2, 180_000)
    );
    assert_eq!(child.timeout_ms, Some(300_000));
    assert_eq!(child.timeout_strategy, TimeoutStrategy::Both);
    assert_eq!(child.local_params[0].prop, "out1");
    assert_eq!(child.local_params[0].direct, ParamDirection::Out);
    let switch = &wf.tasks[2];
    assert_eq!(switch.params["condition"][0]["condition"], "${x} > 1");
    assert_eq!(switch.params["condition"][1]["task"], "branch_default");
    // The branches declare no deps: the switch's naming them makes them its downstream.
    assert_eq!(wf.tasks[3].deps, vec!["switch"]);
    assert_eq!(wf.tasks[4].deps, vec!["switch"]);
    assert!(structure(Path::new("wf.yaml"), &wf).is_empty());
    let order = topological_order(&wf).unwrap();
    assert_eq!(
        order[..3],
        [0, 1, 2],
        "the branches come after the switch: {order:?}"
    );
}

/// pydolphinscheduler's Condition: the tasks its groups check run before it, its
/// success and failed tasks after it, though none of them says so in `deps`; an edge
/// already written is not doubled.
#[test]
fn a_condition_implies_its_edges_as_pydolphinscheduler_does() {
    let wf = parse(
        r#"workflow: {name: w}
tasks:
  - {name: pre_1, task_type: Shell, command: "true"}
  - {name: pre_2, task_type: Shell, command: "false"}
  - name: cond
    task_type: Condition
    deps: [pre_1]
    success_task: on_success
    failed_task: [on_failure]
    op: AND
    groups:
      - op: AND
        groups:
          - {task: pre_1, flag: true}
          - {task: pre_2, flag: false}
  - {name: on_success, task_type: Shell, command: "echo yes"}
  - {name: on_failure, task_type: Shell, command: "echo no"}
"#,
    )
    .unwrap();
    let deps = |name: &str| {
        wf.tasks
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .deps
            .clone()
    };
    assert_eq!(deps("cond"), vec!["pre_1", "pre_2"]);
    assert_eq!(deps("on_success"), vec!["cond"]);
    assert_eq!(deps("on_failure"), vec!["cond"]);
    assert!(deps("pre_2").is_empty());
}

/// A Switch or Condition naming a task the workflow lacks (or itself) is reported at
/// the field that names it, not as a confusing `deps` error elsewhere.
#[test]
fn an_implied_edge_to_no_task_names_its_field() {
    let err = parse(
        r#"workflow: {name: w}
tasks:
  - name: sw
    task_type: Switch
    condition:
      - {task: nowhere, condition: "1 > 0"}
      - {task: sw}
  - name: c
    task_type: CONDITION
    success_task: gone
    groups:
      - groups: [{task: missing, flag: true}]
"#,
    )
    .unwrap_err();
    for wanted in [
        "wf.yaml:3: field `tasks[0] `sw`.condition[0].task`: no task named `nowhere` in this workflow",
        "wf.yaml:3: field `tasks[0] `sw`.condition[1].task`: `sw` is this task itself",
        "wf.yaml:8: field `tasks[1] `c`.groups[0].groups[0].task`: no task named `missing` in this workflow",
        "wf.yaml:8: field `tasks[1] `c`.success_task`: no task named `gone` in this workflow",
    ] {
        assert!(err.lines().any(|l| l == wanted), "{wanted}\nin\n{err}");
    }
}

#[test]
fn scalars_keep_their_types_unless_quoted() {
    let wf = parse(
        "workflow: {name: w}\ntasks:\n  - {name: a, task_type: x, n: 3, f: 1.5, b: true, s: \"3\", z: ~}\n",
    )
    .unwrap();
    let p = &wf.tasks[0].params;
    assert_eq!(p["n"], 3);
    assert_eq!(p["f"], 1.5);
    assert_eq!(p["b"], true);
    assert_eq!(p["s"], "3");
    assert!(p["z"].is_null());
}

#[test]
fn every_problem_is_reported_with_line_and_field() {
    let err = parse(
        "workflow:\n  nam: typo\ntasks:\n  - name: a\n    task_type: Shell\n    flag: maybe\n    fail_retry_times: -1\n  - task_type: Shell\n",
    )
    .unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.contains(&"wf.yaml:2: field `workflow.nam`: unknown workflow field"),
        "{err}"
    );
    assert!(
        lines.contains(&"wf.yaml:2: field `workflow.name`: missing or empty"),
        "{err}"
    );
    assert!(
        lines.contains(&"wf.yaml:6: field `tasks[0] `a`.flag`: `maybe` is not YES or NO"),
        "{err}"
    );
    assert!(
        lines.contains(
            &"wf.yaml:7: field `tasks[0] `a`.fail_retry_times`: `-1` is not a whole number ≥ 0"
        ),
        "{err}"
    );
    assert!(
        lines.contains(&"wf.yaml:8: field `tasks[1].name`: missing or empty"),
        "{err}"
    );
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let err = parse("workflow:\n  name: w\ntasks:\n  - name: [unclosed\n").unwrap_err();
    assert!(err.starts_with("wf.yaml:"), "{err}");
    assert!(err.contains("not valid YAML"), "{err}");
    let err = parse("workflow: {name: w}\nworkflow: {name: v}\ntasks: []\n").unwrap_err();
    assert!(
        err.contains("wf.yaml:2:") && err.contains("duplicate key `workflow`"),
        "{err}"
    );
}

#[test]
fn structure_finds_duplicates_unknown_deps_and_cycles() {
    let wf = parse(
        r#"workflow: {name: w}
tasks:
  - {name: a, task_type: x, deps: [c]}
  - {name: b, task_type: x, deps: [a]}
  - {name: c, task_type: x, deps: [b]}
  - {name: a, task_type: x}
  - {name: d, task_type: x, deps: [nope, d]}
"#,
    )
    .unwrap();
    let found: Vec<String> = structure(Path::new("wf.yaml"), &wf)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        found.contains(
            &"wf.yaml:6: field `tasks[3].name`: duplicate task name `a` (first defined at line 3)"
                .into()
        ),
        "{found:#?}"
    );
    assert!(
        found.contains(&"wf.yaml:7: field `tasks[4] `d`.deps[0]`: unknown dependency `nope`: no task has that name".into()),
        "{found:#?}"
    );
    assert!(
        found.contains(
            &"wf.yaml:7: field `tasks[4] `d`.deps`: a task cannot depend on itself".into()
        ),
        "{found:#?}"
    );
    assert!(
        found.contains(
            &"wf.yaml:3: field `deps`: dependency cycle between tasks `a`, `b`, `c`".into()
        ),
        "{found:#?}"
    );
    assert_eq!(topological_order(&wf), None);
}

#[test]
fn json_definitions_load_with_lines() {
    let wf = load_str(
        "{\n  \"workflow\": {\"name\": \"j\"},\n  \"tasks\": [\n    {\"name\": \"a\", \"task_type\": \"Shell\", \"command\": \"echo 1\"},\n    {\"name\": \"b\", \"task_type\": \"Shell\", \"deps\": [\"a\"], \"command\": \"echo 2\"}\n  ]\n}\n",
        Path::new("wf.json"),
    )
    .unwrap()
    .workflow;
    assert_eq!(wf.tasks[1].deps, vec!["a"]);
    assert_eq!(wf.task_lines, vec![4, 5]);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn file_references_resolve_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "query.sql", "select 1");
    write(
        dir.path(),
        "child.yaml",
        "workflow: {name: child}\ntasks:\n  - {name: c, task_type: Shell, command: echo child}\n",
    );
    let main = write(
        dir.path(),
        "main.yaml",
        "workflow: {name: main}\ntasks:\n  - name: sub\n    task_type: SubWorkflow\n    workflow_name: $WORKFLOW{\"child.yaml\"}\n  - name: sql\n    task_type: Sql\n    sql: $FILE{\"query.sql\"}\n    home: $ENV{HOME}\n",
    );
    let loaded = load_file(&main).unwrap();
    assert_eq!(loaded.workflow.tasks[0].params["workflow_name"], "child");
    assert_eq!(loaded.workflow.tasks[1].params["sql"], "select 1");
    assert_eq!(
        loaded.workflow.tasks[1].params["home"],
        std::env::var("HOME").unwrap()
    );
    assert_eq!(loaded.referenced["child"].1.tasks[0].name, "c");

    let bad = write(
        dir.path(),
        "bad.yaml",
        "workflow: {name: bad}\ntasks:\n  - name: s\n    task_type: Sql\n    sql: $FILE{\"missing.sql\"}\n    x: $ENV{SHOAL_SURELY_UNSET_VAR}\n",
    );
    let err = load_file(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.yaml:5: field `tasks[0] `s`.sql`: $FILE{\"missing.sql\"}: cannot read"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:6:") && err.contains("SHOAL_SURELY_UNSET_VAR` is not set"),
        "{err}"
    );

    write(
        dir.path(),
        "loop-a.yaml",
        "workflow: {name: a}\ntasks:\n  - name: t\n    task_type: SubWorkflow\n    workflow_name: $WORKFLOW{\"loop-b.yaml\"}\n",
    );
    let b = write(
        dir.path(),
        "loop-b.yaml",
        "workflow: {name: b}\ntasks:\n  - name: t\n    task_type: SubWorkflow\n    workflow_name: $WORKFLOW{\"loop-a.yaml\"}\n",
    );
    let err = load_file(&b).unwrap_err().to_string();
    assert!(err.contains("reference each other in a cycle"), "{err}");
}

#[test]
fn task_types_match_plugin_ids_loosely() {
    assert!(task_type_matches("SubWorkflow", "sub-workflow"));
    assert!(task_type_matches("SHELL", "shell"));
    assert!(task_type_matches("sub_workflow", "subworkflow"));
    assert!(!task_type_matches("Shell", "shell2"));
}

#[test]
fn durations_are_minutes_or_carry_a_unit() {
    let wf = parse(
        "workflow:\n  name: d\ntasks:\n  - name: a\n    task_type: Shell\n    command: 'true'\n    delay_time: 30s\n    fail_retry_interval: 0\n    timeout: 2\n  - name: b\n    task_type: Shell\n    command: 'true'\n    timeout: 500ms\n",
    )
    .unwrap();
    assert_eq!(wf.tasks[0].delay_ms, 30_000);
    assert_eq!(wf.tasks[0].retry_interval_ms, 0);
    assert_eq!(wf.tasks[0].timeout_ms, Some(120_000));
    assert_eq!(wf.tasks[1].timeout_ms, Some(500));
    assert_eq!(wf.tasks[1].retry_interval_ms, 60_000);

    let err = parse(
        "workflow:\n  name: d\ntasks:\n  - name: a\n    task_type: Shell\n    command: 'true'\n    delay_time: soon\n",
    )
    .unwrap_err();
    assert!(
        err.contains("wf.yaml:7: field `tasks[0] `a`.delay_time`: `soon` is not a duration"),
        "{err}"
    );
}

#[test]
fn schedules_and_time_zones_are_checked_where_they_are_written() {
    let wf = parse(
        "workflow:\n  name: s\n  schedule: \"0 0 0 * * ? *\"\n  timezone: Asia/Shanghai\ntasks:\n  - name: a\n    task_type: Noop\n",
    )
    .unwrap();
    assert_eq!(wf.schedule.as_deref(), Some("0 0 0 * * ? *"));
    let err = parse(
        "workflow:\n  name: s\n  schedule: \"0 0 99 * * ?\"\n  timezone: Mars/Olympus\ntasks:\n  - name: a\n    task_type: Noop\n",
    )
    .unwrap_err();
    assert!(
        err.contains("wf.yaml:3: field `workflow.schedule`: cron expression `0 0 99 * * ?`"),
        "{err}"
    );
    assert!(
        err.contains("wf.yaml:4: field `workflow.timezone`: unknown time zone `Mars/Olympus`"),
        "{err}"
    );
}

/// pydolphinscheduler's `input_params` / `output_params`: typed `TYPE(text)` values or
/// plain YAML values, appended after `local_params` (wherever they are written) as IN
/// and OUT parameters.
#[test]
fn input_and_output_params_become_typed_local_params() {
    let wf = parse(
        r#"workflow: {name: w}
tasks:
  - name: t
    task_type: Shell
    command: echo
    input_params:
      a: VARCHAR(some text )
      b: 3
      c: FILE(text.txt)
      d:
      e: INTEGER()
      f: 1.5
      g: true
    local_params:
      - { prop: first, direct: IN, type: VARCHAR, value: "1" }
    output_params:
      o: LIST()
      p: ""
"#,
    )
    .unwrap();
    let got: Vec<(String, ParamDirection, String, String)> = wf.tasks[0]
        .local_params
        .iter()
        .map(|p| (p.prop.clone(), p.direct, p.kind.clone(), p.value.clone()))
        .collect();
    let want = |prop: &str, direct, kind: &str, value: &str| {
        (prop.to_owned(), direct, kind.to_owned(), value.to_owned())
    };
    use ParamDirection::{In, Out};
    assert_eq!(
        got,
        vec![
            want("first", In, "VARCHAR", "1"),
            want("a", In, "VARCHAR", "some text"),
            want("b", In, "INTEGER", "3"),
            want("c", In, "FILE", "text.txt"),
            want("d", In, "VARCHAR", ""),
            want("e", In, "INTEGER", ""),
            want("f", In, "FLOAT", "1.5"),
            want("g", In, "BOOLEAN", "true"),
            want("o", Out, "LIST", ""),
            want("p", Out, "VARCHAR", ""),
        ]
    );
}

#[test]
fn a_bad_typed_param_names_its_field() {
    let err = parse(
        "workflow: {name: w}\ntasks:\n  - name: t\n    task_type: Shell\n    input_params:\n      n: INTEGER(many)\n      k: varchar(x)\n    output_params: [a, b]\n",
    )
    .unwrap_err();
    for wanted in [
        "wf.yaml:6: field `tasks[0] `t`.input_params.n`: `many` is not a valid INTEGER value",
        "wf.yaml:7: field `tasks[0] `t`.input_params.k`: `varchar` is not a parameter type",
        "wf.yaml:8: field `tasks[0] `t`.output_params`: must be a mapping of parameter names to values",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(wanted)),
            "{wanted}\nin\n{err}"
        );
    }
}

#[test]
fn fields_shoal_does_not_act_on_are_warnings_naming_line_and_field() {
    let text = r#"workflow:
  name: wf
  tenant: etl
  execution_type: SERIAL_WAIT
  queue: default
  resource_plugin: {type: local, prefix: /tmp}
tasks:
  - name: a
    task_type: Shell
    command: echo a
    environment_name: prod-env
    is_cache: true
    cpu_quota: 50
    timeout_flag: CLOSE
"#;
    let loaded = load_str(text, Path::new("wf.yaml")).expect("warnings do not stop the load");
    let seen: Vec<(usize, String)> = loaded
        .warnings
        .iter()
        .map(|w| (w.line, w.field.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        seen,
        [
            (3, "workflow.tenant".to_owned()),
            (5, "workflow.queue".to_owned()),
            (6, "workflow.resource_plugin".to_owned()),
            (11, "tasks[0] `a`.environment_name".to_owned()),
            (12, "tasks[0] `a`.is_cache".to_owned()),
            (13, "tasks[0] `a`.cpu_quota".to_owned()),
        ],
        "timeout_flag and execution_type are acted on, so they are no warnings"
    );
    assert_eq!(loaded.workflow.run_mode.as_deref(), Some("serial-wait"));
    let first = loaded.warnings[0].to_string();
    assert!(
        first.starts_with("wf.yaml:3: field `workflow.tenant`: accepted, not supported: "),
        "{first}"
    );
    // A file without such fields loads without a warning.
    let clean = load_str(
        "workflow: {name: w}\ntasks: [{name: a, task_type: Shell, command: echo}]\n",
        Path::new("w.yaml"),
    )
    .unwrap();
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
}
