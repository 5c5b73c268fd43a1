//! Small exports built here, one concern each: what becomes a warning, what is a
//! problem and how it is named, and text that must survive the trip into YAML.

use std::path::Path;

use serde_json::{Value, json};
use shoal_dolphin::{Import, ImportError, Options, Problem, convert};
use shoal_workflow::{Flag, WorkflowDefinition};

/// A task as DolphinScheduler 3.2 exports it, with `over` merged in.
fn task(code: i64, name: &str, task_type: &str, params: Value, over: Value) -> Value {
    let mut t = json!({
        "code": code, "name": name, "version": 1, "description": "", "projectCode": 1,
        "taskType": task_type, "taskParams": params, "flag": "YES", "isCache": "NO",
        "taskPriority": "MEDIUM", "workerGroup": "default", "environmentCode": -1,
        "failRetryTimes": 0, "failRetryInterval": 1, "timeoutFlag": "CLOSE",
        "timeoutNotifyStrategy": null, "timeout": 0, "delayTime": 0, "taskGroupId": 0,
        "taskGroupPriority": 0, "cpuQuota": -1, "memoryMax": -1, "taskExecuteType": "BATCH"
    });
    for (k, v) in over.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

fn shell(code: i64, name: &str, script: &str) -> Value {
    task(
        code,
        name,
        "SHELL",
        json!({"localParams": [], "rawScript": script, "resourceList": []}),
        json!({}),
    )
}

/// A 3.2 export element: `tasks` in a chain, in the order given.
fn workflow(code: i64, name: &str, tasks: Vec<Value>) -> Value {
    let mut relations = Vec::new();
    let mut pre = 0;
    for t in &tasks {
        let post = t["code"].as_i64().unwrap();
        relations.push(json!({"name": "", "preTaskCode": pre, "postTaskCode": post,
            "processDefinitionCode": code, "conditionType": "NONE", "conditionParams": {}}));
        pre = post;
    }
    json!({
        "processDefinition": {"code": code, "name": name, "version": 1, "releaseState": "OFFLINE",
            "projectCode": 1, "description": "", "globalParams": "[]", "flag": "YES",
            "timeout": 0, "executionType": "PARALLEL"},
        "processTaskRelationList": relations,
        "taskDefinitionList": tasks,
        "schedule": null
    })
}

fn run(export: Value, partial: bool) -> Result<Import, ImportError> {
    convert(
        &export.to_string(),
        &Options {
            partial,
            ..Options::default()
        },
    )
}

fn load(import: &Import, name: &str) -> WorkflowDefinition {
    let w = import.workflows.iter().find(|w| w.name == name).unwrap();
    shoal_workflow::load_str(&w.yaml, Path::new("x.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", w.yaml))
        .workflow
}

fn messages(err: &ImportError) -> Vec<String> {
    err.problems().iter().map(ToString::to_string).collect()
}

#[test]
fn settings_shoal_cannot_act_on_are_warnings_naming_workflow_task_and_field() {
    let mut odd = shell(2, "odd", "echo odd");
    odd["isCache"] = json!("YES");
    odd["cpuQuota"] = json!(50);
    odd["taskGroupPriority"] = json!(3);
    odd["taskParams"]["initScript"] = json!("source env.sh");
    odd["taskParams"]["resourceList"] = json!([{"id": 1, "resourceName": "/lib/util.sh"}]);
    let mut export = json!([workflow(1, "w", vec![shell(1, "plain", "echo plain"), odd])]);
    export[0]["processDefinition"]["timeout"] = json!(30);
    export[0]["processDefinition"]["shinyNewField"] = json!("x");
    export[0]["schedule"] = json!({"crontab": "0 0 * * * ?", "timezoneId": "UTC",
        "warningType": "FAILURE", "warningGroupId": 2, "releaseState": "ONLINE"});
    let import = run(export, false).unwrap();
    assert_eq!(
        import.warnings,
        [
            "workflow `w`: accepted, not supported: `processDefinition.timeout` = 30 (a whole-workflow timeout in minutes; set `timeout` on tasks instead)",
            "workflow `w`: accepted, not supported: `processDefinition.shinyNewField` = x (a field this importer does not know)",
            "workflow `w`: accepted, not supported: `schedule.warningType` = FAILURE (alerts on the runs it starts; configure alerts with Shoal's alert channels)",
            "workflow `w`: accepted, not supported: `schedule.warningGroupId` = 2 (alert groups; configure alerts with Shoal's alert channels)",
            "workflow `w`, task `odd`: accepted, not supported: `taskGroupPriority` = 3 (priority inside a task group; tasks of a group are served by task priority)",
            "workflow `w`, task `odd`: accepted, not supported: `isCache` = YES (task result caching; the task runs every time)",
            "workflow `w`, task `odd`: accepted, not supported: `cpuQuota` = 50 (CPU quotas; the operator policy's process limits apply to every task)",
            "workflow `w`, task `odd`: accepted, not supported: `taskParams.resourceList` = [{\"id\":1,\"resourceName\":\"/lib/util.sh\"}] (DolphinScheduler's resource center; use `$FILE{...}` to bring a file's text in)",
            "workflow `w`, task `odd`: accepted, not supported: `taskParams.initScript` = source env.sh (a field this importer does not know)",
        ]
    );
    let w = &import.workflows[0];
    assert!(w.schedule.as_ref().unwrap().online);
    let wf = load(&import, "w");
    assert_eq!(wf.task("odd").unwrap().deps, ["plain"]);
    assert_eq!(wf.schedule.as_deref(), Some("0 0 * * * ?"));
}

#[test]
fn dependent_settings_shoal_lacks_are_warnings_or_unsupported() {
    let dependent = |date: &str, passing: bool| {
        task(
            3,
            "wait",
            "DEPENDENT",
            json!({"localParams": [], "dependence": {
                "relation": "AND", "checkInterval": 30, "failurePolicy": "DEPENDENT_FAILURE_WAITING",
                "failureWaitingTime": 15,
                "dependTaskList": [{"relation": "AND", "dependItemList": [
                    {"projectCode": 1, "definitionCode": 10, "depTaskCode": 11, "cycle": "month",
                     "dateValue": date, "parameterPassing": passing}]}]}}),
            json!({}),
        )
    };
    let export = |date: &str| {
        json!([
            workflow(10, "upstream", vec![shell(11, "produce", "echo 1")]),
            workflow(20, "down", vec![dependent(date, true)]),
        ])
    };
    let import = run(export("lastMonthEnd"), false).unwrap();
    assert_eq!(
        import.warnings,
        [
            "workflow `down`, task `wait`: accepted, not supported: `taskParams.dependence.dependTaskList[0].dependItemList[0].parameterPassing` = true (passing the dependency's parameters on); Shoal's Dependent passes none",
            "workflow `down`, task `wait`: accepted, not supported: `taskParams.dependence.checkInterval` = 30 (how often, in seconds, to look again; Shoal's Dependent looks as its host polls it)",
            "workflow `down`, task `wait`: accepted, not supported: `taskParams.dependence.failurePolicy` = DEPENDENT_FAILURE_WAITING (waiting 15 more minutes after a dependency failed); Shoal's Dependent fails at once, and the task's `timeout` bounds its wait",
        ]
    );
    let wf = load(&import, "down");
    assert_eq!(
        wf.task("wait").unwrap().params["dependence"]["groups"][0]["groups"][0],
        json!({"workflow_name": "upstream", "dependent_task_name": "produce", "dependent_date": "lastMonthEnd"})
    );
    assert_eq!(import.workflows[1].depends_on, ["upstream"]);

    // A cycle Shoal's Dependent cannot wait for: unsupported, a placeholder with partial.
    let err = run(export("thisMonthBegin"), false).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "workflow `down`, task `wait`: `taskParams.dependence.dependTaskList[0].dependItemList[0].dateValue` = thisMonthBegin (Shoal's Dependent has no such date cycle)"
        ]
    );
    let import = run(export("thisMonthBegin"), true).unwrap();
    let wait = load(&import, "down").task("wait").unwrap().clone();
    assert_eq!((wait.task_type.as_str(), wait.flag), ("Noop", Flag::No));
    assert!(import.workflows[1].depends_on.is_empty());

    // One that is no cycle at all is a problem either way.
    let err = run(export("fortnight"), true).unwrap_err();
    assert!(
        messages(&err)[0].contains("`fortnight` is not a date cycle"),
        "{err}"
    );
}

