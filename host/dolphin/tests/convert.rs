//! Conversions of the fixture exports, each result loaded with Shoal's own loader and
//! checked value by value on the loaded definition.

use std::path::Path;

use serde_json::json;
use shoal_dolphin::{ImportError, ImportedWorkflow, Options, Problem, RunMode, convert};
use shoal_workflow::{
    FailureStrategy, Flag, ParamDirection, Priority, TimeoutStrategy, WorkflowDefinition,
};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Load a generated definition as `shoal apply` would, and check its DAG.
fn load(w: &ImportedWorkflow) -> WorkflowDefinition {
    let origin = Path::new("x.yaml");
    let loaded = shoal_workflow::load_str(&w.yaml, origin)
        .unwrap_or_else(|e| panic!("{} does not load: {e}\n{}", w.name, w.yaml));
    // A server loads uploads this way: the text must hold no file or env reference.
    assert!(
        shoal_workflow::load_uploaded(&w.yaml, origin).is_ok(),
        "{}",
        w.yaml
    );
    let problems = shoal_workflow::validate::structure(origin, &loaded.workflow);
    assert!(problems.is_empty(), "{problems:?}\n{}", w.yaml);
    loaded.workflow
}

fn by_name<'a>(workflows: &'a [ImportedWorkflow], name: &str) -> &'a ImportedWorkflow {
    workflows
        .iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no workflow {name}"))
}

fn local(wf: &WorkflowDefinition, task: &str) -> Vec<(String, ParamDirection, String, String)> {
    wf.task(task)
        .unwrap()
        .local_params
        .iter()
        .map(|p| (p.prop.clone(), p.direct, p.kind.clone(), p.value.clone()))
        .collect()
}

fn s(v: &str) -> String {
    v.to_owned()
}

