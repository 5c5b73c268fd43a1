//! Group commit: the hot path's writes, batched. On SQLite the writer runs its
//! transactions on a connection of its own ([`sqlite`]); on PostgreSQL through sqlx (here).
//!
//! Every engine worker that changes state sends its writes here and waits. One task
//! drains whatever has queued up meanwhile and applies it all in one transaction, so a
//! thousand concurrent state changes cost one commit (one fsync), not a thousand. A
//! batch that fails is retried alone, so one bad write fails only its own caller.
//!
//! Architecture invariant: a batch holding a [`Write::Fence`] commits only while
//! its instance is still owned by that owner and generation, checked inside the batch's
//! transaction with the row locked against a concurrent change of owner; a fenced batch
//! fails alone with [`StoreError::Fenced`] and leaves nothing behind.

mod sqlite;

use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::{Backend, StoreError, now_ms};

/// A state change.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Returns the new instance id.
    InsertWorkflowInstance {
        definition_id: i64,
        version: i64,
        name: String,
        state: String,
        schedule_time: i64,
        startup_params: serde_json::Value,
        start_tasks: serde_json::Value,
        parent_task_instance_id: Option<i64>,
        /// The master that creates it (None in single-node mode) and its generation.
        owner: Option<String>,
        owner_gen: i64,
        /// The `Idempotency-Key` the run was asked with, if any.
        idempotency_key: Option<String>,
    },
    UpdateWorkflowInstance {
        id: i64,
        state: String,
        started_at: Option<i64>,
        ended_at: Option<i64>,
    },
    /// Returns the new task instance id.
    InsertTaskInstance {
        workflow_instance_id: i64,
        task_name: String,
        task_type: String,
        attempt: i64,
        state: String,
        message: String,
        host: Option<String>,
        started_at: Option<i64>,
        ended_at: Option<i64>,
        /// This attempt replaces one lost with its worker (not a retry).
        failover: bool,
    },
    /// A rerun: the instance's current task rows become history.
    ArchiveTaskInstances { workflow_instance_id: i64 },
    /// Fields left `None` keep their stored value.
    UpdateTaskInstance {
        id: i64,
        state: String,
        host: Option<String>,
        plugin_version: Option<String>,
        handle: Option<String>,
        message: Option<String>,
        out_params: Option<serde_json::Value>,
        log_path: Option<String>,
        started_at: Option<i64>,
        ended_at: Option<i64>,
    },
    /// Appends to an instance's ordered event stream; `seq` is assigned by the single
    /// worker that owns the instance, and a duplicate `seq` is refused by the database.
    AppendEvent {
        workflow_instance_id: i64,
        seq: i64,
        kind: String,
        /// JSON text (an object), serialized once where the event is made: a task's
        /// transitions are most of the hot path's events, and building a
        /// `serde_json::Value` for each only to print it cost ~40k instructions per
        /// task (BENCHMARKS.md, issue 15, step 6).
        payload: String,
    },
    /// Refuses the whole batch with [`StoreError::Fenced`] unless the instance is owned
    /// by `owner` at `owner_gen` when the batch commits. A refusal rolls back the writes
    /// before the fence as well; put it first so a fenced batch does no work in vain.
    Fence {
        workflow_instance_id: i64,
        owner: String,
        owner_gen: i64,
    },
    /// A piece of a task's log shipped from the node that ran it; stored once however
    /// often it is sent.
    AppendTaskLog {
        task_instance_id: i64,
        start_offset: i64,
        next_offset: i64,
        text: String,
        last: bool,
    },
    /// Returns the command id.
    PushCommand {
        kind: String,
        workflow_instance_id: Option<i64>,
        payload: serde_json::Value,
    },
}

