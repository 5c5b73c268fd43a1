//! What distributed mode needs from the store, on SQLite and on PostgreSQL (a fresh
//! database per test; see `shoal_store::testing`): fenced writes, instance ownership and
//! its adoption after a master's death, failover attempts, and plugin blobs by digest.

use serde_json::json;
use shoal_store::testing::on_both;
use shoal_store::{Store, StoreError, Write};

async fn instance(store: &Store, state: &str, owner: Option<&str>, owner_gen: i64) -> i64 {
    let def = store
        .save_definition("p", "wf", &json!({"tasks": []}), "tasks: []")
        .await
        .unwrap();
    store
        .write(vec![Write::InsertWorkflowInstance {
            definition_id: def.definition_id,
            version: def.version,
            name: "wf-1".into(),
            state: state.into(),
            schedule_time: 1_700_000_000_000,
            startup_params: json!({}),
            start_tasks: json!([]),
            parent_task_instance_id: None,
            owner: owner.map(str::to_owned),
            owner_gen,
            idempotency_key: None,
        }])
        .await
        .unwrap()[0]
        .unwrap()
}

fn fence(id: i64, owner: &str, owner_gen: i64) -> Write {
    Write::Fence {
        workflow_instance_id: id,
        owner: owner.into(),
        owner_gen,
    }
}

