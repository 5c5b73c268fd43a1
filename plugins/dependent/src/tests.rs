//! Parameter shapes, and the pure AND/OR evaluation fed from a table of runs (the
//! host's real `last-run` is exercised end to end in tests/e2e/engine.rs).

use super::*;
use shoal_sdk::serde_json;

/// 2024-03-06 (a Wednesday) 10:30 UTC.
const SCHEDULE: i64 = 1_709_721_000_000;

/// DolphinScheduler's Python SDK example (yaml_define/Dependent.yaml) as the loader
/// hands it over: `denpendence:` left empty, `op` and `groups` beside it.
const DS_EXAMPLE: &str = r#"{
    "denpendence": null,
    "op": "and",
    "groups": [
        {"op": "or", "groups": [
            {"project_name": "pydolphin", "process_definition_name": "task_dependent_external",
             "dependent_task_name": "task_1"},
            {"project_name": "pydolphin", "process_definition_name": "task_dependent_external",
             "dependent_task_name": "task_2"}
        ]},
        {"op": "and", "groups": [
            {"project_name": "pydolphin", "process_definition_name": "task_dependent_external",
             "dependent_task_name": "task_1", "dependent_date": "LAST_WEDNESDAY"},
            {"project_name": "pydolphin", "process_definition_name": "task_dependent_external",
             "dependent_task_name": "task_2", "dependent_date": "last24Hours"}
        ]}
    ]
}"#;

fn params(json: &str) -> Params {
    shoal_sdk::parse_params(json).unwrap()
}

fn resolved(json: &str) -> Resolved {
    resolve(&params(json)).unwrap()
}

fn field_error(json: &str) -> FieldError {
    match shoal_sdk::parse_params::<Params>(json) {
        Ok(p) => check(&p)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{json} has no error")),
        Err(e) => e,
    }
}

/// Newest runs as (workflow, task, interval as displayed, state), for the evaluation.
/// Records every question it is asked.
struct Runs {
    runs: Vec<(&'static str, Option<&'static str>, String, &'static str)>,
    asked: Vec<Query>,
}

impl Runs {
    fn new(runs: &[(&'static str, Option<&'static str>, &str, &'static str)]) -> Self {
        Self {
            runs: runs
                .iter()
                .map(|(w, t, i, s)| (*w, *t, (*i).to_owned(), *s))
                .collect(),
            asked: Vec::new(),
        }
    }

    fn evaluate(&mut self, resolved: &Resolved) -> Outcome {
        evaluate(resolved, SCHEDULE, &mut |q| {
            self.asked.push(q.clone());
            Ok(self
                .runs
                .iter()
                .find(|(w, t, i, _)| {
                    *w == q.workflow
                        && t.map(str::to_owned) == q.task
                        && *i == q.interval.to_string()
                })
                .map(|(_, _, _, s)| (*s).to_owned()))
        })
        .unwrap()
    }
}

/// One item on workflow `wf` (task `task`, if any) over `date`.
fn single(task: Option<&str>, date: &str) -> Resolved {
    let task = task
        .map(|t| format!(r#","dependent_task_name":"{t}""#))
        .unwrap_or_default();
    resolved(&format!(
        r#"{{"dependence":{{"groups":[{{"groups":[
            {{"process_definition_name":"wf"{task},"dependent_date":"{date}"}}]}}]}}}}"#
    ))
}

fn waiting(outcome: &Outcome) -> &[String] {
    match outcome {
        Outcome::Waiting(what) => what,
        other => panic!("expected waiting, got {other:?}"),
    }
}

fn failed(outcome: &Outcome) -> &[String] {
    match outcome {
        Outcome::Failed(why) => why,
        other => panic!("expected failed, got {other:?}"),
    }
}