// The statements both writers run ([`sqlite`] binds the same `$n` by position: each
// appears once, in order).
pub(super) const INSERT_WORKFLOW_INSTANCE: &str = "INSERT INTO workflow_instances (definition_id, version, name, state, schedule_time, startup_params, start_tasks, parent_task_instance_id, created_at, updated_at, owner, owner_gen, idempotency_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";
pub(super) const UPDATE_WORKFLOW_INSTANCE: &str = "UPDATE workflow_instances SET state = $1, started_at = COALESCE($2, started_at), ended_at = COALESCE($3, ended_at), updated_at = $4 WHERE id = $5";
pub(super) const ARCHIVE_TASK_INSTANCES: &str = "UPDATE task_instances SET archived = 1, updated_at = $1 WHERE workflow_instance_id = $2 AND archived = 0";
pub(super) const PUSH_COMMAND: &str = "INSERT INTO commands (kind, workflow_instance_id, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id";

struct Batch {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<Vec<Option<i64>>, StoreError>>,
}

/// Most batches folded into one transaction.
const MAX_GROUP: usize = 1024;

#[derive(Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::UnboundedSender<Batch>,
}

impl GroupCommit {
    /// The writer; on SQLite, `sqlite_file` is the database it opens a connection of its
    /// own to ([`sqlite`]), run on the writer's thread rather than sqlx's.
    pub(crate) fn start(
        pool: AnyPool,
        backend: Backend,
        sqlite_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        if backend == Backend::Sqlite {
            let path = sqlite_file.ok_or_else(|| {
                StoreError::UnsupportedUrl(
                    "an in-memory SQLite database (give a file: sqlite://PATH)".to_owned(),
                )
            })?;
            let mut conn = sqlite::open(path)?;
            tokio::spawn(async move {
                while let Some(first) = rx.recv().await {
                    // Synchronous, on this task's thread: a batch's transaction takes
                    // tens of microseconds here, less than one hand-off to another thread.
                    let deadline = tokio::time::Instant::now() + sqlite::BUSY_TIMEOUT;
                    let mut pending = gather(first, &mut rx);
                    while let sqlite::Committed::Busy(back) =
                        sqlite::commit_group(&mut conn, pending)
                    {
                        if tokio::time::Instant::now() >= deadline {
                            for batch in back {
                                let _ = batch.done.send(Err(StoreError::Unavailable(format!(
                                    "another writer held the database for {:?}",
                                    sqlite::BUSY_TIMEOUT
                                ))));
                            }
                            break;
                        }
                        pending = back;
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
            });
            return Ok(Self { tx });
        }
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                commit_group(&pool, gather(first, &mut rx)).await;
            }
        });
        Ok(Self { tx })
    }

    pub(crate) async fn submit(&self, writes: Vec<Write>) -> Result<Vec<Option<i64>>, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Batch { writes, done })
            .map_err(|_| StoreError::WriterStopped)?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// An update by key must change its one row: none changed means the row is gone, and
/// both writers say so alike.
fn changed_one(changed: u64, what: &str, id: i64) -> Result<(), StoreError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("{what} {id}")))
    }
}

/// `first` and whatever queued behind it (up to [`MAX_GROUP`]): one transaction's worth.
fn gather(first: Batch, rx: &mut mpsc::UnboundedReceiver<Batch>) -> Vec<Batch> {
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(b) => group.push(b),
            Err(_) => break,
        }
    }
    group
}