#[test]
fn a_3_2_export_converts_to_definitions_that_load_with_every_value_mapped() {
    let import = convert(&fixture("ds32_export.json"), &Options::default()).unwrap();
    let names: Vec<&str> = import.workflows.iter().map(|w| w.name.as_str()).collect();
    // The child is second in the file but first here: the parent starts it.
    assert_eq!(names, ["etl_child", "daily_report"]);

    let child = load(by_name(&import.workflows, "etl_child"));
    assert_eq!(child.global_params["dt"], "$[yyyyMMdd]");
    assert_eq!(child.task("child_end").unwrap().deps, ["child_step"]);
    assert!(child.task("child_step").unwrap().deps.is_empty());

    let parent_import = by_name(&import.workflows, "daily_report");
    assert_eq!(parent_import.code, Some(11000000000001));
    assert!(parent_import.online);
    assert_eq!(parent_import.run_mode, RunMode::SerialWait);
    assert_eq!(parent_import.children, ["etl_child"]);
    assert_eq!(parent_import.depends_on, ["etl_child"]);
    let schedule = parent_import.schedule.as_ref().unwrap();
    assert_eq!(schedule.cron, "0 0 2 * * ? *");
    assert_eq!(schedule.timezone, "Asia/Shanghai");
    assert_eq!(schedule.start.as_deref(), Some("2024-01-01T00:00:00+08:00"));
    assert_eq!(schedule.end.as_deref(), Some("2124-01-01T00:00:00+08:00"));
    assert!(
        !schedule.online,
        "DolphinScheduler exports schedules offline"
    );

    let wf = load(parent_import);
    assert_eq!(wf.name, "daily_report");
    assert_eq!(wf.description, "Daily report: extract, load, branch");
    assert_eq!(wf.global_params.len(), 3);
    assert_eq!(wf.global_params["dt"], "$[yyyyMMdd-1]");
    assert_eq!(wf.global_params["env"], "prod");
    assert_eq!(wf.global_params["batch_size"], "500");
    assert_eq!(wf.schedule.as_deref(), Some("0 0 2 * * ? *"));
    assert_eq!(wf.timezone.as_deref(), Some("Asia/Shanghai"));
    assert_eq!(wf.start_time.as_deref(), Some("2024-01-01 00:00:00"));
    assert_eq!(wf.end_time.as_deref(), Some("2124-01-01 00:00:00"));
    assert_eq!(wf.failure_strategy, FailureStrategy::Continue);
    assert_eq!(wf.project, None);

    let extract = wf.task("extract").unwrap();
    assert_eq!(extract.task_type, "Shell");
    assert_eq!(extract.description, "pull the day's files");
    assert!(extract.deps.is_empty());
    assert_eq!(extract.priority, Priority::High);
    assert_eq!(extract.worker_group, "etl");
    assert_eq!(extract.task_group.as_deref(), Some("task-group-3"));
    assert_eq!(extract.delay_ms, 60_000);
    assert_eq!(extract.fail_retry_times, 2);
    assert_eq!(extract.retry_interval_ms, 180_000);
    assert_eq!(extract.timeout_ms, Some(600_000));
    assert_eq!(extract.timeout_strategy, TimeoutStrategy::Both);
    assert_eq!(extract.flag, Flag::Yes);
    assert_eq!(
        extract.params["command"],
        "#!/bin/bash\nset -e\necho \"extracting ${dt} for ${region}\"\necho '${setValue(rows=120)}'\n"
    );
    use ParamDirection::{In, Out};
    assert_eq!(
        local(&wf, "extract"),
        [
            (s("region"), In, s("VARCHAR"), s("eu-west")),
            (s("rows"), Out, s("INTEGER"), s("")),
        ]
    );

    let transform = wf.task("transform").unwrap();
    assert_eq!(transform.task_type, "Python");
    assert_eq!(transform.deps, ["extract"]);
    assert_eq!(transform.priority, Priority::Low);
    assert_eq!(
        (transform.fail_retry_times, transform.retry_interval_ms),
        (1, 0)
    );
    assert_eq!(
        transform.params["definition"],
        "import sys\nprint('rows:', ${rows})\nif ${rows} < 0:\n    sys.exit(1)\n"
    );
    assert_eq!(transform.timeout_ms, None);

    let load_task = wf.task("load").unwrap();
    assert_eq!(load_task.task_type, "Sql");
    assert_eq!(load_task.deps, ["transform"]);
    assert_eq!(load_task.params["datasource_name"], "datasource-7");
    assert_eq!(
        load_task.params["sql"],
        "insert into ${table}\nselect * from staging where dt = '${dt}'"
    );
    assert_eq!(load_task.params["sql_type"], "1");
    assert_eq!(
        load_task.params["pre_statements"],
        json!(["set names utf8mb4"])
    );
    assert_eq!(
        load_task.params["post_statements"],
        json!(["analyze table ${table}"])
    );
    assert_eq!(load_task.params["display_rows"], 10);
    assert!(!load_task.params.contains_key("segment_separator"));
    assert_eq!(load_task.timeout_ms, Some(1_800_000));
    assert_eq!(load_task.timeout_strategy, TimeoutStrategy::Fail);
    assert_eq!(
        local(&wf, "load"),
        [(s("table"), In, s("VARCHAR"), s("report_${dt}"))]
    );

    let check = wf.task("check").unwrap();
    assert_eq!(check.task_type, "Condition");
    assert_eq!(check.deps, ["load", "transform"]);
    assert_eq!(check.params["op"], "AND");
    assert_eq!(
        check.params["groups"],
        json!([{"op": "OR", "groups": [{"task": "load", "flag": true}, {"task": "transform", "flag": false}]}])
    );
    assert_eq!(check.params["success_task"], json!(["on_success"]));
    assert_eq!(check.params["failed_task"], json!(["on_failure"]));
    assert_eq!(wf.task("on_success").unwrap().deps, ["check"]);
    let on_failure = wf.task("on_failure").unwrap();
    assert_eq!(on_failure.deps, ["check"]);
    assert_eq!(on_failure.flag, Flag::No);

    let route = wf.task("route").unwrap();
    assert_eq!(route.task_type, "Switch");
    assert_eq!(route.deps, ["on_success"]);
    assert_eq!(
        route.params["condition"],
        json!([{"task": "big", "condition": "${rows} > 100"}, {"task": "small"}])
    );
    let big = wf.task("big").unwrap();
    assert_eq!(big.task_type, "SubWorkflow");
    assert_eq!(big.deps, ["route"]);
    assert_eq!(big.params["workflow_name"], "etl_child");
    assert_eq!(wf.task("small").unwrap().deps, ["route"]);

    let wait = wf.task("wait_child").unwrap();
    assert_eq!(wait.task_type, "Dependent");
    assert!(wait.deps.is_empty());
    assert_eq!(wait.timeout_ms, Some(7_200_000));
    assert_eq!(
        wait.params["dependence"],
        json!({"op": "AND", "groups": [
            {"op": "AND", "groups": [
                {"workflow_name": "etl_child", "dependent_date": "last1Days"},
                {"workflow_name": "etl_child", "dependent_task_name": "child_end", "dependent_date": "currentHour"}
            ]},
            {"op": "OR", "groups": [
                {"workflow_name": "etl_child", "dependent_task_name": "ALL", "dependent_date": "lastMonday"}
            ]}
        ]})
    );

    assert_eq!(
        import.warnings,
        [
            "workflow `daily_report`: accepted, not supported: types of global parameters batch_size (INTEGER) (Shoal's global parameters are text; their values are kept as written)",
            "workflow `daily_report`, task `extract`: DolphinScheduler task group id 3 is written as task_group `task-group-3`: the export names task groups by id only; configure a task group of that name, or map the id on import (`shoal import --task-group 3=NAME`, `task_groups=3=NAME` on the API)",
            "workflow `daily_report`, task `load`: DolphinScheduler datasource id 7 (MYSQL) is written as datasource_name `datasource-7`: the export names datasources by id only; create a Shoal datasource of that name, or map the id on import (`shoal import --datasource 7=NAME`, `datasources=7=NAME` on the API)",
        ]
    );
}

