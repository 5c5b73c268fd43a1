//! The store test suite, run against a real SQLite file and a real PostgreSQL server
//! (a fresh database per test, dropped afterwards). PostgreSQL comes from
//! `SHOAL_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`); when it is
//! unreachable the PostgreSQL half is skipped loudly, except under `CI=true`, where a
//! missing service is a failure.

use std::future::Future;

use serde_json::json;
use shoal_store::{Backend, Store, Write};

/// Run `test` on SQLite, then on PostgreSQL.
async fn on_both<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    shoal_store::testing::on_both(|store, url| {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        assert_eq!(store.backend(), backend);
        test(store)
    })
    .await
}

async fn instance(store: &Store) -> i64 {
    let def = store
        .save_definition("p", "wf", &json!({"tasks": []}), "tasks: []")
        .await
        .unwrap();
    store
        .write(vec![Write::InsertWorkflowInstance {
            definition_id: def.definition_id,
            version: def.version,
            name: "wf-1".into(),
            state: "running".into(),
            schedule_time: 1_700_000_000_000,
            startup_params: json!({"a": "1"}),
            start_tasks: json!([]),
            parent_task_instance_id: None,
            owner: None,
            owner_gen: 0,
            idempotency_key: None,
        }])
        .await
        .unwrap()[0]
        .unwrap()
}

/// `n` new noop task rows `t0`.. of instance `wf`, in `state`, task `ti`'s message `mi`.
fn task_rows(wf: i64, n: usize, state: &str) -> Vec<Write> {
    (0..n)
        .map(|i| Write::InsertTaskInstance {
            workflow_instance_id: wf,
            task_name: format!("t{i}"),
            task_type: "noop".into(),
            attempt: 1,
            state: state.into(),
            message: format!("m{i}"),
            host: None,
            started_at: None,
            ended_at: None,
            failover: false,
        })
        .collect()
}

