//! The instance's decisions driven directly: events in, transitions, writes and effects
//! out, with no store, no plugins and no executor.

use std::path::Path;
use std::sync::Arc;

use shoal_model::TaskState;
use shoal_protocol::{TaskKey, TaskReport, TaskUpdate};
use shoal_store::Write;

use super::{Decider, Effect, Event, Placer};
use crate::state::{TaskInstanceState as T, WorkflowState as W};

fn decider(yaml: &str, placer: Placer) -> Decider {
    let loaded = shoal_workflow::load_str(yaml, Path::new("test.yaml")).expect("loads");
    Decider::fresh(7, loaded.workflow, placer).expect("a valid graph")
}

fn on(node: &'static str) -> Placer {
    Arc::new(move |_, _| Ok(node.to_owned()))
}

/// What `commit` would do with the ids the store hands out: fill them into the slots.
fn stored(d: &mut Decider, first_id: i64) -> (Vec<Write>, Vec<Effect>) {
    let writes = std::mem::take(&mut d.writes);
    for (id, (_, name)) in (first_id..).zip(std::mem::take(&mut d.inserts)) {
        d.slots.get_mut(&name).unwrap().id = id;
        d.rows.insert(id, name);
    }
    (writes, std::mem::take(&mut d.effects))
}

fn ended(id: i64, state: TaskState) -> Event {
    Event::Update {
        key: TaskKey {
            workflow_instance_id: 7,
            task_instance_id: id as u64,
            attempt: 1,
        },
        update: TaskUpdate::Ended {
            report: Box::new(TaskReport {
                state,
                message: String::new(),
                out_params: Vec::new(),
                log_path: "/dev/null".into(),
                work_dir: "/tmp".into(),
                plugin_version: None,
                handle: None,
                elapsed: std::time::Duration::ZERO,
            }),
        },
        ack: None,
    }
}

/// A fresh instance of `yaml` on `worker-1`, started, its first batch stored from id 100.
fn started(yaml: &str) -> Decider {
    let mut d = decider(yaml, on("worker-1"));
    d.resume_after_load();
    d.advance();
    stored(&mut d, 100);
    d
}

const CHAIN: &str = "
workflow:
  name: chain
tasks:
  - name: a
    task_type: noop
  - name: b
    task_type: noop
    deps: [a]
";

#[test]
fn the_chosen_node_is_written_with_the_attempt_before_any_launch() {
    let mut d = decider(CHAIN, on("worker-1"));
    d.resume_after_load();
    d.advance();
    let (writes, effects) = stored(&mut d, 100);
    let insert = writes
        .iter()
        .find_map(|w| match w {
            Write::InsertTaskInstance {
                task_name, host, ..
            } => Some((task_name.clone(), host.clone())),
            _ => None,
        })
        .expect("a's attempt is inserted");
    assert_eq!(insert, ("a".to_owned(), Some("worker-1".to_owned())));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Launch { name, .. } if name == "a"))
    );
    assert_eq!(d.state, W::Running);
    assert_eq!(d.slots["a"].state, T::Dispatched);
    assert!(!d.slots.contains_key("b"), "b waits for a");
}

#[test]
fn an_end_reported_twice_changes_nothing_the_second_time() {
    let mut d = started(CHAIN);
    d.handle(ended(100, TaskState::Succeeded));
    d.advance();
    let (first, _) = stored(&mut d, 200);
    assert!(!first.is_empty());
    assert_eq!(d.slots["a"].state, T::Succeeded);
    assert_eq!(
        d.slots["b"].state,
        T::Dispatched,
        "b starts once a succeeded"
    );
    // The same end again (a worker that resent it): no transition, no write.
    d.handle(ended(100, TaskState::Succeeded));
    d.advance();
    let (again, effects) = stored(&mut d, 300);
    assert!(again.is_empty(), "{again:?}");
    assert!(effects.is_empty());
}

#[test]
fn an_update_for_an_attempt_that_is_not_current_is_ignored() {
    let mut d = started(CHAIN);
    d.handle(ended(99, TaskState::Failed));
    d.advance();
    let (writes, _) = stored(&mut d, 200);
    assert!(writes.is_empty());
    assert_eq!(d.slots["a"].state, T::Dispatched);
}

