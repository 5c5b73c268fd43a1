//! Schedules (cron, time zone, missed-fire policy) and the queue of runs waiting for a
//! slot of their run group, with the hold that keeps engines sharing a database from
//! starting one queue's runs side by side.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, UNFINISHED, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleRow {
    pub id: i64,
    pub definition_id: i64,
    pub cron: String,
    pub timezone: String,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    /// `skip` or `run-once`.
    pub missed: String,
    pub online: bool,
    /// Startup params (JSON object) every fire passes.
    pub params: String,
    pub last_fire_at: Option<i64>,
    pub next_fire_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SCHEDULE_ROW: &str = "id, definition_id, cron, timezone, start_at, end_at, missed, online, params, last_fire_at, next_fire_at, created_at, updated_at";

impl ScheduleRow {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.try_get(0)?,
            definition_id: r.try_get(1)?,
            cron: r.try_get(2)?,
            timezone: r.try_get(3)?,
            start_at: r.try_get(4)?,
            end_at: r.try_get(5)?,
            missed: r.try_get(6)?,
            online: r.try_get::<i64, _>(7)? != 0,
            params: r.try_get(8)?,
            last_fire_at: r.try_get(9)?,
            next_fire_at: r.try_get(10)?,
            created_at: r.try_get(11)?,
            updated_at: r.try_get(12)?,
        })
    }
}

/// What to store for a schedule (create or replace).
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub definition_id: i64,
    pub cron: String,
    pub timezone: String,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub missed: String,
    pub online: bool,
    pub params: String,
    pub next_fire_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedRunRow {
    pub id: i64,
    pub definition_id: i64,
    pub run_group: String,
    pub max_running: i64,
    pub request: String,
    /// `waiting`, `started` or `discarded`.
    pub state: String,
    pub instance_id: Option<i64>,
    pub created_at: i64,
}

crate::rows::from_row!(QueuedRunRow {
    id,
    definition_id,
    run_group,
    max_running,
    request,
    state,
    instance_id,
    created_at
});

const QUEUED_ROW: &str =
    "id, definition_id, run_group, max_running, request, state, instance_id, created_at";

impl Store {
    // ---- schedules -----------------------------------------------------------------

    /// Create or replace the schedule of a definition.
    pub async fn put_schedule(&self, s: &NewSchedule) -> Result<ScheduleRow, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO schedules (definition_id, cron, timezone, start_at, end_at, missed, online, params, next_fire_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (definition_id) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, \
             start_at = excluded.start_at, end_at = excluded.end_at, missed = excluded.missed, online = excluded.online, \
             params = excluded.params, next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at",
        )
        .bind(s.definition_id)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(s.start_at)
        .bind(s.end_at)
        .bind(&s.missed)
        .bind(s.online as i64)
        .bind(&s.params)
        .bind(s.next_fire_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.schedule_of(s.definition_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("schedule vanished after saving".into()))
    }