fn event(id: i64, seq: i64) -> Write {
    Write::AppendEvent {
        workflow_instance_id: id,
        seq,
        kind: "k".into(),
        payload: json!({}).to_string(),
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fence lets the owner at its generation write, refuses anyone else (another node,
/// an older generation, the old owner once the instance was adopted), and a refused
/// batch leaves nothing behind, writes before the fence included.
#[tokio::test]
async fn fence_refuses_a_stale_owner_and_lets_the_owner_write() {
    on_both(|store, _| async move {
        let wf = instance(&store, "running", Some("m1"), 1).await;
        store
            .write(vec![fence(wf, "m1", 1), event(wf, 1)])
            .await
            .unwrap();

        for (owner, owner_gen) in [("m1", 0), ("m1", 2), ("m2", 1)] {
            let err = store
                .write(vec![fence(wf, owner, owner_gen), event(wf, 2)])
                .await
                .unwrap_err();
            match &err {
                StoreError::Fenced {
                    instance,
                    owner: o,
                    owner_gen: g,
                } => assert_eq!((*instance, o.as_str(), *g), (wf, owner, owner_gen)),
                other => panic!("expected Fenced, got {other:?}"),
            }
            assert_eq!(
                err.to_string(),
                format!("instance {wf} is no longer owned by {owner} generation {owner_gen}")
            );
        }
        let err = store
            .write(vec![
                Write::UpdateWorkflowInstance {
                    id: wf,
                    state: "failed".into(),
                    started_at: None,
                    ended_at: Some(9),
                },
                event(wf, 2),
                fence(wf, "m2", 1),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
        let row = store.workflow_instance(wf).await.unwrap().unwrap();
        assert_eq!(
            (row.state.as_str(), row.ended_at),
            ("running", None),
            "a fenced batch's writes before the fence are rolled back"
        );
        assert_eq!(store.last_event_seq(wf).await.unwrap(), 1);

        assert_eq!(
            store.adopt_instances_of("m1", "m2").await.unwrap(),
            vec![wf]
        );
        let err = store
            .write(vec![fence(wf, "m1", 1), event(wf, 2)])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
        store
            .write(vec![fence(wf, "m2", 2), event(wf, 2)])
            .await
            .unwrap();
        assert_eq!(store.last_event_seq(wf).await.unwrap(), 2);

        // A fence on an instance nobody owns (single-node rows) refuses too.
        let single = instance(&store, "running", None, 0).await;
        assert!(matches!(
            store.write(vec![fence(single, "m1", 0)]).await,
            Err(StoreError::Fenced { .. })
        ));
    })
    .await;
}

/// Many concurrent writers, grouped into shared transactions by the writer: the one
/// with a stale fence fails with `Fenced`, every other batch commits.
#[tokio::test]
async fn a_fenced_batch_in_a_group_fails_alone() {
    on_both(|store, _| async move {
        let wf = instance(&store, "running", Some("m1"), 3).await;
        let mut handles = Vec::new();
        for seq in 1..=200i64 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let owner_gen = if seq == 150 { 2 } else { 3 };
                let result = store
                    .write(vec![fence(wf, "m1", owner_gen), event(wf, seq)])
                    .await;
                (seq, result)
            }));
        }
        let mut failed = Vec::new();
        for h in handles {
            let (seq, result) = h.await.unwrap();
            if let Err(err) = result {
                assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
                failed.push(seq);
            }
        }
        assert_eq!(failed, vec![150]);
        let seqs: Vec<i64> = store
            .events(wf)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        let expected: Vec<i64> = (1..=200).filter(|s| *s != 150).collect();
        assert_eq!(seqs, expected);
    })
    .await;
}

/// Adoption moves the dead owner's unfinished instances and nothing else, in one go; a
/// second adoption finds nothing left.
#[tokio::test]
async fn adoption_moves_only_the_dead_owners_unfinished_instances() {
    on_both(|store, _| async move {
        let running = instance(&store, "running", Some("m1"), 1).await;
        let done = instance(&store, "succeeded", Some("m1"), 1).await;
        let pausing = instance(&store, "ready-pause", Some("m1"), 2).await;
        let stopping = instance(&store, "ready-stop", Some("m1"), 2).await;
        let paused = instance(&store, "paused", Some("m1"), 1).await;
        let others = instance(&store, "running", Some("m2"), 1).await;
        let unowned = instance(&store, "running", None, 0).await;
        let submitted = instance(&store, "submitted", Some("m1"), 2).await;

        let owned: Vec<i64> = store
            .owned_unfinished_instances("m1")
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(owned, vec![running, pausing, stopping, submitted]);

        let moved = store.adopt_instances_of("m1", "m3").await.unwrap();
        assert_eq!(moved, vec![running, pausing, stopping, submitted]);
        for (id, epoch) in moved.iter().zip([2, 3, 3, 3]) {
            let row = store.workflow_instance(*id).await.unwrap().unwrap();
            assert_eq!((row.owner.as_deref(), row.owner_gen), (Some("m3"), epoch));
        }
        for (id, owner, owner_gen) in [
            (done, Some("m1"), 1),
            (paused, Some("m1"), 1),
            (others, Some("m2"), 1),
            (unowned, None, 0),
        ] {
            let row = store.workflow_instance(id).await.unwrap().unwrap();
            assert_eq!((row.owner.as_deref(), row.owner_gen), (owner, owner_gen));
        }
        assert!(
            store
                .adopt_instances_of("m1", "m3")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .owned_unfinished_instances("m1")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.owned_unfinished_instances("m3").await.unwrap().len(),
            4
        );
        // The other listings still read the new columns.
        assert_eq!(store.unfinished_instances().await.unwrap().len(), 6);
    })
    .await;
}

/// A master claims an instance nobody owns, or its own, each claim a new epoch; never
/// another node's.
#[tokio::test]
async fn claims_take_unowned_or_own_instances_only() {
    on_both(|store, _| async move {
        let wf = instance(&store, "running", None, 0).await;
        assert_eq!(store.claim_instance(wf, "m1").await.unwrap(), Some(1));
        assert_eq!(store.claim_instance(wf, "m2").await.unwrap(), None);
        assert_eq!(
            store.claim_instance(wf, "m1").await.unwrap(),
            Some(2),
            "again"
        );
        // The earlier term is fenced by the new one.
        assert!(matches!(
            store.write(vec![fence(wf, "m1", 1), event(wf, 1)]).await,
            Err(StoreError::Fenced { .. })
        ));
        store
            .write(vec![fence(wf, "m1", 2), event(wf, 1)])
            .await
            .unwrap();
        let row = store.workflow_instance(wf).await.unwrap().unwrap();
        assert_eq!((row.owner.as_deref(), row.owner_gen), (Some("m1"), 2));
        assert_eq!(store.claim_instance(999_999, "m1").await.unwrap(), None);
    })
    .await;
}

/// A failover attempt is stored as one.
#[tokio::test]
async fn task_rows_record_failover_attempts() {
    on_both(|store, _| async move {
        let wf = instance(&store, "running", None, 0).await;
        let row = |attempt: i64, failover: bool| Write::InsertTaskInstance {
            workflow_instance_id: wf,
            task_name: "t".into(),
            task_type: "noop".into(),
            attempt,
            state: "submitted".into(),
            message: String::new(),
            host: None,
            started_at: None,
            ended_at: None,
            failover,
        };
        let ids = store
            .write(vec![row(1, false), row(2, true)])
            .await
            .unwrap();
        let first = store.task_instance(ids[0].unwrap()).await.unwrap().unwrap();
        let second = store.task_instance(ids[1].unwrap()).await.unwrap().unwrap();
        assert_eq!((first.attempt, first.failover), (1, false));
        assert_eq!((second.attempt, second.failover), (2, true));
        let listed = store.task_instances(wf).await.unwrap();
        assert_eq!(
            listed.iter().map(|r| r.failover).collect::<Vec<_>>(),
            vec![false, true]
        );
    })
    .await;
}

/// Shipped log pieces of many tasks in one batch land once each (a piece sent again, in
/// the same batch or a later one, changes nothing), read back in order from an offset,
/// and a task's log counts as complete only once its last piece is in.
#[tokio::test]
async fn log_pieces_are_stored_once_and_read_in_order() {
    on_both(|store, _| async move {
        let wf = instance(&store, "running", None, 0).await;
        let rows: Vec<Write> = (0..40)
            .map(|i| Write::InsertTaskInstance {
                workflow_instance_id: wf,
                task_name: format!("t{i}"),
                task_type: "noop".into(),
                attempt: 1,
                state: "running".into(),
                message: String::new(),
                host: Some("w1".into()),
                started_at: None,
                ended_at: None,
                failover: false,
            })
            .collect();
        let ids: Vec<i64> = store
            .write(rows)
            .await
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let piece = |id: i64, start: i64, text: &str, last: bool| Write::AppendTaskLog {
            task_instance_id: id,
            start_offset: start,
            next_offset: start + 100,
            text: text.into(),
            last,
        };
        let mut batch = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            batch.push(piece(*id, 1000, &format!("a{i}\n"), false));
            batch.push(piece(*id, 1100, &format!("b{i}\n"), i % 2 == 0));
        }
        batch.push(piece(ids[3], 1000, "sent again\n", false));
        store.write(batch).await.unwrap();
        store
            .write(vec![piece(ids[3], 1100, "sent again\n", true)])
            .await
            .unwrap();
        let read = |pieces: Vec<shoal_store::LogPiece>| {
            pieces
                .iter()
                .map(|p| (p.start_offset, p.text.clone(), p.last))
                .collect::<Vec<_>>()
        };
        let third = store.task_log_chunks(ids[3], 0, 1 << 20).await.unwrap();
        assert_eq!(
            read(third),
            vec![(1000, "a3\n".into(), false), (1100, "b3\n".into(), false)]
        );
        let later = store.task_log_chunks(ids[3], 1100, 1 << 20).await.unwrap();
        assert_eq!(read(later), vec![(1100, "b3\n".into(), false)]);
        assert!(store.task_log_complete(ids[2]).await.unwrap());
        assert!(!store.task_log_complete(ids[3]).await.unwrap());
    })
    .await;
}

