//! Uploads never read the loading machine; the client's rendering reads it instead.

use std::path::Path;

use crate::load::{UploadError, load_file, load_uploaded, render_resolved};

fn upload_err(text: &str) -> Vec<crate::Diagnostic> {
    match load_uploaded(text, Path::new("body.yaml")) {
        Err(UploadError::References(d)) => d.0,
        other => panic!("expected a refused reference, got {other:?}"),
    }
}

#[test]
fn uploads_refuse_every_reference_with_line_and_field() {
    let problems = upload_err(
        "workflow:\n  name: w\n  param:\n    key: $FILE{\"/etc/hostname\"}\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo $ENV{HOME} and $WORKFLOW{\"x.yaml\"}\n",
    );
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{text:#?}");
    assert_eq!(problems[0].line, 4);
    assert_eq!(problems[0].field.as_deref(), Some("workflow.param.key"));
    assert!(text[0].contains("$FILE{\"/etc/hostname\"}"), "{}", text[0]);
    assert!(
        !text[0]
            .contains(&std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "\u{0}".into()))
    );
    assert_eq!(problems[1].line, 8);
    assert_eq!(problems[1].field.as_deref(), Some("tasks[0] `a`.command"));
    assert!(text[1].contains("$ENV{HOME}") && text[2].contains("$WORKFLOW"));
    // The older spelling and JSON bodies are refused too.
    assert_eq!(
        upload_err(r#"{"workflow": {"name": "w"}, "tasks": [{"name": "a", "task_type": "SubWorkflow", "workflow_name": "$PROCESS{\"b.yaml\"}"}]}"#).len(),
        1
    );
}

#[test]
fn uploads_without_references_load_as_before() {
    let wf = load_uploaded(
        "workflow:\n  name: w\ntasks:\n  - name: a\n    task_type: Shell\n    command: echo ${x}\n",
        Path::new("body.yaml"),
    )
    .unwrap();
    assert_eq!(wf.workflow.name, "w");
    let bad = load_uploaded("workflow:\n  nme: w\ntasks: []\n", Path::new("body.yaml"));
    assert!(matches!(bad, Err(UploadError::Invalid(_))), "{bad:?}");
}

#[test]
fn rendering_resolves_on_the_client_and_loads_to_the_same_definition() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.sql"), "select 1;\nselect \"2\";\n").unwrap();
    std::fs::write(
        dir.path().join("child.yaml"),
        "workflow:\n  name: child-flow\ntasks:\n  - name: c\n    task_type: Shell\n    command: echo child\n",
    )
    .unwrap();
    let main = dir.path().join("main.yaml");
    // SAFETY: tests in this crate do not read this variable concurrently.
    unsafe { std::env::set_var("SHOAL_RENDER_TEST", "from-env") };
    std::fs::write(
        &main,
        "workflow:\n  name: main\n  param:\n    n: 3\n    flag: true\n    quoted: \"3\"\n    env: $ENV{SHOAL_RENDER_TEST}\ntasks:\n  - name: a\n    task_type: Shell\n    command: $FILE{\"q.sql\"}\n    fail_retry_times: 2\n  - name: sub\n    task_type: SubWorkflow\n    deps: [a]\n    workflow_name: $WORKFLOW{\"child.yaml\"}\n",
    )
    .unwrap();
    let json = render_resolved(&main)
        .unwrap()
        .expect("references to render");
    assert!(!json.contains("$FILE") && !json.contains("$ENV") && !json.contains("$WORKFLOW"));
    let uploaded = load_uploaded(&json, Path::new("body.json"))
        .unwrap()
        .workflow;
    let local = load_file(&main).unwrap().workflow;
    assert_eq!(uploaded.name, local.name);
    assert_eq!(uploaded.tasks, local.tasks);
    assert_eq!(uploaded.global_params, local.global_params);
    assert!(json.contains("child-flow") && json.contains("from-env"));
    // A file with no reference is sent as it is.
    assert_eq!(
        render_resolved(&dir.path().join("child.yaml")).unwrap(),
        None
    );
    // A reference that cannot be resolved names its line and field.
    std::fs::write(&main, "workflow:\n  name: m\ntasks:\n  - name: a\n    task_type: Shell\n    command: $FILE{\"missing.sql\"}\n").unwrap();
    let err = render_resolved(&main).unwrap_err().to_string();
    assert!(
        err.contains(":6:") && err.contains("command") && err.contains("missing.sql"),
        "{err}"
    );
}