#[tokio::test]
async fn definitions_are_versioned() {
    on_both(|store| async move {
        let v1 = store
            .save_definition("proj", "daily", &json!({"n": 1}), "n: 1")
            .await
            .unwrap();
        assert_eq!((v1.version, v1.created), (1, true));
        let same = store
            .save_definition("proj", "daily", &json!({"n": 1}), "n: 1")
            .await
            .unwrap();
        assert_eq!((same.version, same.created), (1, false));
        let v2 = store
            .save_definition("proj", "daily", &json!({"n": 2}), "n: 2")
            .await
            .unwrap();
        assert_eq!(
            (v2.version, v2.created, v2.definition_id),
            (2, true, v1.definition_id)
        );
        let current = store
            .definition("proj", "daily", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((current.version, current.current_version), (2, 2));
        assert_eq!(current.spec, json!({"n": 2}));
        let old = store
            .definition("proj", "daily", Some(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((old.spec, old.source.as_str()), (json!({"n": 1}), "n: 1"));
        assert_eq!(
            store.definition_versions(v1.definition_id).await.unwrap(),
            vec![1, 2]
        );
        assert!(
            store
                .definition("proj", "daily", Some(9))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .definition("other", "daily", None)
                .await
                .unwrap()
                .is_none()
        );
        let by_id = store
            .definition_by_id(v1.definition_id, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_id.name, "daily");
    })
    .await;
}

#[tokio::test]
async fn task_instances_keep_unset_fields() {
    on_both(|store| async move {
        let wf = instance(&store).await;
        let ids = store
            .write(vec![Write::InsertTaskInstance {
                workflow_instance_id: wf,
                task_name: "extract".into(),
                task_type: "shell".into(),
                attempt: 1,
                state: "submitted".into(),
                message: String::new(),
                host: None,
                started_at: None,
                ended_at: None,
                failover: false,
            }])
            .await
            .unwrap();
        let task = ids[0].unwrap();
        let update = |state: &str| Write::UpdateTaskInstance {
            id: task,
            state: state.into(),
            host: None,
            plugin_version: None,
            handle: None,
            message: None,
            out_params: None,
            log_path: None,
            started_at: None,
            ended_at: None,
        };
        let mut running = update("running");
        if let Write::UpdateTaskInstance {
            handle,
            started_at,
            host,
            ..
        } = &mut running
        {
            *handle = Some("job:42".into());
            *started_at = Some(5);
            *host = Some("worker-1".into());
        }
        store.write(vec![running]).await.unwrap();
        let mut done = update("succeeded");
        if let Write::UpdateTaskInstance {
            out_params,
            ended_at,
            message,
            ..
        } = &mut done
        {
            *out_params = Some(json!({"rows": "10"}));
            *ended_at = Some(9);
            *message = Some("exit code 0".into());
        }
        store.write(vec![done]).await.unwrap();
        let row = store.task_instance(task).await.unwrap().unwrap();
        assert_eq!(row.state, "succeeded");
        assert_eq!(row.handle.as_deref(), Some("job:42"));
        assert_eq!(row.host.as_deref(), Some("worker-1"));
        assert_eq!((row.started_at, row.ended_at), (Some(5), Some(9)));
        assert_eq!(row.out_params, json!({"rows": "10"}));
        assert_eq!(row.message, "exit code 0");
        assert_eq!(store.task_instances(wf).await.unwrap().len(), 1);

        let err = store
            .write(
                vec![update("failed")]
                    .into_iter()
                    .map(|mut w| {
                        if let Write::UpdateTaskInstance { id, .. } = &mut w {
                            *id = 999_999;
                        }
                        w
                    })
                    .collect(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("task instance 999999"), "{err}");
    })
    .await;
}

/// One batch updating hundreds of rows (several multi-row statements on PostgreSQL),
/// one of them twice: every row gets its own fields, unset fields keep their value, and
/// the later update of the twice-named row wins.
#[tokio::test]
async fn a_batch_of_task_updates_lands_row_by_row_in_order() {
    on_both(|store| async move {
        let wf = instance(&store).await;
        let ids: Vec<i64> = store
            .write(task_rows(wf, 300, "dispatching"))
            .await
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let update = |id: i64, state: &str, host: Option<String>, ended: Option<i64>| {
            Write::UpdateTaskInstance {
                id,
                state: state.into(),
                host,
                plugin_version: None,
                handle: None,
                message: None,
                out_params: None,
                log_path: None,
                started_at: None,
                ended_at: ended,
            }
        };
        let mut batch: Vec<Write> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| update(*id, "dispatched", Some(format!("w{}", i % 3)), None))
            .collect();
        batch.push(update(ids[7], "succeeded", None, Some(70)));
        store.write(batch).await.unwrap();
        let rows = store.task_instances(wf).await.unwrap();
        assert_eq!(rows.len(), 300);
        for row in &rows {
            let i: usize = row.task_name[1..].parse().unwrap();
            assert_eq!(row.host.as_deref(), Some(format!("w{}", i % 3).as_str()));
            assert_eq!(row.message, format!("m{i}"), "kept");
            if i == 7 {
                assert_eq!((row.state.as_str(), row.ended_at), ("succeeded", Some(70)));
            } else {
                assert_eq!((row.state.as_str(), row.ended_at), ("dispatched", None));
            }
        }
        // A missing row among many fails the batch, naming it, and nothing of it lands.
        let mut bad: Vec<Write> = ids
            .iter()
            .map(|id| update(*id, "failed", None, None))
            .collect();
        bad.insert(100, update(999_999, "failed", None, None));
        let err = store.write(bad).await.unwrap_err();
        assert!(err.to_string().contains("task instance 999999"), "{err}");
        let rows = store.task_instances(wf).await.unwrap();
        assert!(rows.iter().all(|r| r.state != "failed"));
    })
    .await;
}

/// On PostgreSQL the writer's multi-row update finds its rows through the primary key,
/// even in a table small enough that the planner would rather scan all of it (a scan
/// per batch that grows with every run ever stored).
#[tokio::test]
async fn task_row_updates_find_rows_by_key_not_by_scan() {
    on_both(|store| async move {
        if store.backend() != Backend::Postgres {
            return;
        }
        let wf = instance(&store).await;
        store
            .write(task_rows(wf, 20_000, "submitted"))
            .await
            .unwrap();
        let plan = shoal_store::testing::task_update_plan(&store, 512)
            .await
            .unwrap();
        assert!(plan.contains("task_instances_pkey"), "{plan}");
        assert!(!plan.contains("Seq Scan on task_instances"), "{plan}");
    })
    .await;
}

#[tokio::test]
async fn group_commit_isolates_a_bad_batch_and_keeps_order() {
    on_both(|store| async move {
        let wf = instance(&store).await;
        // Many concurrent writers: one duplicate event sequence number among them.
        let mut handles = Vec::new();
        for seq in 0..200i64 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let seq = if seq == 150 { 3 } else { seq };
                store
                    .write(vec![
                        Write::AppendEvent {
                            workflow_instance_id: wf,
                            seq,
                            kind: "task-finished".into(),
                            payload: json!({"n": seq}).to_string(),
                        },
                        Write::InsertTaskInstance {
                            workflow_instance_id: wf,
                            task_name: format!("t{seq}"),
                            task_type: "noop".into(),
                            attempt: 1,
                            state: "submitted".into(),
                            message: String::new(),
                            host: None,
                            started_at: None,
                            ended_at: None,
                            failover: false,
                        },
                    ])
                    .await
            }));
        }
        let mut failed = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failed += 1;
            }
        }
        // Exactly one of the two writers of seq 3 lost, and its task insert with it.
        assert_eq!(failed, 1);
        let events = store.events(wf).await.unwrap();
        assert_eq!(events.len(), 199);
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(store.task_instances(wf).await.unwrap().len(), 199);
    })
    .await;
}

