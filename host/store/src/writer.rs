//! Group commit: the hot path's writes, batched. The writer runs its transactions on a
//! connection of its own, native to its database: rusqlite on SQLite ([`sqlite`]),
//! sqlx's PostgreSQL driver with one array per column on PostgreSQL ([`postgres`]).
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

mod postgres;
mod sqlite;

pub(crate) use postgres::{UPDATE_TASK_ROWS, prefer_keys};
use tokio::sync::{mpsc, oneshot};

use crate::{Backend, StoreError};

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
    /// PostgreSQL: the writer's own pool (closed with the store's).
    pg: Option<sqlx::PgPool>,
}

impl GroupCommit {
    /// The writer of the database at `url`; on SQLite, `sqlite_file` is the database it
    /// opens a connection of its own to ([`sqlite`]), run on the writer's thread rather
    /// than sqlx's.
    pub(crate) fn start(
        url: &str,
        backend: Backend,
        sqlite_file: Option<&std::path::Path>,
        hold_limit: Option<std::time::Duration>,
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
            return Ok(Self { tx, pg: None });
        }
        let pool = postgres::pool(url, hold_limit)?;
        let writer = pool.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                postgres::commit_group(&writer, gather(first, &mut rx)).await;
            }
        });
        Ok(Self { tx, pg: Some(pool) })
    }

    /// PostgreSQL: the writer's own pool.
    pub(crate) fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        self.pg.as_ref()
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

/// `0..len` in runs whose lengths are powers of two, largest first, none above `max`:
/// a multi-row statement then comes in a handful of shapes, each prepared once per
/// connection, not in one shape per batch size (SQLite's writer; PostgreSQL's passes
/// arrays instead).
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
}
