//! # shoal-store: Shoal's durable state
//!
//! One schema on two databases: SQLite (a file in the data dir, WAL, the embedded
//! default) and PostgreSQL (by URL, for multi-node). Queries are written once against
//! sqlx's `Any` driver with `$n` placeholders, which both databases accept.
//!
//! - Workflow **definitions** are versioned: saving a changed definition adds a version,
//!   and instances record the version they run.
//! - Workflow **instances**, **task instances** (attempt, state, host, external-job handle,
//!   times, OUT params) and each instance's ordered **event stream**.
//! - A **command queue** for operator commands (start, stop, pause, ...).
//! - Server mode's [`catalog`]: projects, users and tokens, permissions, schedules, queued
//!   runs, sealed secrets, alert channels and plugin versions (and their components'
//!   bytes, for workers that lack them).
//! - Distributed mode's [`registry`] of nodes (masters and workers, with their leases and
//!   generations), and each instance's owner: the master that drives it, whose writes
//!   are fenced on its generation ([`Write::Fence`]).
//!
//! State changes on the hot path go through [`writer`]: concurrent callers' writes are
//! grouped into one transaction (group commit), so durability costs one fsync per batch,
//! not one per task. A caller's `write` returns only after its batch committed: a state
//! change is durable before anyone acts on it.

mod catalog;
mod migrations;
pub mod registry;
mod rows;
pub mod testing;
pub mod writer;

pub use catalog::*;
pub use registry::*;
pub use rows::*;
pub use writer::Write;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

use catalog::UNFINISHED;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the group-commit writer's own SQLite connection.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}` (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    #[error("the store's writer has stopped")]
    WriterStopped,
    /// The database could not take a write now (locked past the busy timeout, say).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A fenced batch found its instance owned by someone else (or a newer generation):
    /// the writer lost the instance and must stop acting on it.
    #[error("instance {instance} is no longer owned by {owner} generation {owner_gen}")]
    Fenced {
        instance: i64,
        owner: String,
        owner_gen: i64,
    },
    #[error("plugin blob named sha256 {named} has content with sha256 {actual}")]
    DigestMismatch { named: String, actual: String },
}

impl StoreError {
    /// The database refused a text value it cannot hold: PostgreSQL stores no NUL
    /// character (`\u0000`) in text (SQLSTATE 22021, or 22P05 for an untranslatable
    /// character), where SQLite would. The input is at fault, not the store.
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("22021" | "22P05"))
            }
            _ => false,
        }
    }
}

const DEFINITION_SELECT: &str = "SELECT d.id, d.project, d.name, v.version, d.current_version, v.spec, v.source, v.created_at \
     FROM workflow_definitions d JOIN workflow_definition_versions v ON v.definition_id = d.id";

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Milliseconds since the Unix epoch.
/// The file a `sqlite:` URL names (as sqlx reads it: the part before `?`), or `None`
/// for an in-memory database, which only sqlx's own connections can share.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (file, params) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = file.is_empty() || file == ":memory:" || params.contains("mode=memory");
    (!memory).then(|| std::path::PathBuf::from(file))
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// How [`Store::open_with`] sets up its connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// PostgreSQL ends a session that sits inside a transaction, waiting on its client,
    /// longer than this. A cluster node sets it to its lease: a process paused (or
    /// swapped out) mid-batch holds its fence's row lock, and the adoption that follows
    /// its lease's end would wait on that lock for as long as the pause lasts.
    pub hold_limit: Option<Duration>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    writer: writer::GroupCommit,
    /// Run groups held in this process (see [`Store::hold_group`]).
    group_holds: GroupHolds,
}

type GroupHolds = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
>;