/// Blobs keep every byte value, are stored once per digest, and refuse a wrong digest.
#[tokio::test]
async fn plugin_blobs_round_trip() {
    on_both(|store, _| async move {
        let small: Vec<u8> = (0..=255u8).chain([0, 0, 255, 0]).collect();
        let large: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for bytes in [&small, &large, &Vec::new()] {
            let digest = hex_sha256(bytes);
            assert!(store.put_plugin_blob(&digest, bytes).await.unwrap());
            assert!(
                !store.put_plugin_blob(&digest, bytes).await.unwrap(),
                "stored once"
            );
            assert_eq!(
                store.plugin_blob(&digest).await.unwrap().as_ref(),
                Some(bytes)
            );
        }
        let wrong = hex_sha256(b"something else");
        let err = store.put_plugin_blob(&wrong, &small).await.unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(store.plugin_blob(&wrong).await.unwrap().is_none());
    })
    .await;
}

/// A node paused in the middle of a fenced batch (its fence's row lock taken, its
/// commit not sent) cannot hold off an adoption past its hold limit: PostgreSQL ends
/// the stalled session, its batch is lost whole, and the adoption goes through. Without
/// the limit the adoption waits as long as the pause.
#[tokio::test]
async fn a_stalled_transaction_does_not_hold_off_an_adoption() {
    use shoal_store::OpenOptions;
    use shoal_store::testing::{drop_pg, fresh_pg};
    use std::time::{Duration, Instant};
    let Some((url, name)) = fresh_pg().await else {
        return;
    };
    let hold_limit = Duration::from_millis(500);
    let paused = Store::open_with(
        &url,
        OpenOptions {
            hold_limit: Some(hold_limit),
        },
    )
    .await
    .unwrap();
    let other = Store::open(&url).await.unwrap();
    let wf = instance(&paused, "running", Some("m1"), 1).await;

    let mut tx = paused.pool().begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM workflow_instances WHERE id = $1 AND owner = 'm1' AND owner_gen = 1 FOR SHARE",
    )
    .bind(wf)
    .execute(&mut *tx)
    .await
    .unwrap();
    let started = Instant::now();
    let moved = tokio::time::timeout(
        Duration::from_secs(10),
        other.adopt_instances_of("m1", "m2"),
    )
    .await
    .expect("the adoption waited on the stalled session past its hold limit")
    .unwrap();
    assert_eq!(moved, vec![wf]);
    assert!(
        started.elapsed() >= hold_limit / 2,
        "the lock was held: {:?}",
        started.elapsed()
    );
    // The stalled batch cannot commit any more.
    assert!(tx.commit().await.is_err());
    let row = other.workflow_instance(wf).await.unwrap().unwrap();
    assert_eq!((row.owner.as_deref(), row.owner_gen), (Some("m2"), 2));
    paused.close().await;
    other.close().await;
    drop_pg(&name).await;
}