#[test]
fn references_to_codes_not_in_the_export_name_task_field_and_code() {
    let cond = task(
        2,
        "cond",
        "CONDITIONS",
        json!({"dependence": {"relation": "AND", "dependTaskList": [{"relation": "AND",
                "dependItemList": [{"depTaskCode": 99, "status": "SUCCESS"}]}]},
               "conditionResult": {"successNode": [1], "failedNode": [98]}}),
        json!({}),
    );
    let wait = task(
        3,
        "wait",
        "DEPENDENT",
        json!({"dependence": {"relation": "AND", "dependTaskList": [{"relation": "AND",
                "dependItemList": [{"definitionCode": 1, "depTaskCode": 77, "dateValue": "today"},
                                   {"definitionCode": 5, "depTaskCode": 0, "dateValue": "today"}]}]}}),
        json!({}),
    );
    let mut export = json!([workflow(1, "w", vec![shell(1, "a", "echo"), cond, wait])]);
    export[0]["processTaskRelationList"]
        .as_array_mut()
        .unwrap()
        .push(json!({"preTaskCode": 55, "postTaskCode": 1}));
    let err = run(export, true).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "workflow `w`: `processTaskRelationList[3].preTaskCode` refers to task code 55, which is not in this export",
            "workflow `w`, task `cond`: `taskParams.dependence.dependTaskList[0].dependItemList[0].depTaskCode` refers to task code 99, which is not in this export",
            "workflow `w`, task `cond`: `taskParams.conditionResult.failedNode[0]` refers to task code 98, which is not in this export",
            "workflow `w`, task `wait`: `taskParams.dependence.dependTaskList[0].dependItemList[0].depTaskCode` refers to task code 77, which is not in this export",
            "workflow `w`, task `wait`: `taskParams.dependence.dependTaskList[0].dependItemList[1].definitionCode` refers to workflow code 5, which is not in this export",
        ]
    );
}

