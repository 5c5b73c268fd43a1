//! The group-commit writer's own SQLite connection, used on the calling thread.
//!
//! sqlx runs every SQLite statement on a thread of the connection's own: each statement
//! is a hand-off and a wake-up there and back, and a batch's transaction (BEGIN, a few
//! statements, COMMIT) costs 311–679 µs on this project's 2-core machines against 50–56
//! µs when SQLite runs it where it is called (BENCHMARKS.md, issue 15, step 3). The
//! writer is one task applying one batch at a time, so it keeps one connection and runs
//! each batch's transaction synchronously. The writes mean what PostgreSQL's writer
//! ([`super::apply`]) makes of them, the one-row statements are the same text, and the
//! same invariants hold (a batch is one transaction; a fenced batch stores nothing).
//!
//! The transaction begins IMMEDIATE: it takes the database's write lock first, so a
//! fence's no-op UPDATE never has to upgrade a read lock (which SQLite may refuse at
//! once rather than wait for), and a concurrent writer (the API's own sqlx writes)
//! is waited for up to the busy timeout.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, TransactionBehavior, params_from_iter};

use super::{
    ARCHIVE_TASK_INSTANCES, Batch, INSERT_WORKFLOW_INSTANCE, PUSH_COMMAND,
    UPDATE_WORKFLOW_INSTANCE, Write, changed_one, runs,
};
use crate::{StoreError, now_ms};

const UPDATE_TASK_INSTANCE: &str = "UPDATE task_instances SET state = $1, host = COALESCE($2, host), plugin_version = COALESCE($3, plugin_version), \
     handle = COALESCE($4, handle), message = COALESCE($5, message), out_params = COALESCE($6, out_params), \
     log_path = COALESCE($7, log_path), started_at = COALESCE($8, started_at), ended_at = COALESCE($9, ended_at), updated_at = $10 \
     WHERE id = $11";
/// The fence: a no-op UPDATE of the instance's row, under the transaction's write lock,
/// that finds the row only while `owner` at `owner_gen` still owns it.
const FENCE: &str = "UPDATE workflow_instances SET owner_gen = owner_gen WHERE id = $1 AND owner = $2 AND owner_gen = $3";

/// How long a batch waits for another writer's lock (as the sqlx connections do).
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long one attempt to take the write lock may block the writer's thread (a tokio
/// worker). Past it the writer gives the thread back, sleeps and tries again
/// ([`Committed::Busy`]): the other writer's transaction may need this very thread to
/// finish, and blocking it for the whole [`BUSY_TIMEOUT`] could starve it.
const BUSY_SLICE: std::time::Duration = std::time::Duration::from_millis(20);

/// Statements kept prepared: a handful of shapes per write kind (multi-row statements
/// come in power-of-two row counts).
const STATEMENT_CACHE: usize = 64;

pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_SLICE)?;
    // The shipped durability settings, as every sqlx connection has them.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// What became of a group.
pub(crate) enum Committed {
    /// Every batch got its answer.
    Answered,
    /// Another writer held the lock past [`BUSY_SLICE`]: nothing was done yet.
    Busy(Vec<Batch>),
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Commit `group` in one transaction; if that fails, each batch alone, so one bad
/// write fails only its own caller.
pub(crate) fn commit_group(conn: &mut Connection, group: Vec<Batch>) -> Committed {
    // The write lock first: once it is held, nothing else makes this group wait.
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) if is_busy(&e) => return Committed::Busy(group),
        Err(e) => {
            let why = e.to_string();
            for batch in group {
                let _ = batch.done.send(Err(StoreError::Unavailable(why.clone())));
            }
            return Committed::Answered;
        }
    };
    let together = (|| {
        let mut results = Vec::with_capacity(group.len());
        for batch in &group {
            results.push(apply(&tx, &batch.writes)?);
        }
        tx.commit()?;
        Ok::<_, StoreError>(results)
    })();
    match together {
        Ok(results) => {
            for (batch, result) in group.into_iter().zip(results) {
                let _ = batch.done.send(Ok(result));
            }
        }
        Err(err) if group.len() == 1 => {
            let _ = group.into_iter().next().map(|b| b.done.send(Err(err)));
        }
        Err(_) => {
            // The failed transaction rolled back when it was dropped.
            for batch in group {
                let alone = (|| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let r = apply(&tx, &batch.writes)?;
                    tx.commit()?;
                    Ok::<_, StoreError>(r)
                })();
                let _ = batch.done.send(alone);
            }
        }
    }
    Committed::Answered
}