#[test]
fn the_dolphinscheduler_example_parses_in_both_forms() {
    let beside = resolved(DS_EXAMPLE);
    assert_eq!(beside.prefix, "");
    assert_eq!(beside.dependence.op, Op::And);
    assert_eq!(beside.dependence.groups.len(), 2);
    assert_eq!(beside.dependence.groups[0].op, Op::Or);
    let item = &beside.dependence.groups[1].groups[0];
    assert_eq!(item.project(), Some("pydolphin"));
    assert_eq!(item.process_definition_name, "task_dependent_external");
    assert_eq!(item.task(), Some("task_1"));
    assert_eq!(
        item.dependent_date,
        Cycle::LastWeekday(chrono::Weekday::Wed)
    );
    assert_eq!(
        beside.dependence.groups[1].groups[1].dependent_date,
        Cycle::Last24Hours
    );
    // Without `dependent_date`, DolphinScheduler's default: today.
    assert_eq!(
        beside.dependence.groups[0].groups[0].dependent_date,
        Cycle::Today
    );
    assert!(check(&params(DS_EXAMPLE)).is_empty());
    // The loader hands an empty YAML value over as an empty string.
    let as_loaded = DS_EXAMPLE.replace(r#""denpendence": null"#, r#""denpendence": """#);
    assert_eq!(resolved(&as_loaded).dependence.groups.len(), 2);

    // The same groups nested, under either spelling.
    let groups: serde_json::Value = serde_json::from_str(DS_EXAMPLE).unwrap();
    for key in ["denpendence", "dependence"] {
        let nested = serde_json::json!({key: {"op": "AND", "groups": groups["groups"]}});
        let r = resolved(&nested.to_string());
        assert_eq!(r.prefix, "dependence.");
        assert_eq!(r.dependence.groups.len(), 2);
        assert_eq!(
            r.dependence.groups[1].groups[1].dependent_date,
            Cycle::Last24Hours
        );
    }
}

#[test]
fn item_fields_as_dolphinscheduler_writes_them() {
    let r = resolved(
        r#"{"dependence":{"groups":[{"groups":[
            {"workflow_name":"a","dependent_task_name":0},
            {"process_definition_name":"b","dependent_task_name":"ALL","project_name":""},
            {"process_definition_name":2024,"dependent_task_name":"","project_name":null},
            {"process_definition_name":"d","dependent_task_name":"load"}
        ]}]}}"#,
    );
    let items = &r.dependence.groups[0].groups;
    assert_eq!(items[0].process_definition_name, "a");
    assert_eq!(items[0].task(), None, "0 is all tasks");
    assert_eq!(items[1].task(), None, "ALL is all tasks");
    assert_eq!(items[1].project(), None, "empty is this project");
    assert_eq!(items[2].process_definition_name, "2024");
    assert_eq!(items[2].task(), None);
    assert_eq!(items[2].project(), None);
    assert_eq!(items[3].task(), Some("load"));
}

