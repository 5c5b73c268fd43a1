//! The group-commit writer on PostgreSQL: a small pool of its own, native to PostgreSQL,
//! whose bulk statements pass each column as one array (`UNNEST`).
//!
//! Why not sqlx's `Any` driver, as the rest of the store uses: it cannot bind arrays, so
//! a multi-row statement needed one parameter per value (2,561 for 256 updated rows),
//! each converted twice on Shoal's side and bound on PostgreSQL's, with a new statement
//! shape per run length, and a batch of thousands of rows took a round trip per 256 of
//! them. With one array per column, a batch's rows of one kind go in one statement whose
//! text never changes (prepared once per connection). BENCHMARKS.md, issue 15, step 9.
//!
//! The writes mean what SQLite's writer ([`super::sqlite`]) makes of them, and the same
//! invariants hold: a batch is one transaction; a fenced batch stores nothing.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::{Row, Transaction};

use super::{
    ARCHIVE_TASK_INSTANCES, Batch, INSERT_WORKFLOW_INSTANCE, PUSH_COMMAND,
    UPDATE_WORKFLOW_INSTANCE, Write, changed_one,
};
use crate::{StoreError, now_ms};

/// The writer's pool: one connection in use at a time (one group at a time), one more
/// to replace it should the server drop it. `hold_limit` as the store's
/// ([`crate::OpenOptions::hold_limit`]): the writer's transactions are the ones that
/// lock an instance's row for their fence, so a paused process must not hold it longer.
pub(crate) fn pool(url: &str, hold_limit: Option<Duration>) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if let Some(limit) = hold_limit {
                    let ms = limit.as_millis().max(1);
                    sqlx::query(&format!("SET idle_in_transaction_session_timeout = {ms}"))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options))
}

/// A group of batches: one transaction. When it fails, each batch is tried alone, so
/// only the bad one fails.
pub(super) async fn commit_group(pool: &PgPool, group: Vec<Batch>) {
    let together = async {
        let mut tx = pool.begin().await?;
        let mut results = Vec::with_capacity(group.len());
        for batch in &group {
            results.push(apply(&mut tx, &batch.writes).await?);
        }
        tx.commit().await?;
        Ok::<_, StoreError>(results)
    };
    match together.await {
        Ok(results) => {
            for (batch, result) in group.into_iter().zip(results) {
                let _ = batch.done.send(Ok(result));
            }
        }
        Err(err) if group.len() == 1 => {
            let _ = group.into_iter().next().map(|b| b.done.send(Err(err)));
        }
        Err(_) => {
            // Someone's write is bad; find out whose without failing the others.
            for batch in group {
                let alone = async {
                    let mut tx = pool.begin().await?;
                    let r = apply(&mut tx, &batch.writes).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(r)
                };
                let _ = batch.done.send(alone.await);
            }
        }
    }
}