fn int(v: impl Into<i64>) -> Value {
    Value::Integer(v.into())
}

fn opt_int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Integer)
}

fn text(v: &str) -> Value {
    Value::Text(v.to_owned())
}

fn opt_text(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::Text(s.to_owned()))
}

/// Run `sql` with `args`; the number of rows it changed.
fn execute(tx: &Transaction<'_>, sql: &str, args: Vec<Value>) -> Result<usize, StoreError> {
    Ok(tx.prepare_cached(sql)?.execute(params_from_iter(args))?)
}

/// Run `sql` with `args` and read the first `columns` columns of every row it returns.
fn fetch(
    tx: &Transaction<'_>,
    sql: &str,
    args: Vec<Value>,
    columns: usize,
) -> Result<Vec<Vec<Value>>, StoreError> {
    let mut statement = tx.prepare_cached(sql)?;
    let mut rows = statement.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(
            (0..columns)
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<_, _>>()?,
        );
    }
    Ok(out)
}

fn as_int(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Integer(i) => Ok(*i),
        other => Err(StoreError::Corrupt(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

fn returned_id(tx: &Transaction<'_>, sql: &str, args: Vec<Value>) -> Result<i64, StoreError> {
    let rows = fetch(tx, sql, args, 1)?;
    let first = rows
        .first()
        .and_then(|r| r.first())
        .ok_or_else(|| StoreError::Corrupt(format!("no id returned by `{sql}`")))?;
    as_int(first)
}

/// One batch's writes, in the order [`super::apply`] applies them on PostgreSQL.
fn apply(tx: &Transaction<'_>, writes: &[Write]) -> Result<Vec<Option<i64>>, StoreError> {
    let now = now_ms();
    let mut ids = Vec::with_capacity(writes.len());
    let mut events = Vec::new();
    let mut task_rows = Vec::new();
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
            } => Some(returned_id(
                tx,
                INSERT_WORKFLOW_INSTANCE,
                vec![
                    int(*definition_id),
                    int(*version),
                    text(name),
                    text(state),
                    int(*schedule_time),
                    Value::Text(startup_params.to_string()),
                    Value::Text(start_tasks.to_string()),
                    opt_int(*parent_task_instance_id),
                    int(now),
                    int(now),
                    opt_text(owner.as_deref()),
                    int(*owner_gen),
                    opt_text(idempotency_key.as_deref()),
                ],
            )?),
            Write::UpdateWorkflowInstance {
                id,
                state,
                started_at,
                ended_at,
            } => {
                let done = execute(
                    tx,
                    UPDATE_WORKFLOW_INSTANCE,
                    vec![
                        text(state),
                        opt_int(*started_at),
                        opt_int(*ended_at),
                        int(now),
                        int(*id),
                    ],
                )?;
                changed_one(done as u64, "workflow instance", *id)?;
                None
            }
            Write::InsertTaskInstance { .. } => {
                task_rows.push((ids.len(), write));
                None
            }
            Write::UpdateTaskInstance {
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
            } => {
                let done = execute(
                    tx,
                    UPDATE_TASK_INSTANCE,
                    vec![
                        text(state),
                        opt_text(host.as_deref()),
                        opt_text(plugin_version.as_deref()),
                        opt_text(handle.as_deref()),
                        opt_text(message.as_deref()),
                        out_params
                            .as_ref()
                            .map_or(Value::Null, |v| Value::Text(v.to_string())),
                        opt_text(log_path.as_deref()),
                        opt_int(*started_at),
                        opt_int(*ended_at),
                        int(now),
                        int(*id),
                    ],
                )?;
                changed_one(done as u64, "task instance", *id)?;
                None
            }
            Write::ArchiveTaskInstances {
                workflow_instance_id,
            } => {
                execute(
                    tx,
                    ARCHIVE_TASK_INSTANCES,
                    vec![int(now), int(*workflow_instance_id)],
                )?;
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
                // Under the transaction's write lock: no adoption can commit before this
                // batch does (see `super::fence`).
                let held = execute(
                    tx,
                    FENCE,
                    vec![int(*workflow_instance_id), text(owner), int(*owner_gen)],
                )? == 1;
                if !held {
                    return Err(StoreError::Fenced {
                        instance: *workflow_instance_id,
                        owner: owner.clone(),
                        owner_gen: *owner_gen,
                    });
                }
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
            } => Some(returned_id(
                tx,
                PUSH_COMMAND,
                vec![
                    text(kind),
                    opt_int(*workflow_instance_id),
                    Value::Text(payload.to_string()),
                    int(now),
                ],
            )?),
        };
        ids.push(id);
    }
    // After the loop on purpose: a rerun's archiving must see only the old rows.
    insert_task_rows(tx, &task_rows, now, &mut ids)?;
    append_events(tx, &events, now)?;
    append_log_pieces(tx, &log_pieces)?;
    Ok(ids)
}