#[test]
fn missing_parts_name_the_workflow_and_field() {
    let mut no_script = shell(1, "a", "");
    no_script["taskParams"]
        .as_object_mut()
        .unwrap()
        .remove("rawScript");
    let mut no_code = shell(9, "b", "echo");
    no_code.as_object_mut().unwrap().remove("code");
    let export = json!([
        workflow(1, "w", vec![no_script]),
        {"processDefinition": {"code": 2}, "processTaskRelationList": [], "taskDefinitionList": []},
        {"processDefinition": {"code": 3, "name": "no_type"},
         "processTaskRelationList": [{"preTaskCode": 0, "postTaskCode": 4}],
         "taskDefinitionList": [{"code": 4, "name": "t"}, no_code]},
    ]);
    let err = run(export, false).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "workflow `#2`: missing `processTaskRelationList`",
            "workflow `#2`: missing `taskDefinitionList`",
            "workflow `w`, task `a`: missing `taskParams.rawScript`",
            "workflow `#2`: missing `processDefinition.name`",
            "workflow `no_type`, task `t`: missing `taskType`",
            "workflow `no_type`, task `b`: missing `code`",
        ]
    );
}

#[test]
fn sub_workflows_starting_each_other_in_a_cycle_are_refused() {
    let sub = |code: i64, name: &str, target: i64| {
        task(
            code,
            name,
            "SUB_PROCESS",
            json!({"processDefinitionCode": target}),
            json!({}),
        )
    };
    let export = json!([
        workflow(1, "a", vec![sub(11, "to_b", 2)]),
        workflow(2, "b", vec![sub(21, "to_c", 3)]),
        workflow(3, "c", vec![sub(31, "to_a", 1)]),
        workflow(4, "d", vec![sub(41, "to_a", 1)]),
    ]);
    let err = run(export, false).unwrap_err();
    assert_eq!(
        err.problems(),
        [Problem::SubWorkflowCycle {
            workflows: ["a", "b", "c", "a"].map(String::from).to_vec()
        }]
    );
}