#[test]
fn the_last_end_settles_the_instance() {
    let mut d = started(CHAIN);
    d.handle(ended(100, TaskState::Succeeded));
    d.advance();
    stored(&mut d, 200);
    d.handle(ended(200, TaskState::Succeeded));
    d.advance();
    let (writes, _) = stored(&mut d, 300);
    assert_eq!(d.state, W::Succeeded);
    assert!(writes.iter().any(|w| matches!(
        w,
        Write::UpdateWorkflowInstance { state, .. } if state == "succeeded"
    )));
}

/// The timer events among `effects` (what a wait would send when it ends).
fn timers(effects: Vec<Effect>) -> Vec<Event> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Timer { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

#[test]
fn a_task_no_node_can_take_waits_in_dispatching_then_goes_out_with_its_node_stored() {
    let free = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let placer: Placer = {
        let free = free.clone();
        Arc::new(move |_, group| {
            if free.load(std::sync::atomic::Ordering::SeqCst) {
                Ok("worker-2".to_owned())
            } else {
                Err(format!(
                    "every worker of group `{}` is busy",
                    group.unwrap_or("?")
                ))
            }
        })
    };
    let mut d = decider(CHAIN, placer);
    d.resume_after_load();
    d.advance();
    let (writes, effects) = stored(&mut d, 100);
    assert_eq!(d.slots["a"].state, T::Dispatching);
    assert!(writes.iter().any(|w| matches!(
        w,
        Write::InsertTaskInstance { task_name, state, host: None, .. }
            if task_name == "a" && state == "dispatching"
    )));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Launch { .. })),
        "nothing is sent"
    );
    let mut due = timers(effects);
    assert_eq!(due.len(), 1, "placement is tried again");

    // Still full: it keeps waiting, storing nothing new.
    d.handle(due.remove(0));
    d.advance();
    let (writes, effects) = stored(&mut d, 200);
    assert!(writes.is_empty(), "{writes:?}");
    let mut due = timers(effects);
    assert_eq!(d.slots["a"].state, T::Dispatching);

    // A slot frees up: the node is stored with the dispatch, and then it goes out.
    free.store(true, std::sync::atomic::Ordering::SeqCst);
    d.handle(due.remove(0));
    d.advance();
    let (writes, effects) = stored(&mut d, 300);
    assert_eq!(d.slots["a"].state, T::Dispatched);
    assert!(
        writes.iter().any(|w| matches!(
            w,
            Write::UpdateTaskInstance { id: 100, state, host: Some(h), .. }
                if state == "dispatched" && h == "worker-2"
        )),
        "{writes:?}"
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Launch { name, .. } if name == "a"))
    );
}

#[test]
fn a_failover_attempt_does_not_use_up_retries() {
    let yaml = "
workflow:
  name: one
tasks:
  - name: a
    task_type: noop
    fail_retry_times: 1
";
    let mut d = started(yaml);
    d.handle(Event::AttemptLost {
        name: "a".into(),
        id: 100,
    });
    d.advance();
    let (writes, _) = stored(&mut d, 200);
    assert!(
        writes.iter().any(|w| matches!(
            w,
            Write::InsertTaskInstance {
                attempt: 2,
                failover: true,
                ..
            }
        )),
        "{writes:?}"
    );
    assert_eq!((d.slots["a"].attempt, d.slots["a"].failovers), (2, 1));
    // The failover attempt fails: its one retry is still there.
    let mut fail = ended(200, TaskState::Failed);
    if let Event::Update { key, .. } = &mut fail {
        key.attempt = 2;
    }
    d.handle(fail);
    d.advance();
    stored(&mut d, 300);
    assert_eq!(d.slots["a"].state, T::Retrying, "one retry left");
}

fn update(id: i64, update: TaskUpdate) -> Event {
    Event::Update {
        key: TaskKey {
            workflow_instance_id: 7,
            task_instance_id: id as u64,
            attempt: 1,
        },
        update,
        ack: None,
    }
}