    pub async fn schedule_of(&self, definition_id: i64) -> Result<Option<ScheduleRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SCHEDULE_ROW} FROM schedules WHERE definition_id = $1"
        ))
        .bind(definition_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ScheduleRow::from_row).transpose()
    }

    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {SCHEDULE_ROW} FROM schedules ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ScheduleRow::from_row).collect()
    }

    pub async fn set_schedule_online(
        &self,
        definition_id: i64,
        online: bool,
        next_fire_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE schedules SET online = $1, next_fire_at = $2, updated_at = $3 WHERE definition_id = $4",
        )
        .bind(online as i64)
        .bind(next_fire_at)
        .bind(now_ms())
        .bind(definition_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_schedule(&self, definition_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM schedules WHERE definition_id = $1")
            .bind(definition_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record a fire: move the schedule from `expected_next` to `next`. False when another
    /// scheduler already moved it (the fire is theirs), so a fire is never taken twice.
    pub async fn advance_schedule(
        &self,
        id: i64,
        expected_next: i64,
        fired_at: i64,
        next: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE schedules SET last_fire_at = $1, next_fire_at = $2, updated_at = $3 WHERE id = $4 AND next_fire_at = $5",
        )
        .bind(fired_at)
        .bind(next)
        .bind(now_ms())
        .bind(id)
        .bind(expected_next)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- queued runs ---------------------------------------------------------------

    pub async fn enqueue_run(
        &self,
        definition_id: i64,
        run_group: &str,
        max_running: i64,
        request: &str,
        idempotency_key: Option<&str>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        Ok(sqlx::query(
            "INSERT INTO queued_runs (definition_id, run_group, max_running, request, state, created_at, updated_at, idempotency_key) \
             VALUES ($1, $2, $3, $4, 'waiting', $5, $5, $6) RETURNING id",
        )
        .bind(definition_id)
        .bind(run_group)
        .bind(max_running)
        .bind(request)
        .bind(now)
        .bind(idempotency_key)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// The run asked for with `key` on `definition_id`: `(instance, queued)`, where a
    /// queued run has an instance once it started. None when the key is new.
    pub async fn run_by_idempotency_key(
        &self,
        definition_id: i64,
        key: &str,
    ) -> Result<Option<(Option<i64>, Option<i64>)>, StoreError> {
        if let Some(row) = sqlx::query(
            "SELECT id FROM workflow_instances WHERE idempotency_key = $1 AND definition_id = $2 ORDER BY id LIMIT 1",
        )
        .bind(key)
        .bind(definition_id)
        .fetch_optional(&self.pool)
        .await?
        {
            return Ok(Some((Some(row.try_get(0)?), None)));
        }
        let queued = sqlx::query(
            "SELECT id, instance_id FROM queued_runs WHERE idempotency_key = $1 AND definition_id = $2 ORDER BY id LIMIT 1",
        )
        .bind(key)
        .bind(definition_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match queued {
            Some(row) => Some((row.try_get(1)?, Some(row.try_get(0)?))),
            None => None,
        })
    }

    /// Waiting runs, oldest first.
    pub async fn waiting_runs(&self) -> Result<Vec<QueuedRunRow>, StoreError> {
        let rows = sqlx::query_as(&format!(
            "SELECT {QUEUED_ROW} FROM queued_runs WHERE state = 'waiting' ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub async fn queued_runs(&self, run_group: &str) -> Result<Vec<QueuedRunRow>, StoreError> {
        let rows = sqlx::query_as(&format!(
            "SELECT {QUEUED_ROW} FROM queued_runs WHERE run_group = $1 ORDER BY id"
        ))
        .bind(run_group)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// How many runs started from `run_group` are still unfinished.
    pub async fn running_in_group(&self, run_group: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query(&format!(
            "SELECT COUNT(*) FROM queued_runs q JOIN workflow_instances i ON i.id = q.instance_id \
             WHERE q.run_group = $1 AND q.state = 'started' AND i.state IN {UNFINISHED}"
        ))
        .bind(run_group)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Hold `run_group` against every other engine on this database until the hold is
    /// released (or dropped): counting a queue's room, claiming its runs and starting
    /// them must be one step, or two masters pumping at once both see the same room.
    /// In this process a lock per group; on PostgreSQL also a transaction-level advisory
    /// lock on the group's name (SQLite has one engine per file).
    pub async fn hold_group(&self, run_group: &str) -> Result<GroupHold, StoreError> {
        // Launchers of one process first (SQLite has no other engine), then the other
        // engines on a shared database.
        let mutex = self
            .group_holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(run_group.to_owned())
            .or_default()
            .clone();
        let local = mutex.lock_owned().await;
        if self.backend != crate::Backend::Postgres {
            return Ok(GroupHold {
                tx: None,
                _local: local,
            });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(run_group)
            .execute(&mut *tx)
            .await?;
        Ok(GroupHold {
            tx: Some(tx),
            _local: local,
        })
    }

    /// Move a waiting run to `state` (`started` or `discarded`). False when it was no
    /// longer waiting: someone else took it.
    pub async fn claim_run(&self, id: i64, state: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE queued_runs SET state = $1, updated_at = $2 WHERE id = $3 AND state = 'waiting'",
        )
        .bind(state)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_queued_instance(&self, id: i64, instance_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE queued_runs SET instance_id = $1, updated_at = $2 WHERE id = $3")
            .bind(instance_id)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A run group held by [`Store::hold_group`]; dropping it lets go too (the transaction
/// holding the lock rolls back when its connection goes back to the pool).
pub struct GroupHold {
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl GroupHold {
    pub async fn release(mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(())
    }
}