#[test]
fn the_3_3_naming_converts_to_the_same_definitions() {
    let v32 = convert(&fixture("ds32_export.json"), &Options::default()).unwrap();
    let v33 = convert(&fixture("ds33_export.json"), &Options::default()).unwrap();
    assert_eq!(v33, v32);
}

#[test]
fn options_name_the_project_datasources_and_task_groups() {
    let options = Options {
        project: Some("analytics".into()),
        datasources: [(7, "warehouse".to_owned())].into(),
        task_groups: [(3, "etl-slots".to_owned())].into(),
        // The exporting server ran in UTC: its midnight is 08:00 in Shanghai.
        export_timezone: Some("UTC".into()),
        ..Options::default()
    };
    let import = convert(&fixture("ds32_export.json"), &options).unwrap();
    let parent = by_name(&import.workflows, "daily_report");
    let wf = load(parent);
    assert_eq!(wf.project.as_deref(), Some("analytics"));
    assert_eq!(
        wf.task("load").unwrap().params["datasource_name"],
        "warehouse"
    );
    assert_eq!(
        wf.task("extract").unwrap().task_group.as_deref(),
        Some("etl-slots")
    );
    assert_eq!(wf.start_time.as_deref(), Some("2024-01-01 08:00:00"));
    let schedule = parent.schedule.as_ref().unwrap();
    assert_eq!(schedule.start.as_deref(), Some("2024-01-01T08:00:00+08:00"));
    assert!(
        !import
            .warnings
            .iter()
            .any(|w| w.contains("datasource id") || w.contains("task group id")),
        "{:#?}",
        import.warnings
    );
}

#[test]
fn a_create_definition_api_body_converts() {
    let import = convert(&fixture("api_body.json"), &Options::default()).unwrap();
    assert_eq!(import.workflows.len(), 1);
    let w = &import.workflows[0];
    assert_eq!(
        (w.name.as_str(), w.code, w.online),
        ("api_made", None, false)
    );
    assert_eq!(w.run_mode, RunMode::Parallel);
    assert!(w.schedule.is_none());
    let wf = load(w);
    assert_eq!(wf.description, "created through the API");
    assert_eq!(wf.global_params["who"], "team");
    let hello = wf.task("hello").unwrap();
    assert_eq!(hello.task_type, "Shell");
    assert_eq!(hello.description, "say hello");
    assert_eq!(hello.priority, Priority::Highest);
    // The UI sends these numbers as text.
    assert_eq!(
        (hello.fail_retry_times, hello.retry_interval_ms),
        (1, 120_000)
    );
    assert_eq!(hello.params["command"], "echo hello ${who}");
    assert_eq!(
        local(&wf, "hello"),
        [(s("who"), ParamDirection::In, s("VARCHAR"), s("world"))]
    );
    let report = wf.task("report").unwrap();
    assert_eq!(report.task_type, "Python");
    assert_eq!(report.deps, ["hello"]);
    assert_eq!(report.delay_ms, 120_000);
    assert_eq!(report.timeout_ms, Some(300_000));
    assert_eq!(report.timeout_strategy, TimeoutStrategy::Warn);
    assert_eq!(report.params["definition"], "print('report')");
    assert!(import.warnings.is_empty(), "{:#?}", import.warnings);
}

#[test]
fn task_types_shoal_lacks_fail_the_conversion_listing_each() {
    let err = convert(&fixture("unsupported_spark.json"), &Options::default()).unwrap_err();
    assert_eq!(
        err.problems(),
        [
            Problem::Unsupported {
                workflow: s("with_spark"),
                task: s("spark_job"),
                what: s("DolphinScheduler task type SPARK is not supported"),
            },
            Problem::Unsupported {
                workflow: s("with_spark"),
                task: s("sync"),
                what: s("DolphinScheduler task type DATAX is not supported"),
            },
        ]
    );
    let message = err.to_string();
    assert!(
        message.contains("workflow `with_spark`, task `spark_job`: DolphinScheduler task type SPARK is not supported"),
        "{message}"
    );
    assert!(message.contains("import with `partial`"), "{message}");
}