#[test]
fn duplicate_names_and_codes_are_problems() {
    let export = json!([
        workflow(
            1,
            "same",
            vec![shell(1, "t", "echo"), shell(1, "t", "echo")]
        ),
        workflow(1, "same", vec![shell(2, "u", "echo")]),
    ]);
    let err = run(export, false).unwrap_err();
    let m = messages(&err);
    assert!(
        m.contains(&"workflow `same`: two tasks are named `t`".to_owned()),
        "{m:#?}"
    );
    assert!(
        m.contains(&"two workflows are named `same`".to_owned()),
        "{m:#?}"
    );
    assert!(
        m.contains(&"two workflows have the code 1 (`same` and `same`)".to_owned()),
        "{m:#?}"
    );
}

#[test]
fn a_bad_schedule_is_a_problem_at_its_field() {
    let with = |schedule: Value| {
        let mut e = json!([workflow(1, "w", vec![shell(1, "a", "echo")])]);
        e[0]["schedule"] = schedule;
        run(e, false)
    };
    let err = with(json!({"crontab": "0 0 2 * * ?", "timezoneId": "Mars/Olympus"})).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "workflow `w`: `schedule.timezoneId`: unknown time zone `Mars/Olympus` (expected an IANA name such as `Asia/Shanghai` or `UTC`)"
        ]
    );
    let err = with(json!({"crontab": "0 0 99 * * ?", "timezoneId": "UTC"})).unwrap_err();
    assert!(
        messages(&err)[0]
            .starts_with("workflow `w`: `schedule.crontab`: cron expression `0 0 99 * * ?`"),
        "{err}"
    );
    let err = with(json!({"crontab": "0 0 2 * * ?", "timezoneId": "UTC",
        "startTime": "2025-01-01 00:00:00", "endTime": "2024-01-01 00:00:00"}))
    .unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "workflow `w`: `schedule.startTime`: the window starts (2025-01-01 00:00:00) after it ends (2024-01-01 00:00:00)"
        ]
    );
    let err = with(
        json!({"crontab": "0 0 2 * * ?", "timezoneId": "Europe/Berlin",
        "startTime": "2024-03-31 02:30:00"}),
    )
    .unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "workflow `w`: `schedule.startTime`: `2024-03-31 02:30:00` does not exist in Europe/Berlin (clocks skip it)"
        ]
    );
}

#[test]
fn a_switch_branch_to_several_tasks_is_unsupported() {
    let switch = task(
        1,
        "sw",
        "SWITCH",
        json!({"switchResult": {"dependTaskList": [{"condition": "1 > 0", "nextNode": [2, 3]}],
                                "nextNode": []}}),
        json!({}),
    );
    let export = json!([workflow(
        1,
        "w",
        vec![switch, shell(2, "b", "echo"), shell(3, "c", "echo")]
    )]);
    let err = run(export, false).unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "workflow `w`, task `sw`: `taskParams.switchResult.dependTaskList[0].nextNode` leads to 2 tasks (Shoal's Switch follows one task per branch)"
        ]
    );
}

#[test]
fn scripts_keep_every_character_through_yaml_and_the_loader() {
    let scripts = [
        "  indented first line\n\tand a tab\n",
        "windows\r\nline ends\r\n",
        "trailing blank lines\n\n\n",
        "no newline at the end",
        "- looks like a list\n# and a comment\nkey: value\n",
        "{\"json\": [1, 2]}\n[x]\n",
        "中文脚本 ${dt}\n",
        "blank lines with spaces\n   \n\tafter\n",
        "",
    ];
    let tasks: Vec<Value> = scripts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let code = i as i64 + 1;
            if s.is_empty() {
                // An empty shell script is a problem; use the Python task for the rest.
                task(
                    code,
                    &format!("t{i}"),
                    "PYTHON",
                    json!({"rawScript": "pass"}),
                    json!({}),
                )
            } else {
                shell(code, &format!("t{i}"), s)
            }
        })
        .collect();
    let import = run(json!([workflow(1, "w", tasks)]), false).unwrap();
    let wf = load(&import, "w");
    for (i, s) in scripts.iter().enumerate() {
        let t = wf.task(&format!("t{i}")).unwrap();
        if s.is_empty() {
            assert_eq!(t.params["definition"], "pass");
        } else {
            assert_eq!(
                t.params["command"], *s,
                "t{i}\n{}",
                import.workflows[0].yaml
            );
        }
    }
    assert!(
        import.workflows[0].yaml.contains("command: |\n"),
        "scripts are literal blocks where they can be:\n{}",
        import.workflows[0].yaml
    );
}