/// PostgreSQL's group: one transaction through sqlx.
async fn commit_group(pool: &AnyPool, group: Vec<Batch>) {
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

async fn apply(
    tx: &mut Transaction<'_, Any>,
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
                // Many rows per statement below: one round trip each would dominate.
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
                // Appended together below: one statement per many events.
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
                // Together below: a fan-out's remote tasks each end with a piece.
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
/// the batch's commit, and the stale owner's writes would land after it. PostgreSQL
/// locks the row (`FOR SHARE`: an adoption's UPDATE waits, then sees the new owner);
/// SQLite's writer holds the database's write lock instead ([`sqlite`]).
async fn fence(
    tx: &mut Transaction<'_, Any>,
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

/// Most rows in one multi-row statement: PostgreSQL pays a round trip per statement, so
/// they are large.
const ROWS_PER_STATEMENT: usize = 256;

/// `0..len` in runs whose lengths are powers of two, largest first, none above `max`:
/// a multi-row statement then comes in a handful of shapes, each prepared once per
/// connection, not in one shape per batch size.
fn runs(len: usize, max: usize) -> Vec<std::ops::Range<usize>> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < len {
        let left = len - start;
        let size = if left >= max {
            max
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        out.push(start..start + size);
        start += size;
    }
    out
}

/// Parameters per row of [`update_rows_sql`].
const UPDATE_PARAMS: usize = 10;

/// Rows are found by their key in the transaction's statements, never by a scan.
///
/// For an `UPDATE ... FROM (VALUES ...)` of a few hundred rows, PostgreSQL's planner
/// picks a hash join over a scan of all of `task_instances` while the table is small
/// (it prices a random page read at four sequential ones): 6.9 ms for 512 rows of a
/// 20,000-row table, against 3.1 ms through the key, and the scan grows with the table's
/// whole history. Every statement of a write batch names its rows by key, so turning
/// scans off for the transaction changes nothing else.
pub(crate) async fn prefer_keys(tx: &mut Transaction<'_, Any>) -> Result<(), StoreError> {
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The statement updating `rows` task rows ([`UPDATE_PARAMS`] parameters each, then the
/// update time) and returning the ids it found.
pub(crate) fn update_rows_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let b = 1 + i * UPDATE_PARAMS;
            format!(
                "(${}::BIGINT, ${}::TEXT, ${}::TEXT, ${}::TEXT, ${}::TEXT, ${}::TEXT, ${}::TEXT, ${}::TEXT, ${}::BIGINT, ${}::BIGINT)",
                b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9
            )
        })
        .collect();
    format!(
        "UPDATE task_instances AS t SET state = v.state, host = COALESCE(v.host, t.host), \
         plugin_version = COALESCE(v.plugin_version, t.plugin_version), handle = COALESCE(v.handle, t.handle), \
         message = COALESCE(v.message, t.message), out_params = COALESCE(v.out_params, t.out_params), \
         log_path = COALESCE(v.log_path, t.log_path), started_at = COALESCE(v.started_at, t.started_at), \
         ended_at = COALESCE(v.ended_at, t.ended_at), updated_at = ${} \
         FROM (VALUES {}) AS v(id, state, host, plugin_version, handle, message, out_params, log_path, started_at, ended_at) \
         WHERE t.id = v.id RETURNING t.id",
        rows * UPDATE_PARAMS + 1,
        values.join(", ")
    )
}

/// Task row updates on PostgreSQL, many rows per `UPDATE ... FROM (VALUES ...)`. A row
/// named twice in one batch is updated in order: a run never holds an id twice (one
/// statement updates a row once, from an arbitrary one of its matches).
async fn update_task_rows(
    tx: &mut Transaction<'_, Any>,
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
        for run in runs(rows.len(), ROWS_PER_STATEMENT) {
            let chunk = &rows[run];
            let sql = update_rows_sql(chunk.len());
            let mut query = sqlx::query(&sql);
            let mut wanted = std::collections::HashSet::new();
            for write in chunk {
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
                    wanted.insert(*id);
                    query = query
                        .bind(*id)
                        .bind(state.as_str())
                        .bind(host.clone())
                        .bind(plugin_version.clone())
                        .bind(handle.clone())
                        .bind(message.clone())
                        .bind(out_params.as_ref().map(|v| v.to_string()))
                        .bind(log_path.clone())
                        .bind(*started_at)
                        .bind(*ended_at);
                }
            }
            query = query.bind(now);
            for row in query.fetch_all(&mut **tx).await? {
                wanted.remove(&row.try_get::<i64, _>(0)?);
            }
            if let Some(id) = wanted.into_iter().min() {
                return Err(StoreError::NotFound(format!("task instance {id}")));
            }
        }
    }
    Ok(())
}