#[test]
fn bad_params_name_the_field() {
    let e = field_error("{}");
    assert_eq!(e.field, "dependence");
    assert!(e.message.contains("no dependencies"), "{}", e.message);

    let e = field_error(r#"{"dependence":{"groups":[]},"groups":[]}"#);
    assert_eq!(e.field, "groups");
    assert!(e.message.contains("not both"), "{}", e.message);
    let e = field_error(r#"{"dependence":{"groups":[]},"op":"or"}"#);
    assert_eq!(e.field, "op");

    let e = field_error(r#"{"dependence":{"groups":[]}}"#);
    assert_eq!(e.field, "dependence.groups");
    let e = field_error(r#"{"groups":[{"op":"or"}]}"#);
    assert_eq!(e.field, "groups[0].groups");
    let e = field_error(r#"{"groups":[{"groups":[{"process_definition_name":" "}]}]}"#);
    assert_eq!(e.field, "groups[0].groups[0].process_definition_name");

    let e = field_error(r#"{"groups":[{"groups":[{"workflow":"a"}]}]}"#);
    assert_eq!(e.field, "groups[0].groups[0].workflow");
    let e = field_error(
        r#"{"groups":[{"groups":[{"process_definition_name":"a","dependent_date":"last5Days"}]}]}"#,
    );
    assert_eq!(e.field, "groups[0].groups[0].dependent_date");
    assert!(
        e.message.contains("unknown dependent_date `last5Days`") && e.message.contains("last7Days"),
        "{}",
        e.message
    );
    let e = field_error(r#"{"dependence":{"op":"xor","groups":[]}}"#);
    assert_eq!(e.field, "dependence.op");
    assert!(e.message.contains("expected AND or OR"), "{}", e.message);
    let e =
        field_error(r#"{"denpendence":{"groups":[{"groups":[{"workflow_name":"a","day":1}]}]}}"#);
    assert_eq!(e.field, "denpendence.groups[0].groups[0].day");
    let e = field_error(r#"{"dependence":"a and b"}"#);
    assert_eq!(e.field, "dependence");
    assert!(
        e.message.contains("a mapping with `op` and `groups`"),
        "{}",
        e.message
    );
}

#[test]
fn and_or_combination() {
    use Outcome::*;
    let f = |s: &str| Failed(vec![s.to_owned()]);
    let w = |s: &str| Waiting(vec![s.to_owned()]);
    // AND: a failure decides, then waiting, then met.
    assert_eq!(Outcome::combine(Op::And, vec![Met, Met]), Met);
    assert_eq!(Outcome::combine(Op::And, vec![Met, w("a")]), w("a"));
    assert_eq!(Outcome::combine(Op::And, vec![w("a"), f("b")]), f("b"));
    assert_eq!(
        Outcome::combine(Op::And, vec![f("a"), Met, f("b")]),
        Failed(vec!["a".into(), "b".into()])
    );
    // OR: a success decides, then waiting, then failed.
    assert_eq!(Outcome::combine(Op::Or, vec![f("a"), Met]), Met);
    assert_eq!(Outcome::combine(Op::Or, vec![f("a"), w("b")]), w("b"));
    assert_eq!(
        Outcome::combine(Op::Or, vec![f("a"), f("b")]),
        Failed(vec!["a".into(), "b".into()])
    );
    // Empty: met either way.
    assert_eq!(Outcome::combine(Op::And, vec![]), Met);
    assert_eq!(Outcome::combine(Op::Or, vec![]), Met);
}

#[test]
fn the_example_is_met_when_the_runs_succeeded() {
    let last24: Vec<String> = (1..24)
        .map(|h| format!("2024-03-05 {h:02}:00-{:02}:00 UTC", (h + 1) % 24))
        .chain(["2024-03-06 00:00-01:00 UTC".to_owned()])
        .collect();
    let mut runs = vec![
        (
            "task_dependent_external",
            Some("task_1"),
            "2024-03-06".to_owned(),
            "succeeded",
        ),
        (
            "task_dependent_external",
            Some("task_1"),
            "2024-02-28".to_owned(),
            "forced-success",
        ),
    ];
    runs.extend(last24.iter().map(|i| {
        (
            "task_dependent_external",
            Some("task_2"),
            i.clone(),
            "succeeded",
        )
    }));
    let mut host = Runs {
        runs,
        asked: Vec::new(),
    };
    let r = resolved(DS_EXAMPLE);
    assert_eq!(host.evaluate(&r), Outcome::Met);
    // task_2 today is asked even though task_1 already met the OR, so messages are
    // complete; every question names the project and the task.
    assert!(
        host.asked
            .iter()
            .all(|q| q.project.as_deref() == Some("pydolphin"))
    );
    assert_eq!(host.asked.len(), 2 + 1 + 24);

    // One hour of task_2's last 24 failed: the AND group, and so the whole, failed.
    host.runs
        .retain(|(_, _, i, _)| i != "2024-03-05 13:00-14:00 UTC");
    host.runs.push((
        "task_dependent_external",
        Some("task_2"),
        "2024-03-05 13:00-14:00 UTC".to_owned(),
        "failed",
    ));
    let outcome = host.evaluate(&r);
    assert_eq!(
        failed(&outcome),
        [
            "groups[1].groups[1] (workflow `task_dependent_external` (project `pydolphin`), task `task_2`, last24Hours): the run for 2024-03-05 13:00-14:00 UTC is failed"
        ]
    );
}

#[test]
fn no_run_yet_or_a_running_one_is_awaited() {
    let r = single(Some("load"), "last2Days");
    let mut host = Runs::new(&[("wf", Some("load"), "2024-03-04", "succeeded")]);
    let outcome = host.evaluate(&r);
    assert_eq!(
        waiting(&outcome),
        [
            "dependence.groups[0].groups[0] (workflow `wf`, task `load`, last2Days): no run for 2024-03-05 yet"
        ]
    );

    let mut host = Runs::new(&[
        ("wf", Some("load"), "2024-03-04", "succeeded"),
        ("wf", Some("load"), "2024-03-05", "running"),
    ]);
    let outcome = host.evaluate(&r);
    assert!(waiting(&outcome)[0].ends_with("the run for 2024-03-05 is running"));

    let mut host = Runs::new(&[
        ("wf", Some("load"), "2024-03-04", "succeeded"),
        ("wf", Some("load"), "2024-03-05", "succeeded"),
    ]);
    assert_eq!(host.evaluate(&r), Outcome::Met);
}

#[test]
fn a_failed_interval_decides_even_while_another_is_awaited() {
    let r = single(None, "last2Days");
    let mut host = Runs::new(&[("wf", None, "2024-03-04", "stopped")]);
    let outcome = host.evaluate(&r);
    assert_eq!(
        failed(&outcome),
        [
            "dependence.groups[0].groups[0] (workflow `wf`, last2Days): the run for 2024-03-04 is stopped"
        ]
    );
    // The whole workflow was asked about: no task in the question.
    assert!(
        host.asked
            .iter()
            .all(|q| q.task.is_none() && q.project.is_none())
    );
}

#[test]
fn how_states_count() {
    for (state, expect) in [
        ("succeeded", "met"),
        ("forced-success", "met"),
        ("failed", "failed"),
        ("killed", "failed"),
        ("stopped", "failed"),
        ("skipped", "failed"),
        ("running", "waiting"),
        ("submitted", "waiting"),
        ("paused", "waiting"),
        ("ready-stop", "waiting"),
        ("retrying", "waiting"),
    ] {
        let mut host = Runs::new(&[("wf", Some("t"), "2024-03-06", state)]);
        let got = match host.evaluate(&single(Some("t"), "today")) {
            Outcome::Met => "met",
            Outcome::Failed(_) => "failed",
            Outcome::Waiting(_) => "waiting",
        };
        assert_eq!(got, expect, "{state}");
    }
}

#[test]
fn repeated_questions_are_asked_once() {
    let r = resolved(
        r#"{"groups":[
            {"op":"or","groups":[{"process_definition_name":"wf"},{"process_definition_name":"wf"}]},
            {"groups":[{"process_definition_name":"wf","dependent_date":"today"}]}
        ]}"#,
    );
    let mut host = Runs::new(&[("wf", None, "2024-03-06", "succeeded")]);
    assert_eq!(host.evaluate(&r), Outcome::Met);
    assert_eq!(host.asked.len(), 1);
}

#[test]
fn a_host_error_ends_the_check() {
    let err = evaluate(&single(None, "today"), SCHEDULE, &mut |_| {
        Err("only available inside a workflow run".into())
    })
    .unwrap_err();
    assert_eq!(err, "only available inside a workflow run");
}

#[test]
fn conclusions_and_long_listings() {
    match conclude(&Outcome::Met) {
        Poll::Done(done) => assert!(done.succeeded, "{}", done.message),
        other => panic!("{other:?}"),
    }
    let many: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    match conclude(&Outcome::Waiting(many.clone())) {
        Poll::Running(note) => assert_eq!(note, "waiting for w0; w1; w2; w3; w4; and 3 more"),
        other => panic!("{other:?}"),
    }
    match conclude(&Outcome::Failed(many[..2].to_vec())) {
        Poll::Done(done) => {
            assert!(!done.succeeded);
            assert_eq!(done.message, "a dependency failed: w0; w1");
        }
        other => panic!("{other:?}"),
    }
}