/// One batch's writes: the one-row statements in order, then each bulk kind in one
/// statement. Returns each write's new id, where it has one.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    writes: &[Write],
) -> Result<Vec<Option<i64>>, StoreError> {
    let now = now_ms();
    let mut ids = Vec::with_capacity(writes.len());
    let mut events = Vec::new();
    let mut task_rows = Vec::new();
    let mut updates = Vec::new();
    let mut log_pieces = Vec::new();
    for write in writes {
        let id = match write {
            Write::InsertWorkflowInstance {
                definition_id,
                version,
                name,
                state,
                schedule_time,
                startup_params,
                start_tasks,
                parent_task_instance_id,
                owner,
                owner_gen,
                idempotency_key,
            } => Some(
                sqlx::query(INSERT_WORKFLOW_INSTANCE)
                    .bind(definition_id)
                    .bind(version)
                    .bind(name)
                    .bind(state)
                    .bind(schedule_time)
                    .bind(startup_params.to_string())
                    .bind(start_tasks.to_string())
                    .bind(parent_task_instance_id)
                    .bind(now)
                    .bind(now)
                    .bind(owner)
                    .bind(owner_gen)
                    .bind(idempotency_key)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get::<i64, _>(0)?,
            ),
            Write::UpdateWorkflowInstance {
                id,
                state,
                started_at,
                ended_at,
            } => {
                let done = sqlx::query(UPDATE_WORKFLOW_INSTANCE)
                    .bind(state)
                    .bind(started_at)
                    .bind(ended_at)
                    .bind(now)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                changed_one(done.rows_affected(), "workflow instance", *id)?;
                None
            }
            Write::InsertTaskInstance { .. } => {
                // Inserted together below; the id is filled in then.
                task_rows.push((ids.len(), write));
                None
            }
            Write::UpdateTaskInstance { .. } => {
                updates.push(write);
                None
            }
            Write::ArchiveTaskInstances {
                workflow_instance_id,
            } => {
                sqlx::query(ARCHIVE_TASK_INSTANCES)
                    .bind(now)
                    .bind(workflow_instance_id)
                    .execute(&mut **tx)
                    .await?;
                None
            }
            Write::AppendEvent { .. } => {
                events.push(write);
                None
            }
            Write::Fence {
                workflow_instance_id,
                owner,
                owner_gen,
            } => {
                fence(tx, *workflow_instance_id, owner, *owner_gen).await?;
                None
            }
            Write::AppendTaskLog { .. } => {
                log_pieces.push(write);
                None
            }
            Write::PushCommand {
                kind,
                workflow_instance_id,
                payload,
            } => Some(
                sqlx::query(PUSH_COMMAND)
                    .bind(kind)
                    .bind(workflow_instance_id)
                    .bind(payload.to_string())
                    .bind(now)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get::<i64, _>(0)?,
            ),
        };
        ids.push(id);
    }
    // Updates name rows stored before this batch (an id is known only once stored), so
    // running them after the loop changes nothing but the number of round trips.
    update_task_rows(tx, &updates, now).await?;
    // After the loop on purpose: a rerun's archiving must see only the old rows.
    insert_task_rows(tx, &task_rows, now, &mut ids).await?;
    append_events(tx, &events, now).await?;
    append_log_pieces(tx, &log_pieces).await?;
    Ok(ids)
}

/// Fail unless `owner` at `owner_gen` still owns the instance, and keep it so until the
/// transaction ends: a plain read would let an adoption commit between this check and
/// the batch's commit, and the stale owner's writes would land after it. The row is
/// locked (`FOR SHARE`: an adoption's UPDATE waits, then sees the new owner); SQLite's
/// writer holds the database's write lock instead ([`super::sqlite`]).
async fn fence(
    tx: &mut Transaction<'_, Postgres>,
    instance: i64,
    owner: &str,
    owner_gen: i64,
) -> Result<(), StoreError> {
    let held = sqlx::query(
        "SELECT 1 FROM workflow_instances WHERE id = $1 AND owner = $2 AND owner_gen = $3 FOR SHARE",
    )
    .bind(instance)
    .bind(owner)
    .bind(owner_gen)
    .fetch_optional(&mut **tx)
    .await?
    .is_some();
    if held {
        Ok(())
    } else {
        Err(StoreError::Fenced {
            instance,
            owner: owner.to_owned(),
            owner_gen,
        })
    }
}