/// New task rows in as few statements as possible, each new id put at its write's place
/// in `ids`. A batch creates at most one row per (instance, task, attempt), which is how
/// the returned ids are matched to their writes (neither database promises an order).
async fn insert_task_rows(
    tx: &mut Transaction<'_, Any>,
    rows: &[(usize, &Write)],
    now: i64,
    ids: &mut [Option<i64>],
) -> Result<(), StoreError> {
    for run in runs(rows.len(), ROWS_PER_STATEMENT) {
        let chunk = &rows[run];
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p: Vec<String> = (1..=12).map(|k| param(i * 12 + k)).collect();
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, '{{}}', {}, {}, {}, {}, {})",
                    p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO task_instances (workflow_instance_id, task_name, task_type, attempt, state, message, host, out_params, started_at, ended_at, created_at, updated_at, failover) \
             VALUES {} RETURNING id, workflow_instance_id, task_name, attempt",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        let mut wanted = std::collections::HashMap::new();
        for (index, write) in chunk {
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
                wanted.insert((*workflow_instance_id, task_name.clone(), *attempt), *index);
                query = query
                    .bind(*workflow_instance_id)
                    .bind(task_name.as_str())
                    .bind(task_type.as_str())
                    .bind(*attempt)
                    .bind(state.as_str())
                    .bind(message.as_str())
                    .bind(host.clone())
                    .bind(*started_at)
                    .bind(*ended_at)
                    .bind(now)
                    .bind(now)
                    .bind(i64::from(*failover));
            }
        }
        for row in query.fetch_all(&mut **tx).await? {
            let key = (
                row.try_get::<i64, _>(1)?,
                row.try_get::<String, _>(2)?,
                row.try_get::<i64, _>(3)?,
            );
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
    }
    Ok(())
}

/// The `n`th (1-based) parameter of a statement.
fn param(n: usize) -> String {
    format!("${n}")
}

/// `($1, $2, ...), ($k, ...)`: the VALUES of a multi-row statement, `per_row`
/// parameters in each of `rows` rows.
fn placeholders(rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=per_row).map(|k| param(r * per_row + k)).collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Event rows in as few statements as possible: a busy instance appends thousands per
/// batch, and one round trip each would dominate on PostgreSQL.
async fn append_events(
    tx: &mut Transaction<'_, Any>,
    events: &[&Write],
    now: i64,
) -> Result<(), StoreError> {
    for run in runs(events.len(), ROWS_PER_STATEMENT) {
        let chunk = &events[run];
        let sql = format!(
            "INSERT INTO workflow_events (workflow_instance_id, seq, kind, payload, created_at) VALUES {}",
            placeholders(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for event in chunk {
            if let Write::AppendEvent {
                workflow_instance_id,
                seq,
                kind,
                payload,
            } = event
            {
                query = query
                    .bind(*workflow_instance_id)
                    .bind(*seq)
                    .bind(kind.as_str())
                    .bind(payload.as_str())
                    .bind(now);
            }
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Log pieces in as few statements as possible; a piece stored before (sent again) is
/// left as it is.
async fn append_log_pieces(
    tx: &mut Transaction<'_, Any>,
    pieces: &[&Write],
) -> Result<(), StoreError> {
    for run in runs(pieces.len(), ROWS_PER_STATEMENT) {
        let chunk = &pieces[run];
        let sql = format!(
            "INSERT INTO task_log_chunks (task_instance_id, start_offset, next_offset, text, last) \
             VALUES {} ON CONFLICT (task_instance_id, start_offset) DO NOTHING",
            placeholders(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for piece in chunk {
            if let Write::AppendTaskLog {
                task_instance_id,
                start_offset,
                next_offset,
                text,
                last,
            } = piece
            {
                query = query
                    .bind(*task_instance_id)
                    .bind(*start_offset)
                    .bind(*next_offset)
                    .bind(text.as_str())
                    .bind(i64::from(*last));
            }
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_powers_of_two_covering_everything_in_order() {
        for len in 0..600 {
            let r = runs(len, 256);
            let mut next = 0;
            for run in &r {
                assert_eq!(run.start, next);
                assert!(
                    run.len().is_power_of_two() && run.len() <= 256,
                    "{len}: {r:?}"
                );
                next = run.end;
            }
            assert_eq!(next, len);
        }
        assert_eq!(runs(300, 256), vec![0..256, 256..288, 288..296, 296..300]);
    }

    #[test]
    fn placeholders_number_every_parameter_once() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1), "($1)");
    }
}