/// `(?, ?, ...), (?, ...)`: `rows` rows of `per_row` parameters.
fn values(rows: usize, per_row: usize) -> String {
    let row = format!("({})", vec!["?"; per_row].join(", "));
    vec![row; rows].join(", ")
}

/// Rows per multi-row statement: SQLite binds by position here, so a statement's size
/// costs nothing per parameter; a few shapes stay in the statement cache.
const ROWS_PER_STATEMENT: usize = 32;

fn insert_task_rows(
    tx: &Transaction<'_>,
    rows: &[(usize, &Write)],
    now: i64,
    ids: &mut [Option<i64>],
) -> Result<(), StoreError> {
    for run in runs(rows.len(), ROWS_PER_STATEMENT) {
        let chunk = &rows[run];
        let row = "(?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?)";
        let sql = format!(
            "INSERT INTO task_instances (workflow_instance_id, task_name, task_type, attempt, state, message, host, out_params, started_at, ended_at, created_at, updated_at, failover) \
             VALUES {} RETURNING id, workflow_instance_id, task_name, attempt",
            vec![row; chunk.len()].join(", ")
        );
        let mut args = Vec::with_capacity(chunk.len() * 12);
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
                args.extend([
                    int(*workflow_instance_id),
                    text(task_name),
                    text(task_type),
                    int(*attempt),
                    text(state),
                    text(message),
                    opt_text(host.as_deref()),
                    opt_int(*started_at),
                    opt_int(*ended_at),
                    int(now),
                    int(now),
                    int(i64::from(*failover)),
                ]);
            }
        }
        for row in fetch(tx, &sql, args, 4)? {
            let name = match &row[2] {
                Value::Text(t) => t.clone(),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "a task row came back named {other:?}"
                    )));
                }
            };
            let key = (as_int(&row[1])?, name, as_int(&row[3])?);
            let index = wanted.remove(&key).ok_or_else(|| {
                StoreError::Corrupt(format!("an inserted task row came back unasked: {key:?}"))
            })?;
            ids[index] = Some(as_int(&row[0])?);
        }
        if let Some((key, _)) = wanted.into_iter().next() {
            return Err(StoreError::Corrupt(format!(
                "a task row was not inserted: {key:?}"
            )));
        }
    }
    Ok(())
}

fn append_events(tx: &Transaction<'_>, events: &[&Write], now: i64) -> Result<(), StoreError> {
    for run in runs(events.len(), ROWS_PER_STATEMENT) {
        let chunk = &events[run];
        let sql = format!(
            "INSERT INTO workflow_events (workflow_instance_id, seq, kind, payload, created_at) VALUES {}",
            values(chunk.len(), 5)
        );
        let mut args = Vec::with_capacity(chunk.len() * 5);
        for event in chunk {
            if let Write::AppendEvent {
                workflow_instance_id,
                seq,
                kind,
                payload,
            } = event
            {
                args.extend([
                    int(*workflow_instance_id),
                    int(*seq),
                    text(kind),
                    text(payload),
                    int(now),
                ]);
            }
        }
        execute(tx, &sql, args)?;
    }
    Ok(())
}

fn append_log_pieces(tx: &Transaction<'_>, pieces: &[&Write]) -> Result<(), StoreError> {
    for run in runs(pieces.len(), ROWS_PER_STATEMENT) {
        let chunk = &pieces[run];
        let sql = format!(
            "INSERT INTO task_log_chunks (task_instance_id, start_offset, next_offset, text, last) \
             VALUES {} ON CONFLICT (task_instance_id, start_offset) DO NOTHING",
            values(chunk.len(), 5)
        );
        let mut args = Vec::with_capacity(chunk.len() * 5);
        for piece in chunk {
            if let Write::AppendTaskLog {
                task_instance_id,
                start_offset,
                next_offset,
                text: body,
                last,
            } = piece
            {
                args.extend([
                    int(*task_instance_id),
                    int(*start_offset),
                    int(*next_offset),
                    text(body),
                    int(i64::from(*last)),
                ]);
            }
        }
        execute(tx, &sql, args)?;
    }
    Ok(())
}