/// Rows are found by their key in the transaction's statements, never by a scan.
///
/// For an `UPDATE ... FROM` a list of a few hundred rows, PostgreSQL's planner picks a
/// hash join over a scan of all of `task_instances` while the table is small (it prices
/// a random page read at four sequential ones): 6.9 ms for 512 rows of a 20,000-row
/// table, against 3.1 ms through the key, and the scan grows with the table's whole
/// history. Every statement of a write batch names its rows by key, so turning scans off
/// for the transaction changes nothing else.
pub(crate) async fn prefer_keys(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Updates task rows, one array per column (then the update time), returning the ids it
/// found.
pub(crate) const UPDATE_TASK_ROWS: &str = "UPDATE task_instances AS t SET state = v.state, host = COALESCE(v.host, t.host), \
     plugin_version = COALESCE(v.plugin_version, t.plugin_version), handle = COALESCE(v.handle, t.handle), \
     message = COALESCE(v.message, t.message), out_params = COALESCE(v.out_params, t.out_params), \
     log_path = COALESCE(v.log_path, t.log_path), started_at = COALESCE(v.started_at, t.started_at), \
     ended_at = COALESCE(v.ended_at, t.ended_at), updated_at = $11 \
     FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::BIGINT[], $10::BIGINT[]) \
     AS v(id, state, host, plugin_version, handle, message, out_params, log_path, started_at, ended_at) \
     WHERE t.id = v.id RETURNING t.id";

/// Task row updates. A row named twice in one batch is updated in order: each run of
/// updates without a repeated id is one statement (one statement updates a row once,
/// from an arbitrary one of its matches).
async fn update_task_rows(
    tx: &mut Transaction<'_, Postgres>,
    updates: &[&Write],
    now: i64,
) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    prefer_keys(tx).await?;
    let mut segment_start = 0;
    let mut seen = std::collections::HashSet::new();
    let mut segments = Vec::new();
    for (i, write) in updates.iter().enumerate() {
        if let Write::UpdateTaskInstance { id, .. } = write
            && !seen.insert(*id)
        {
            segments.push(segment_start..i);
            segment_start = i;
            seen.clear();
            seen.insert(*id);
        }
    }
    segments.push(segment_start..updates.len());
    for segment in segments {
        let rows = &updates[segment];
        let n = rows.len();
        let mut ids = Vec::with_capacity(n);
        let mut states = Vec::with_capacity(n);
        let mut hosts = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        let mut messages = Vec::with_capacity(n);
        let mut outs = Vec::with_capacity(n);
        let mut logs = Vec::with_capacity(n);
        let mut starts = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        for write in rows {
            if let Write::UpdateTaskInstance {
                id,
                state,
                host,
                plugin_version,
                handle,
                message,
                out_params,
                log_path,
                started_at,
                ended_at,
            } = write
            {
                ids.push(*id);
                states.push(state.as_str());
                hosts.push(host.as_deref());
                versions.push(plugin_version.as_deref());
                handles.push(handle.as_deref());
                messages.push(message.as_deref());
                outs.push(out_params.as_ref().map(|v| v.to_string()));
                logs.push(log_path.as_deref());
                starts.push(*started_at);
                ends.push(*ended_at);
            }
        }
        let mut wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
        let found = sqlx::query(UPDATE_TASK_ROWS)
            .bind(&ids)
            .bind(&states)
            .bind(&hosts)
            .bind(&versions)
            .bind(&handles)
            .bind(&messages)
            .bind(&outs)
            .bind(&logs)
            .bind(&starts)
            .bind(&ends)
            .bind(now)
            .fetch_all(&mut **tx)
            .await?;
        for row in found {
            wanted.remove(&row.try_get::<i64, _>(0)?);
        }
        if let Some(id) = wanted.into_iter().min() {
            return Err(StoreError::NotFound(format!("task instance {id}")));
        }
    }
    Ok(())
}

const INSERT_TASK_ROWS: &str = "INSERT INTO task_instances (workflow_instance_id, task_name, task_type, attempt, state, message, host, out_params, started_at, ended_at, created_at, updated_at, failover) \
     SELECT w, n, ty, a, s, m, h, '{}', st, en, $11, $11, f \
     FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[]) \
     AS v(w, n, ty, a, s, m, h, st, en, f) \
     RETURNING id, workflow_instance_id, task_name, attempt";