/// An action on a task's job: refused without a job, recorded when asked and when
/// answered, its new handle stored, and a running attempt whose job the action ended
/// ends as killed (its executor is stopped too).
#[test]
fn actions_on_a_job_are_recorded_and_a_stop_ends_the_attempt() {
    let mut d = started(CHAIN);
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    d.handle(Event::Control {
        task: "a".into(),
        action: "savepoint".into(),
        args: serde_json::json!({}),
        answer: super::ControlAnswer::Direct(tx),
    });
    let (_, effects) = stored(&mut d, 200);
    let refused = effects
        .into_iter()
        .find_map(|e| match e {
            Effect::ControlAnswer(a, r) => Some((a, r)),
            _ => None,
        })
        .expect("answered at once");
    refused.0.send(refused.1);
    let why = rx.try_recv().unwrap().unwrap_err().to_string();
    assert!(why.contains("has no external job"), "{why}");

    d.handle(update(
        100,
        TaskUpdate::Handle {
            handle: "job-1".into(),
        },
    ));
    let (tx, _rx) = tokio::sync::oneshot::channel();
    d.handle(Event::Control {
        task: "a".into(),
        action: "stop-with-savepoint".into(),
        args: serde_json::json!({"drain": true}),
        answer: super::ControlAnswer::Direct(tx),
    });
    let (writes, effects) = stored(&mut d, 300);
    assert!(writes.iter().any(|w| matches!(w,
        Write::AppendEvent { kind, payload, .. }
            if kind == "task-action" && json(payload)["phase"] == "requested" && json(payload)["action"] == "stop-with-savepoint")));
    let (host, handle, answer) = effects
        .into_iter()
        .find_map(|e| match e {
            Effect::Control {
                host,
                handle,
                answer,
                ..
            } => Some((host, handle, answer)),
            _ => None,
        })
        .expect("the node is asked after the commit");
    assert_eq!(
        host.as_deref(),
        Some("worker-1"),
        "the node following the job"
    );
    assert_eq!(handle, "job-1");
    assert_eq!(d.pending_controls, 1, "the worker waits for the answer");

    d.handle(Event::ControlDone {
        name: "a".into(),
        id: 100,
        action: "stop-with-savepoint".into(),
        outcome: Box::new(Ok(shoal_protocol::ControlDone {
            message: "stopped with a savepoint at file:/sp/1".into(),
            new_handle: Some("job-1+sp".into()),
            job_ended: true,
        })),
        answer,
    });
    let (writes, effects) = stored(&mut d, 400);
    assert_eq!(d.pending_controls, 0);
    assert_eq!(d.slots["a"].state, T::Killed);
    assert_eq!(d.last_handles["a"], "job-1+sp");
    assert!(writes.iter().any(|w| matches!(w,
        Write::UpdateTaskInstance { id: 100, handle: Some(h), .. } if h == "job-1+sp")));
    assert!(writes.iter().any(|w| matches!(w,
        Write::AppendEvent { kind, payload, .. }
            if kind == "task-action" && json(payload)["phase"] == "done" && json(payload)["ok"] == true)));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Kill { name, .. } if name == "a"))
    );
}

/// A stored event's payload, parsed.
fn json(payload: &str) -> serde_json::Value {
    serde_json::from_str(payload).expect("an event's payload is JSON")
}

#[test]
fn a_wide_fan_out_begins_in_slices_each_after_the_one_before_is_stored() {
    let total = super::advance::BEGIN_PER_BATCH + 476;
    let mut yaml = String::from("workflow:\n  name: wide\ntasks:\n");
    for i in 0..total {
        yaml.push_str(&format!("  - name: t{i}\n    task_type: noop\n"));
    }
    let mut d = decider(&yaml, on("worker-1"));
    d.resume_after_load();
    d.advance();
    let launches = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Launch { .. }))
            .count()
    };
    let more = |effects: &[Effect]| {
        effects
            .iter()
            .any(|e| matches!(e, Effect::Later(Event::BeginMore)))
    };
    assert_eq!(d.inserts.len(), super::advance::BEGIN_PER_BATCH);
    let (_, effects) = stored(&mut d, 100);
    assert_eq!(launches(&effects), super::advance::BEGIN_PER_BATCH);
    assert!(more(&effects), "the rest must be asked for once stored");
    // Nothing else happened: the instance is not done, it waits for the next slice.
    assert_eq!(d.state, W::Running);

    d.handle(Event::BeginMore);
    d.advance();
    assert_eq!(d.inserts.len(), 476);
    let (_, effects) = stored(&mut d, 10_000);
    assert_eq!(launches(&effects), 476);
    assert!(!more(&effects));
    assert_eq!(d.slots.len(), total);
    assert!(
        d.slots
            .values()
            .all(|s| s.id > 0 && s.state == T::Dispatched)
    );
}