#[test]
fn a_partial_import_keeps_unsupported_tasks_as_skipped_placeholders() {
    let options = Options {
        partial: true,
        ..Options::default()
    };
    let import = convert(&fixture("unsupported_spark.json"), &options).unwrap();
    let wf = load(&import.workflows[0]);
    let spark = wf.task("spark_job").unwrap();
    assert_eq!(spark.task_type, "Noop");
    assert_eq!(spark.flag, Flag::No);
    assert_eq!(
        spark.description,
        "not imported: DolphinScheduler task type SPARK is not supported (was: aggregate with spark)"
    );
    assert_eq!(spark.deps, ["prepare"]);
    assert!(spark.params.is_empty(), "{:?}", spark.params);
    let sync = wf.task("sync").unwrap();
    assert_eq!((sync.task_type.as_str(), sync.flag), ("Noop", Flag::No));
    // The DAG stays whole: what came after the skipped tasks still runs after them.
    assert_eq!(wf.task("after").unwrap().deps, ["spark_job", "sync"]);
    assert_eq!(
        wf.task("prepare").unwrap().params["command"],
        "echo prepare"
    );
    assert_eq!(
        import.warnings,
        [
            "workflow `with_spark`, task `spark_job`: not imported: DolphinScheduler task type SPARK is not supported; it is a skipped (flag NO) Noop placeholder, so its downstream tasks still run",
            "workflow `with_spark`, task `sync`: not imported: DolphinScheduler task type DATAX is not supported; it is a skipped (flag NO) Noop placeholder, so its downstream tasks still run",
        ]
    );
}

#[test]
fn a_sub_process_naming_a_workflow_not_in_the_file_is_an_error() {
    for partial in [false, true] {
        let options = Options {
            partial,
            ..Options::default()
        };
        let err = convert(&fixture("dangling_sub_process.json"), &options).unwrap_err();
        assert_eq!(
            err.problems(),
            [Problem::UnknownReference {
                workflow: s("dangling"),
                task: Some(s("run_missing")),
                field: s("taskParams.processDefinitionCode"),
                kind: "workflow",
                code: 17999999999999,
            }]
        );
        assert_eq!(
            err.to_string(),
            "the DolphinScheduler export cannot be imported (1 problem):\n  - workflow `dangling`, task `run_missing`: `taskParams.processDefinitionCode` refers to workflow code 17999999999999, which is not in this export"
        );
    }
}

#[test]
fn malformed_input_is_refused_with_its_place() {
    let err = convert("[\n  {\"processDefinition\": {,}}\n]", &Options::default()).unwrap_err();
    match &err {
        ImportError::Json { line, column, .. } => assert_eq!((*line, *column), (2, 26)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("(line 2, column 26)"), "{err}");

    let err = convert("[{\"name\": \"x\"}]", &Options::default()).unwrap_err();
    assert!(
        matches!(&err, ImportError::NotAnExport(m) if m.contains("element 1 has none of processDefinition")),
        "{err}"
    );
    assert!(matches!(
        convert("42", &Options::default()),
        Err(ImportError::NotAnExport(_))
    ));

    let huge = " ".repeat(shoal_dolphin::MAX_INPUT_BYTES + 1);
    assert!(matches!(
        convert(&huge, &Options::default()),
        Err(ImportError::TooLarge { .. })
    ));
}

#[test]
fn too_many_tasks_are_refused_before_conversion() {
    let tasks: Vec<serde_json::Value> = (0..=shoal_dolphin::MAX_TASKS)
        .map(|i| json!({"code": i + 1, "name": format!("t{i}"), "taskType": "SHELL"}))
        .collect();
    let export = json!([{
        "processDefinition": {"code": 1, "name": "big"},
        "processTaskRelationList": [{"preTaskCode": 0, "postTaskCode": 1}],
        "taskDefinitionList": tasks,
    }]);
    let err = convert(&export.to_string(), &Options::default()).unwrap_err();
    assert_eq!(
        err,
        ImportError::TooMany {
            what: "tasks",
            count: shoal_dolphin::MAX_TASKS + 1,
            limit: shoal_dolphin::MAX_TASKS
        }
    );
}