/// New task rows in one statement, each new id put at its write's place in `ids`. A
/// batch creates at most one row per (instance, task, attempt), which is how the
/// returned ids are matched to their writes (no order is promised).
async fn insert_task_rows(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[(usize, &Write)],
    now: i64,
    ids: &mut [Option<i64>],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut instances = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut messages = Vec::with_capacity(n);
    let mut hosts = Vec::with_capacity(n);
    let mut starts = Vec::with_capacity(n);
    let mut ends = Vec::with_capacity(n);
    let mut failovers = Vec::with_capacity(n);
    let mut wanted = std::collections::HashMap::with_capacity(n);
    for (index, write) in rows {
        if let Write::InsertTaskInstance {
            workflow_instance_id,
            task_name,
            task_type,
            attempt,
            state,
            message,
            host,
            started_at,
            ended_at,
            failover,
        } = write
        {
            wanted.insert(
                (*workflow_instance_id, task_name.as_str(), *attempt),
                *index,
            );
            instances.push(*workflow_instance_id);
            names.push(task_name.as_str());
            types.push(task_type.as_str());
            attempts.push(*attempt);
            states.push(state.as_str());
            messages.push(message.as_str());
            hosts.push(host.as_deref());
            starts.push(*started_at);
            ends.push(*ended_at);
            failovers.push(i64::from(*failover));
        }
    }
    let inserted = sqlx::query(INSERT_TASK_ROWS)
        .bind(&instances)
        .bind(&names)
        .bind(&types)
        .bind(&attempts)
        .bind(&states)
        .bind(&messages)
        .bind(&hosts)
        .bind(&starts)
        .bind(&ends)
        .bind(&failovers)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
    for row in &inserted {
        let name: &str = row.try_get(2)?;
        let key = (row.try_get::<i64, _>(1)?, name, row.try_get::<i64, _>(3)?);
        let index = wanted.remove(&key).ok_or_else(|| {
            StoreError::Corrupt(format!("an inserted task row came back unasked: {key:?}"))
        })?;
        ids[index] = Some(row.try_get::<i64, _>(0)?);
    }
    if let Some((key, _)) = wanted.into_iter().next() {
        return Err(StoreError::Corrupt(format!(
            "a task row was not inserted: {key:?}"
        )));
    }
    Ok(())
}

const APPEND_EVENTS: &str = "INSERT INTO workflow_events (workflow_instance_id, seq, kind, payload, created_at) \
     SELECT i, s, k, p, $5 FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[]) AS v(i, s, k, p)";

/// Event rows in one statement: a busy instance appends thousands per batch.
async fn append_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&Write],
    now: i64,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let (mut instances, mut seqs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut kinds, mut payloads) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for event in events {
        if let Write::AppendEvent {
            workflow_instance_id,
            seq,
            kind,
            payload,
        } = event
        {
            instances.push(*workflow_instance_id);
            seqs.push(*seq);
            kinds.push(kind.as_str());
            payloads.push(payload.as_str());
        }
    }
    sqlx::query(APPEND_EVENTS)
        .bind(&instances)
        .bind(&seqs)
        .bind(&kinds)
        .bind(&payloads)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const APPEND_LOG_PIECES: &str = "INSERT INTO task_log_chunks (task_instance_id, start_offset, next_offset, text, last) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[]) \
     ON CONFLICT (task_instance_id, start_offset) DO NOTHING";

/// Log pieces in one statement; a piece stored before (sent again) is left as it is.
async fn append_log_pieces(
    tx: &mut Transaction<'_, Postgres>,
    pieces: &[&Write],
) -> Result<(), StoreError> {
    if pieces.is_empty() {
        return Ok(());
    }
    let n = pieces.len();
    let (mut tasks, mut starts, mut nexts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut texts, mut lasts) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for piece in pieces {
        if let Write::AppendTaskLog {
            task_instance_id,
            start_offset,
            next_offset,
            text,
            last,
        } = piece
        {
            tasks.push(*task_instance_id);
            starts.push(*start_offset);
            nexts.push(*next_offset);
            texts.push(text.as_str());
            lasts.push(i64::from(*last));
        }
    }
    sqlx::query(APPEND_LOG_PIECES)
        .bind(&tasks)
        .bind(&starts)
        .bind(&nexts)
        .bind(&texts)
        .bind(&lasts)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