/// A run group held by one engine waits for another engine's hold to end (released or
/// dropped); other groups are not held up.
#[tokio::test]
async fn a_held_run_group_keeps_other_engines_waiting() {
    use shoal_store::testing::{drop_pg, fresh_pg};
    use std::time::Duration;
    let Some((url, name)) = fresh_pg().await else {
        return;
    };
    let a = Store::open(&url).await.unwrap();
    let b = Store::open(&url).await.unwrap();
    let held = a.hold_group("serial:7").await.unwrap();
    let wait = tokio::time::timeout(Duration::from_millis(300), b.hold_group("serial:7")).await;
    assert!(
        wait.is_err(),
        "the second hold waits while the first is held"
    );
    let other = tokio::time::timeout(Duration::from_secs(5), b.hold_group("serial:8"))
        .await
        .expect("another group is free")
        .unwrap();
    other.release().await.unwrap();
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.hold_group("serial:7").await.unwrap().release().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    held.release().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("released: the second hold goes through")
        .unwrap()
        .unwrap();
    // Dropped without a release, a hold lets go too.
    drop(a.hold_group("serial:7").await.unwrap());
    tokio::time::timeout(Duration::from_secs(5), b.hold_group("serial:7"))
        .await
        .expect("dropped: free again")
        .unwrap()
        .release()
        .await
        .unwrap();
    a.close().await;
    b.close().await;
    drop_pg(&name).await;
}