impl Store {
    /// Open (creating if needed) the SQLite database at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
        }
        Self::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Open a store by URL: `sqlite://PATH?mode=rwc` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, OpenOptions::default()).await
    }

    /// [`Store::open`] with options.
    pub async fn open_with(url: &str, opts: OpenOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time anyway; a few readers beside it suffice.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            // sqlx pings an idle connection before lending it out by default: a round
            // trip to the connection's thread for every query. A SQLite connection is a
            // file handle in this process and cannot have gone away; PostgreSQL's can
            // (a server restart), so it keeps the check.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; NORMAL keeps every
                        // committed transaction durable across process crashes (the
                        // only loss window is an OS crash, as with any WAL database).
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    } else if let Some(limit) = opts.hold_limit {
                        let ms = limit.as_millis().max(1);
                        sqlx::query(&format!("SET idle_in_transaction_session_timeout = {ms}"))
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        migrations::migrator(backend).await?.run(&pool).await?;
        let writer =
            writer::GroupCommit::start(url, backend, sqlite_file(url).as_deref(), opts.hold_limit)?;
        Ok(Self {
            pool,
            backend,
            writer,
            group_holds: GroupHolds::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Apply writes durably, grouped with other callers' writes into one transaction.
    /// Returns, per write, the new row id for inserts.
    pub async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<i64>>, StoreError> {
        self.writer.submit(writes).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(writer) = self.writer.pg_pool() {
            writer.close().await;
        }
    }

    // ---- definitions -------------------------------------------------------------

    /// Save a definition. A new version is added only when `spec` differs from the
    /// current version's; returns the version that now holds it.
    pub async fn save_definition(
        &self,
        project: &str,
        name: &str,
        spec: &serde_json::Value,
        source: &str,
    ) -> Result<DefinitionVersion, StoreError> {
        let spec_text = spec.to_string();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(
            "SELECT d.id, d.current_version, v.spec FROM workflow_definitions d \
             JOIN workflow_definition_versions v ON v.definition_id = d.id AND v.version = d.current_version \
             WHERE d.project = $1 AND d.name = $2",
        )
        .bind(project)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let result = match existing {
            Some(row) => {
                let id: i64 = row.try_get(0)?;
                let current: i64 = row.try_get(1)?;
                let current_spec: String = row.try_get(2)?;
                if current_spec == spec_text {
                    DefinitionVersion {
                        definition_id: id,
                        version: current,
                        created: false,
                    }
                } else {
                    let version = current + 1;
                    sqlx::query(
                        "INSERT INTO workflow_definition_versions (definition_id, version, spec, source, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(version)
                    .bind(&spec_text)
                    .bind(source)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE workflow_definitions SET current_version = $1, updated_at = $2 WHERE id = $3")
                        .bind(version)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    DefinitionVersion {
                        definition_id: id,
                        version,
                        created: true,
                    }
                }
            }
            None => {
                let id: i64 = sqlx::query(
                    "INSERT INTO workflow_definitions (project, name, current_version, created_at, updated_at) VALUES ($1, $2, 1, $3, $4) RETURNING id",
                )
                .bind(project)
                .bind(name)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                sqlx::query(
                    "INSERT INTO workflow_definition_versions (definition_id, version, spec, source, created_at) VALUES ($1, 1, $2, $3, $4)",
                )
                .bind(id)
                .bind(&spec_text)
                .bind(source)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                DefinitionVersion {
                    definition_id: id,
                    version: 1,
                    created: true,
                }
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    /// A definition at `version`, or at its current version.
    pub async fn definition(
        &self,
        project: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<StoredDefinition>, StoreError> {
        let row = sqlx::query(
            &format!("{DEFINITION_SELECT} WHERE d.project = $1 AND d.name = $2 AND v.version = COALESCE($3, d.current_version)"),
        )
        .bind(project)
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| StoredDefinition::from_row(&r)).transpose()
    }

    /// A definition by id and version.
    pub async fn definition_by_id(
        &self,
        id: i64,
        version: i64,
    ) -> Result<Option<StoredDefinition>, StoreError> {
        let row = sqlx::query(&format!(
            "{DEFINITION_SELECT} WHERE d.id = $1 AND v.version = $2"
        ))
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| StoredDefinition::from_row(&r)).transpose()
    }

    /// Every version number of a definition, oldest first.
    pub async fn definition_versions(&self, definition_id: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT version FROM workflow_definition_versions WHERE definition_id = $1 ORDER BY version")
            .bind(definition_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(Into::into))
            .collect()
    }

    // ---- instances ---------------------------------------------------------------

    pub async fn workflow_instance(
        &self,
        id: i64,
    ) -> Result<Option<WorkflowInstanceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| WorkflowInstanceRow::from_row(&r)).transpose()
    }

    /// Instances, newest first, optionally only those in one of `states`.
    pub async fn workflow_instances(
        &self,
        states: &[&str],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<WorkflowInstanceRow>, StoreError> {
        let filter = if states.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..states.len()).map(|i| format!("${}", i + 1)).collect();
            format!("WHERE state IN ({})", list.join(", "))
        };
        let n = states.len();
        let sql = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances {filter} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut query = sqlx::query(&sql);
        for s in states {
            query = query.bind(*s);
        }
        let rows = query.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        rows.iter().map(WorkflowInstanceRow::from_row).collect()
    }

    pub async fn task_instances(
        &self,
        workflow_instance_id: i64,
    ) -> Result<Vec<TaskInstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM task_instances WHERE workflow_instance_id = $1 AND archived = 0 ORDER BY id"
        ))
        .bind(workflow_instance_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TaskInstanceRow::from_row).collect()
    }

    /// (task name, handle) of every attempt of an instance that had an external job,
    /// archived ones (before a rerun) included, oldest first: what a restarted task may
    /// resume from (`context.previous-handle`).
    pub async fn task_handles(
        &self,
        workflow_instance_id: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT task_name, handle FROM task_instances WHERE workflow_instance_id = $1 AND handle IS NOT NULL ORDER BY id",
        )
        .bind(workflow_instance_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Attempts of `project`'s workflow instances that hold an external job's handle,
    /// newest first: the jobs Shoal follows or left running (a Flink stream job whose task
    /// succeeded once it ran). Reruns' archived attempts are left out.
    pub async fn external_jobs(
        &self,
        project: &str,
        limit: i64,
    ) -> Result<Vec<TaskInstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM task_instances WHERE handle IS NOT NULL AND archived = 0 AND workflow_instance_id IN (SELECT w.id FROM workflow_instances w JOIN workflow_definitions d ON d.id = w.definition_id WHERE d.project = $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(project)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TaskInstanceRow::from_row).collect()
    }

    pub async fn task_instance(&self, id: i64) -> Result<Option<TaskInstanceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM task_instances WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| TaskInstanceRow::from_row(&r)).transpose()
    }

    /// Instances the engine has not finished with: submitted, running, or asked to pause
    /// or stop. Oldest first, so recovery restarts them in the order they began.
    pub async fn unfinished_instances(&self) -> Result<Vec<WorkflowInstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances WHERE state IN {UNFINISHED} ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(WorkflowInstanceRow::from_row).collect()
    }

    /// Take an instance for `owner` as a new ownership term: one nobody owns, or one
    /// `owner` owns already. Returns the term's epoch (the stored `owner_gen` + 1), which
    /// every later write of this owner is fenced on ([`Write::Fence`]) and which workers
    /// compare to tell a stale owner's commands from the current one's; `None` when
    /// another node owns it (its failover moves it, not this) or it does not exist.
    ///
    /// Each claim bumps the epoch, so whatever an earlier term of the same node still
    /// believes (a process paused past its lease, say) is fenced from here on.
    pub async fn claim_instance(&self, id: i64, owner: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "UPDATE workflow_instances SET owner = $2, owner_gen = owner_gen + 1 \
             WHERE id = $1 AND (owner IS NULL OR owner = $2) RETURNING owner_gen",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<i64, _>(0))
            .transpose()
            .map_err(Into::into)
    }

    /// Move every unfinished instance of `dead_owner` to `new_owner`, each with its
    /// epoch bumped, in one statement, and return their ids (ascending). One statement,
    /// so a master that dies during a failover leaves each instance either moved or
    /// still the dead node's, never in between; a second call finds nothing left to
    /// move. Finished instances keep their owner as history.
    pub async fn adopt_instances_of(
        &self,
        dead_owner: &str,
        new_owner: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE workflow_instances SET owner = $2, owner_gen = owner_gen + 1 \
             WHERE owner = $1 AND state IN {UNFINISHED} RETURNING id"
        ))
        .bind(dead_owner)
        .bind(new_owner)
        .fetch_all(&self.pool)
        .await?;
        let mut ids = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// The unfinished instances `owner` drives (any generation), oldest first.
    pub async fn owned_unfinished_instances(
        &self,
        owner: &str,
    ) -> Result<Vec<WorkflowInstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances WHERE owner = $1 AND state IN {UNFINISHED} ORDER BY id"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(WorkflowInstanceRow::from_row).collect()
    }

    /// Runs started by any of these task instances (SubWorkflow children), oldest first.
    pub async fn child_instances(
        &self,
        parent_task_instance_ids: &[i64],
    ) -> Result<Vec<WorkflowInstanceRow>, StoreError> {
        if parent_task_instance_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (1..=parent_task_instance_ids.len())
            .map(|i| format!("${i}"))
            .collect();
        let sql = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances WHERE parent_task_instance_id IN ({}) ORDER BY id",
            list.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in parent_task_instance_ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(WorkflowInstanceRow::from_row).collect()
    }

    /// The newest run of a definition (any version) whose business time lies in
    /// `[from_ms, to_ms)`.
    pub async fn latest_run_between(
        &self,
        definition_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Option<WorkflowInstanceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances WHERE definition_id = $1 AND schedule_time >= $2 AND schedule_time < $3 ORDER BY schedule_time DESC, id DESC LIMIT 1"
        ))
        .bind(definition_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| WorkflowInstanceRow::from_row(&r)).transpose()
    }

    /// The last `seq` of an instance's event stream (0 when it has none).
    pub async fn last_event_seq(&self, workflow_instance_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) FROM workflow_events WHERE workflow_instance_id = $1",
        )
        .bind(workflow_instance_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// An instance's event stream in order.
    pub async fn events(&self, workflow_instance_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT workflow_instance_id, seq, kind, payload, created_at FROM workflow_events WHERE workflow_instance_id = $1 ORDER BY seq",
        )
        .bind(workflow_instance_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(EventRow::from_row).collect()
    }

    // ---- leases ------------------------------------------------------------------

    /// Take or renew the lease `name` for `holder` until `now + ttl_ms`. True when
    /// `holder` has it now: it was free, expired, or already `holder`'s.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO engine_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE engine_leases.holder = excluded.holder OR engine_leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who holds the lease `name`, and until when (ms since the epoch).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query("SELECT holder, expires_at FROM engine_leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Give the lease up if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM engine_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- shipped task logs ---------------------------------------------------------

    /// The shipped log of a task instance from byte `offset` on: whole pieces, oldest
    /// first, until about `max_bytes` of text (at least one piece when there is one).
    pub async fn task_log_chunks(
        &self,
        task_instance_id: i64,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<LogPiece>, StoreError> {
        let rows = sqlx::query(
            "SELECT start_offset, next_offset, text, last FROM task_log_chunks \
             WHERE task_instance_id = $1 AND next_offset > $2 ORDER BY start_offset LIMIT 64",
        )
        .bind(task_instance_id)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let mut pieces = Vec::new();
        let mut bytes = 0;
        for r in &rows {
            let text: String = r.try_get(2)?;
            if !pieces.is_empty() && bytes + text.len() > max_bytes {
                break;
            }
            bytes += text.len();
            pieces.push(LogPiece {
                start_offset: r.try_get(0)?,
                next_offset: r.try_get(1)?,
                text,
                last: r.try_get::<i64, _>(3)? != 0,
            });
        }
        Ok(pieces)
    }

    /// Whether the node that ran the task shipped all of its log (the piece marked last
    /// is stored).
    pub async fn task_log_complete(&self, task_instance_id: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM task_log_chunks WHERE task_instance_id = $1 AND last = 1 LIMIT 1",
        )
        .bind(task_instance_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    // ---- commands ----------------------------------------------------------------

    /// Take up to `limit` pending commands, oldest first, marking them taken in the same
    /// statement so no command is handled twice.
    ///
    /// `owner`: distributed mode, only commands for instances this master owns (or
    /// nobody does); one for another master's instance waits for that master (or for
    /// the failover that moves the instance). Concurrent takers skip each other's rows
    /// (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer).
    pub async fn take_commands(
        &self,
        owner: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let mine = |n: u8| match owner {
            Some(_) => format!(
                " AND (c.workflow_instance_id IS NULL OR c.workflow_instance_id IN \
                 (SELECT w.id FROM workflow_instances w WHERE w.owner = ${n} OR w.owner IS NULL))"
            ),
            None => String::new(),
        };
        // This runs every poll; take the write lock only when there is something to take.
        let probe_sql = format!(
            "SELECT 1 FROM commands c WHERE c.taken_at IS NULL{} LIMIT 1",
            mine(1)
        );
        let mut probe = sqlx::query(&probe_sql);
        if let Some(owner) = owner {
            probe = probe.bind(owner);
        }
        if probe.fetch_optional(&self.pool).await?.is_none() {
            return Ok(Vec::new());
        }
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE commands SET taken_at = $1 WHERE id IN \
             (SELECT c.id FROM commands c WHERE c.taken_at IS NULL{} ORDER BY c.id LIMIT $2{lock}) \
             RETURNING id, kind, workflow_instance_id, payload, created_at",
            mine(3)
        );
        let mut take = sqlx::query(&sql).bind(now_ms()).bind(limit);
        if let Some(owner) = owner {
            take = take.bind(owner);
        }
        let mut tx = self.begin_write().await?;
        let rows = take.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let mut commands: Vec<CommandRow> = rows
            .iter()
            .map(CommandRow::from_row)
            .collect::<Result<_, _>>()?;
        commands.sort_by_key(|c| c.id);
        Ok(commands)
    }
}
