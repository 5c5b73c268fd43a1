//! How an instance's batches are stored under load: a wide fan-out, where the worker
//! decides the next batch while one is stored.

use shoal_master::state::{TaskInstanceState as T, WorkflowState as W};
use shoal_store::Store;
use shoal_tests::flow::Flow;

/// A wide fan-out makes its instance worker decide the next batch while the previous
/// one is stored (pipelining). Every transition must still be stored, in order, before
/// anyone hears of it, and each task's transitions must chain up across batches.
/// Whether a batch is stored while the next is decided depends on timing (events must
/// queue meanwhile), so the run is repeated, each checked in full, until one was.
pub(super) async fn a_wide_fan_out_stores_every_batch_in_order_while_deciding_the_next(
    store: Store,
) {
    let flow = Flow::new(store);
    for _ in 0..8 {
        let before = flow.master.batch_counts();
        wide_fan_out_checked(&flow, 2000).await;
        if flow.master.batch_counts().overlapped > before.overlapped {
            return;
        }
    }
    panic!(
        "no batch was stored while the next was decided in 8 runs: {:?}",
        flow.master.batch_counts()
    );
}

async fn wide_fan_out_checked(flow: &Flow, tasks: usize) {
    use std::collections::HashMap;

    let mut yaml = String::from("workflow:\n  name: wide\ntasks:\n");
    for i in 0..tasks {
        yaml.push_str(&format!("  - name: t{i}\n    task_type: Noop\n"));
    }
    let mut progress = flow.master.subscribe();
    let id = flow.start(&yaml).await;
    // Told of a success => the success is stored already (checked on a sample, as
    // each check reads every row).
    let mut told: HashMap<String, Vec<(i64, u32, T)>> = HashMap::new();
    loop {
        match progress.recv().await.expect("no progress lost") {
            shoal_master::Progress::Task {
                instance,
                task,
                task_instance_id,
                attempt,
                state,
                ..
            } if instance == id => {
                if state == T::Succeeded && task.ends_with("00") {
                    let rows = flow.store().task_instances(id).await.unwrap();
                    let row = rows.iter().find(|r| r.task_name == task).unwrap();
                    assert_eq!(row.state, "succeeded", "`{task}` told before stored");
                }
                told.entry(task)
                    .or_default()
                    .push((task_instance_id, attempt, state));
            }
            shoal_master::Progress::Workflow { instance, state }
                if instance == id && state.is_finished() =>
            {
                assert_eq!(state, W::Succeeded);
                break;
            }
            _ => {}
        }
    }
    let rows: HashMap<String, i64> = flow
        .attempts(id)
        .await
        .into_iter()
        .map(|(name, attempts)| {
            assert_eq!(attempts.len(), 1, "`{name}` ran more than once");
            assert_eq!(attempts[0].state, "succeeded");
            (name, attempts[0].id)
        })
        .collect();
    assert_eq!(rows.len(), tasks);
    // Watchers heard each task's transitions in order, naming its stored row.
    for (task, heard) in &told {
        assert!(
            heard
                .iter()
                .all(|(row, attempt, _)| *row == rows[task] && *attempt == 1),
            "`{task}`: {heard:?}"
        );
        assert_eq!(heard.last().map(|h| h.2), Some(T::Succeeded), "`{task}`");
    }
    // The event stream has no gap, and each task's transitions chain up: each starts
    // where the one before it ended, whichever batch stored it.
    let events = flow.store().events(id).await.unwrap();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "a gap before {}", e.kind);
    }
    let mut at: HashMap<String, String> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind.starts_with("task-") && e.payload.get("from").is_some())
    {
        let task = e.payload["task"].as_str().unwrap().to_owned();
        let (from, to) = (&e.payload["from"], &e.payload["to"]);
        if let Some(before) = at.get(&task) {
            assert_eq!(
                from.as_str(),
                Some(before.as_str()),
                "`{task}` at {}",
                e.seq
            );
        }
        at.insert(task, to.as_str().unwrap().to_owned());
    }
    assert!(at.values().all(|s| s == "succeeded"), "{at:?}");
}