#[test]
fn text_the_loader_would_read_as_a_reference_is_warned_about() {
    let import = run(
        json!([workflow(1, "w", vec![shell(1, "a", "echo $ENV{HOME}")])]),
        false,
    )
    .unwrap();
    assert_eq!(
        import.warnings,
        [
            "workflow `w`: `tasks[0].command` holds `$ENV{`, which Shoal's loader reads as a file, environment or workflow reference: the definition will not load until it is rewritten"
        ]
    );
}

#[test]
fn task_params_written_as_text_and_single_objects_are_read() {
    // Older versions and API clients write taskParams as a string of JSON; one workflow
    // may come as an object rather than a list of one.
    let mut t = shell(1, "a", "unused");
    t["taskParams"] = json!(
        r#"{"localParams":[{"prop":"x","direct":"OUT","type":"VARCHAR","value":""}],"rawScript":"echo x"}"#
    );
    let import = run(workflow(1, "w", vec![t]), false).unwrap();
    let wf = load(&import, "w");
    let a = wf.task("a").unwrap();
    assert_eq!(a.params["command"], "echo x");
    assert_eq!(a.local_params[0].prop, "x");

    let mut bad = shell(1, "a", "unused");
    bad["taskParams"] = json!("{not json");
    let err = run(workflow(1, "w", vec![bad]), false).unwrap_err();
    assert!(
        messages(&err)[0]
            .starts_with("workflow `w`, task `a`: `taskParams`: the text is not valid JSON"),
        "{err}"
    );
}

#[test]
fn http_and_flink_tasks_become_http_and_flink() {
    let http = task(
        2,
        "call",
        "HTTP",
        json!({"localParams": [], "url": "http://127.0.0.1:9/x", "httpMethod": "POST",
               "httpParams": [{"prop": "a", "httpParametersType": "BODY", "value": "1"},
                              {"prop": "t", "httpParametersType": "HEADERS", "value": "x"}],
               "httpCheckCondition": "STATUS_CODE_CUSTOM", "condition": "201",
               "connectTimeout": 1000, "socketTimeout": "2000", "resourceList": []}),
        json!({}),
    );
    let flink = task(
        3,
        "job",
        "FLINK",
        json!({"localParams": [], "mainClass": "a.Main", "mainJar": {"id": 7, "resourceName": "jobs/a.jar"},
               "mainArgs": "--x 1", "parallelism": 2, "appName": "a", "programType": "JAVA",
               "deployMode": "cluster", "flinkVersion": ">=1.10", "slot": 1,
               "resourceList": []}),
        json!({"taskExecuteType": "STREAM"}),
    );
    let import = run(workflow(1, "w", vec![http, flink]), false).unwrap();
    let wf = load(&import, "w");
    let call = wf.task("call").unwrap();
    assert_eq!(call.task_type, "Http");
    assert_eq!(call.params["http_method"], "POST");
    assert_eq!(
        call.params["http_params"][1]["httpParametersType"],
        "HEADERS"
    );
    assert_eq!(call.params["condition"], "201");
    assert_eq!(call.params["socket_timeout"], 2000);
    let job = wf.task("job").unwrap();
    assert_eq!(job.task_type, "Flink");
    assert_eq!(job.params["main_package"], "jobs/a.jar");
    assert_eq!(job.params["run_mode"], "STREAM");
    assert_eq!(job.params["parallelism"], 2);
    let warned = import.warnings.join("\n");
    assert!(
        warned.contains("deployMode") && warned.contains("session cluster"),
        "{warned}"
    );
    assert!(!warned.contains("stream tasks"), "{warned}");
    // A PYTHON Flink program is a task Shoal cannot run.
    let py = task(
        4,
        "py",
        "FLINK",
        json!({"mainClass": "", "mainJar": {"resourceName": "a.py"}, "programType": "PYTHON"}),
        json!({}),
    );
    let err = run(workflow(5, "p", vec![py]), false).unwrap_err();
    assert!(
        messages(&err)
            .iter()
            .any(|m| m.contains("programType PYTHON")),
        "{:?}",
        messages(&err)
    );
}