#[tokio::test]
async fn instances_filter_by_state_and_commands_are_taken_once() {
    on_both(|store| async move {
        let a = instance(&store).await;
        let b = instance(&store).await;
        store
            .write(vec![Write::UpdateWorkflowInstance {
                id: a,
                state: "succeeded".into(),
                started_at: Some(1),
                ended_at: Some(2),
            }])
            .await
            .unwrap();
        let running = store.workflow_instances(&["running"], 10, 0).await.unwrap();
        assert_eq!(running.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
        let all = store.workflow_instances(&[], 10, 0).await.unwrap();
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, a]);
        let row = store.workflow_instance(a).await.unwrap().unwrap();
        assert_eq!(
            (row.state.as_str(), row.started_at, row.ended_at),
            ("succeeded", Some(1), Some(2))
        );
        assert_eq!(row.startup_params, json!({"a": "1"}));

        for kind in ["stop", "pause", "resume"] {
            store
                .write(vec![Write::PushCommand {
                    kind: kind.into(),
                    workflow_instance_id: Some(b),
                    payload: json!({}),
                }])
                .await
                .unwrap();
        }
        let first = store.take_commands(None, 2).await.unwrap();
        assert_eq!(
            first.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
            ["stop", "pause"]
        );
        let rest = store.take_commands(None, 10).await.unwrap();
        assert_eq!(
            rest.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
            ["resume"]
        );
        assert!(store.take_commands(None, 10).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn sqlite_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/shoal.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    let wf = instance(&store).await;
    store.close().await;
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(
        store.workflow_instance(wf).await.unwrap().unwrap().name,
        "wf-1"
    );
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn bad_urls_are_refused_clearly() {
    let err = Store::open("mysql://x").await.err().unwrap().to_string();
    assert!(
        err.contains("unsupported database URL `mysql://x`"),
        "{err}"
    );
    // The engine's writer keeps a connection of its own, which an in-memory database
    // would not share.
    let err = Store::open("sqlite::memory:")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("in-memory SQLite"), "{err}");
}

/// Many new task rows in one batch are inserted together; each write still gets its own
/// row's id, whatever order the database returns them in, and a rerun's archiving in the
/// same batch leaves the new rows current.
#[tokio::test]
async fn a_batch_of_new_task_rows_gets_each_its_id() {
    on_both(|store| async move {
        let wf = instance(&store).await;
        let row = |name: String, attempt: i64| Write::InsertTaskInstance {
            workflow_instance_id: wf,
            task_name: name,
            task_type: "noop".into(),
            attempt,
            state: "dispatched".into(),
            message: String::new(),
            host: Some("h".into()),
            started_at: Some(1),
            ended_at: None,
            failover: false,
        };
        let mut writes: Vec<Write> = (0..40).map(|i| row(format!("t{i}"), 1)).collect();
        writes.insert(
            7,
            Write::AppendEvent {
                workflow_instance_id: wf,
                seq: 1,
                kind: "k".into(),
                payload: json!({}).to_string(),
            },
        );
        let ids = store.write(writes.clone()).await.unwrap();
        assert_eq!(ids[7], None, "an event has no id");
        let stored = store.task_instances(wf).await.unwrap();
        for (write, id) in writes.iter().zip(&ids) {
            if let Write::InsertTaskInstance { task_name, .. } = write {
                let id = id.expect("an insert returns its id");
                let row = stored.iter().find(|r| r.id == id).unwrap();
                assert_eq!(&row.task_name, task_name);
                assert_eq!(row.host.as_deref(), Some("h"));
            }
        }
        // Rerun: archive, then the same names again, in one batch.
        let mut again = vec![Write::ArchiveTaskInstances {
            workflow_instance_id: wf,
        }];
        again.extend((0..3).map(|i| row(format!("t{i}"), 1)));
        let new_ids = store.write(again).await.unwrap();
        let current = store.task_instances(wf).await.unwrap();
        assert_eq!(current.len(), 3, "only the rerun's rows are current");
        assert!(current.iter().all(|r| new_ids.contains(&Some(r.id))));
    })
    .await;
}

/// One engine per store: a lease is taken, renewed by its holder, refused to another
/// holder until it expires, and can be released.
#[tokio::test]
async fn engine_leases_exclude_a_second_holder() {
    on_both(|store| async move {
        assert!(store.acquire_lease("engine", "a", 60_000).await.unwrap());
        assert!(
            store.acquire_lease("engine", "a", 60_000).await.unwrap(),
            "renewal"
        );
        assert!(!store.acquire_lease("engine", "b", 60_000).await.unwrap());
        let (holder, until) = store.lease_holder("engine").await.unwrap().unwrap();
        assert_eq!(holder, "a");
        assert!(until > shoal_store::now_ms());
        // An expired lease goes to whoever asks.
        assert!(store.acquire_lease("engine", "a", -1).await.unwrap());
        assert!(store.acquire_lease("engine", "b", 60_000).await.unwrap());
        store.release_lease("engine", "a").await.unwrap();
        assert_eq!(
            store.lease_holder("engine").await.unwrap().unwrap().0,
            "b",
            "not a's to release"
        );
        store.release_lease("engine", "b").await.unwrap();
        assert!(store.lease_holder("engine").await.unwrap().is_none());
    })
    .await;
}

/// A NUL character in text: SQLite stores it; PostgreSQL refuses it, and the refusal is
/// recognised as bad input (the API answers 400, not 500), with nothing stored.
#[tokio::test]
async fn a_nul_in_text_is_refused_as_input_where_the_database_cannot_hold_it() {
    on_both(|store| async move {
        let result = store.create_project("with-nul", "a\u{0}b").await;
        match store.backend() {
            Backend::Sqlite => {
                assert_eq!(result.unwrap().unwrap().description, "a\u{0}b");
            }
            Backend::Postgres => {
                let e = result.unwrap_err();
                assert!(e.is_unstorable_text(), "{e}");
                assert!(store.project("with-nul").await.unwrap().is_none());
            }
        }
        assert!(store.create_project("plain", "fine").await.is_ok());
    })
    .await
}

/// Listings count only so far past the page, and keyset pages go on from `before_id`.
#[tokio::test]
async fn listings_count_ahead_of_the_page_and_page_by_keyset() {
    on_both(|store| async move {
        let def = store
            .save_definition("p", "many", &json!({"tasks": []}), "tasks: []")
            .await
            .unwrap();
        let runs = |n: usize| {
            (0..n)
                .map(|i| Write::InsertWorkflowInstance {
                    definition_id: def.definition_id,
                    version: def.version,
                    name: format!("many-{i}"),
                    state: "succeeded".into(),
                    schedule_time: 1_700_000_000_000 + i as i64,
                    startup_params: json!({}),
                    start_tasks: json!([]),
                    parent_task_instance_id: None,
                    owner: None,
                    owner_gen: 0,
                    idempotency_key: None,
                })
                .collect::<Vec<_>>()
        };
        store.write(runs(1_200)).await.unwrap();
        let filter = shoal_store::InstanceFilter {
            project: Some("p".into()),
            ..Default::default()
        };
        // The first page counts to 50 + 1,000 and says there are more.
        let first = store.find_instances(&filter, 50, 0).await.unwrap();
        assert_eq!(first.rows.len(), 50);
        assert_eq!((first.total, first.capped), (1_050, true));
        let last_id = first.rows.last().unwrap().id;
        assert_eq!(first.next_before(0), Some(last_id));
        // Far enough in, the count is exact again.
        let deep = store.find_instances(&filter, 50, 1_150).await.unwrap();
        assert_eq!((deep.total, deep.capped), (1_200, false));
        assert_eq!(deep.rows.len(), 50);
        assert_eq!(deep.next_before(1_150), None, "the last page");
        // Keyset: the next page starts right after the first one's last row.
        let next = store
            .find_instances(
                &shoal_store::InstanceFilter {
                    before_id: Some(last_id),
                    ..filter.clone()
                },
                50,
                0,
            )
            .await
            .unwrap();
        assert!(next.rows.iter().all(|r| r.id < last_id));
        let second_by_offset = store.find_instances(&filter, 50, 50).await.unwrap();
        let ids = |rows: &[shoal_store::WorkflowInstanceRow]| {
            rows.iter().map(|r| r.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&next.rows), ids(&second_by_offset.rows));
        assert_eq!(
            (next.total, next.capped),
            (1_050, true),
            "counted from the cursor"
        );
    })
    .await
}

/// On SQLite the writer runs its transactions on its own thread (a tokio worker): while
/// another connection holds the write lock it must give that thread back between short
/// waits, or on a one-thread runtime the lock holder could never finish and the batch
/// would fail after the busy timeout. Here the batch lands as soon as the lock is free.
#[tokio::test]
async fn a_sqlite_batch_waits_for_another_writer_without_holding_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.db")).await.unwrap();
    let wf = instance(&store).await;
    let mut holder = store.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let writing = tokio::spawn({
        let store = store.clone();
        async move { store.write(task_rows(wf, 3, "submitted")).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !writing.is_finished(),
        "the batch committed while another writer held the lock"
    );
    sqlx::query("COMMIT").execute(&mut *holder).await.unwrap();
    let released = std::time::Instant::now();
    let ids = writing.await.unwrap().unwrap();
    assert!(
        released.elapsed() < std::time::Duration::from_secs(2),
        "the batch landed only {:?} after the lock was released",
        released.elapsed()
    );
    assert_eq!(ids.iter().flatten().count(), 3, "{ids:?}");
    assert_eq!(store.task_instances(wf).await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_update_of_a_missing_row_fails_naming_it_and_stores_nothing() {
    on_both(|store| async move {
        let wf = instance(&store).await;
        let before = store.workflow_instance(wf).await.unwrap().unwrap();
        let gone = store
            .write(vec![
                Write::UpdateWorkflowInstance {
                    id: wf,
                    state: "failure".into(),
                    started_at: None,
                    ended_at: None,
                },
                Write::UpdateWorkflowInstance {
                    id: wf + 1000,
                    state: "failure".into(),
                    started_at: None,
                    ended_at: None,
                },
            ])
            .await
            .unwrap_err();
        assert_eq!(
            gone.to_string(),
            shoal_store::StoreError::NotFound(format!("workflow instance {}", wf + 1000))
                .to_string()
        );
        let after = store.workflow_instance(wf).await.unwrap().unwrap();
        assert_eq!(after.state, before.state, "the batch rolled back whole");
        let gone = store
            .write(vec![Write::UpdateTaskInstance {
                id: 424_242,
                state: "success".into(),
                host: None,
                plugin_version: None,
                handle: None,
                message: None,
                out_params: None,
                log_path: None,
                started_at: None,
                ended_at: None,
            }])
            .await
            .unwrap_err();
        assert_eq!(
            gone.to_string(),
            shoal_store::StoreError::NotFound("task instance 424242".into()).to_string()
        );
    })
    .await;
}

#[tokio::test]
async fn an_alert_about_an_instance_finds_its_project_workflow_and_channels_in_one_read() {
    on_both(|store| async move {
        let wf = instance(&store).await;
        // Its project has no channel yet: nothing to alert.
        let project = store.create_project("p", "").await.unwrap().unwrap();
        assert_eq!(store.alert_target(wf).await.unwrap(), None);
        store
            .put_alert_channel(project.id, "ops", "sealed-ops", "[\"workflow-failed\"]")
            .await
            .unwrap();
        store
            .put_alert_channel(project.id, "chat", "sealed-chat", "[]")
            .await
            .unwrap();
        let other = store.create_project("q", "").await.unwrap().unwrap();
        store
            .put_alert_channel(other.id, "elsewhere", "x", "[]")
            .await
            .unwrap();
        let target = store.alert_target(wf).await.unwrap().expect("two channels");
        assert_eq!(
            (target.project.as_str(), target.workflow.as_str()),
            ("p", "wf")
        );
        let channels: Vec<_> = target
            .channels
            .iter()
            .map(|c| (c.name.as_str(), c.config.as_str(), c.project_id))
            .collect();
        assert_eq!(
            channels,
            [
                ("chat", "sealed-chat", project.id),
                ("ops", "sealed-ops", project.id)
            ],
            "the channels' own names, not the workflow's"
        );
        assert_eq!(store.alert_target(wf + 1000).await.unwrap(), None);
    })
    .await;
}
