//! The proxy's own rows (cluster numbers, the run outbox, the audit log, global
//! schedules) on its store; the schema is `shoal-store`'s migration 0013, and users,
//! tokens, projects and permissions are the store's own tables, as on a cluster.

use shoal_api_types::clusters::{AuditEntry, ProxyRun};
use shoal_store::{Store, StoreError, now_ms};
use sqlx::Row;

/// The proxy's queries over a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct ProxyStore {
    store: Store,
}

/// One outbox row.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub key: String,
    pub project: String,
    pub workflow: String,
    /// The run body as the client sent it, plus the cluster it named (`cluster`).
    pub body: String,
    pub user: String,
    pub state: String,
    pub cluster: Option<String>,
    pub outcome: Option<String>,
    pub remote_instance: Option<i64>,
    pub remote_queued: Option<i64>,
    pub attempts: i64,
    pub last_error: String,
    pub created_at: i64,
}

/// One global schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub project: String,
    pub workflow: String,
    pub cron: String,
    pub timezone: String,
    pub params: String,
    pub online: bool,
    pub next_fire_at: Option<i64>,
    pub last_fire_at: Option<i64>,
}

const RUN_COLUMNS: &str = "run_key, project, workflow, body, user_name, state, cluster, outcome, remote_instance, remote_queued, attempts, last_error, created_at";

fn run_row(r: &sqlx::any::AnyRow) -> Result<RunRow, StoreError> {
    Ok(RunRow {
        key: r.try_get(0)?,
        project: r.try_get(1)?,
        workflow: r.try_get(2)?,
        body: r.try_get(3)?,
        user: r.try_get(4)?,
        state: r.try_get(5)?,
        cluster: r.try_get(6)?,
        outcome: r.try_get(7)?,
        remote_instance: r.try_get(8)?,
        remote_queued: r.try_get(9)?,
        attempts: r.try_get(10)?,
        last_error: r.try_get(11)?,
        created_at: r.try_get(12)?,
    })
}

impl RunRow {
    pub fn view(&self, instance: Option<i64>) -> ProxyRun {
        ProxyRun {
            key: self.key.clone(),
            project: self.project.clone(),
            workflow: self.workflow.clone(),
            state: self.state.clone(),
            cluster: self.cluster.clone(),
            instance,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            created_at: self.created_at,
        }
    }
}

const SCHEDULE_COLUMNS: &str =
    "project, workflow, cron, timezone, params, online, next_fire_at, last_fire_at";

fn schedule_row(r: &sqlx::any::AnyRow) -> Result<ScheduleRow, StoreError> {
    Ok(ScheduleRow {
        project: r.try_get(0)?,
        workflow: r.try_get(1)?,
        cron: r.try_get(2)?,
        timezone: r.try_get(3)?,
        params: r.try_get(4)?,
        online: r.try_get::<i64, _>(5)? != 0,
        next_fire_at: r.try_get(6)?,
        last_fire_at: r.try_get(7)?,
    })
}

impl ProxyStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn pool(&self) -> &sqlx::AnyPool {
        self.store.pool()
    }

    /// The cluster's number, given on first sight and never changed.
    pub async fn cluster_number(&self, name: &str) -> Result<i64, StoreError> {
        let mut last = None;
        for _ in 0..3 {
            if let Some(row) = sqlx::query("SELECT number FROM proxy_clusters WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?
            {
                return Ok(row.try_get(0)?);
            }
            // Two proxies on one PostgreSQL store may race here; the unique number
            // makes one of them lose and read the winner's.
            if let Err(e) = sqlx::query(
                "INSERT INTO proxy_clusters (name, number, created_at) \
                 SELECT $1, COALESCE(MAX(number), 0) + 1, $2 FROM proxy_clusters WHERE TRUE \
                 ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(now_ms())
            .execute(self.pool())
            .await
            {
                last = Some(e);
            }
        }
        Err(StoreError::Corrupt(format!(
            "cannot give cluster `{name}` a number{}",
            last.map(|e| format!(": {e}")).unwrap_or_default()
        )))
    }

    /// Put a run in the outbox; false when its key is there already.
    pub async fn insert_run(
        &self,
        key: &str,
        project: &str,
        workflow: &str,
        body: &str,
        user: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO proxy_runs (run_key, project, workflow, body, user_name, state, attempts, last_error, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, '', $6, $6) ON CONFLICT (run_key) DO NOTHING",
        )
        .bind(key)
        .bind(project)
        .bind(workflow)
        .bind(body)
        .bind(user)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn run(&self, key: &str) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM proxy_runs WHERE run_key = $1"
        ))
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_row).transpose()
    }

    /// Runs no cluster has acknowledged yet, oldest first.
    pub async fn pending_runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM proxy_runs WHERE state = 'pending' ORDER BY created_at, run_key LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_row).collect()
    }

    /// Record the cluster a run is about to be sent to, before it is sent.
    pub async fn aim_run(&self, key: &str, cluster: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE proxy_runs SET cluster = $1, updated_at = $2 WHERE run_key = $3 AND state = 'pending'",
        )
        .bind(cluster)
        .bind(now_ms())
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn run_attempt_failed(&self, key: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE proxy_runs SET attempts = attempts + 1, last_error = $1, updated_at = $2 WHERE run_key = $3",
        )
        .bind(truncate(error))
        .bind(now_ms())
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn run_placed(
        &self,
        key: &str,
        cluster: &str,
        outcome: &str,
        instance: Option<i64>,
        queued: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE proxy_runs SET state = 'placed', cluster = $1, outcome = $2, remote_instance = $3, remote_queued = $4, attempts = attempts + 1, last_error = '', updated_at = $5 WHERE run_key = $6",
        )
        .bind(cluster)
        .bind(outcome)
        .bind(instance)
        .bind(queued)
        .bind(now_ms())
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn run_failed(&self, key: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE proxy_runs SET state = 'failed', attempts = attempts + 1, last_error = $1, updated_at = $2 WHERE run_key = $3",
        )
        .bind(truncate(error))
        .bind(now_ms())
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Runs this proxy placed on `cluster`, newest first (shown as unreachable while
    /// that cluster is).
    pub async fn placed_on(
        &self,
        cluster: &str,
        project: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM proxy_runs WHERE state = 'placed' AND cluster = $1 \
             AND remote_instance IS NOT NULL AND ($2 IS NULL OR project = $2) ORDER BY created_at DESC LIMIT $3"
        ))
        .bind(cluster)
        .bind(project)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_row).collect()
    }

    /// The run this proxy placed as `cluster`'s instance `instance`.
    pub async fn run_by_instance(
        &self,
        cluster: &str,
        instance: i64,
    ) -> Result<Option<RunRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM proxy_runs WHERE cluster = $1 AND remote_instance = $2"
        ))
        .bind(cluster)
        .bind(instance)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_row).transpose()
    }

    /// Routes set through the API: (project, workflow or "", route JSON).
    pub async fn routes(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, workflow, route FROM proxy_routes ORDER BY project, workflow",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    pub async fn put_route(
        &self,
        project: &str,
        workflow: &str,
        route: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO proxy_routes (project, workflow, route, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project, workflow) DO UPDATE SET route = $3, updated_at = $4",
        )
        .bind(project)
        .bind(workflow)
        .bind(route)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_route(&self, project: &str, workflow: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM proxy_routes WHERE project = $1 AND workflow = $2")
            .bind(project)
            .bind(workflow)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn audit(
        &self,
        user: &str,
        action: &str,
        cluster: Option<&str>,
        status: i64,
        result: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO proxy_audit (at, user_name, action, cluster, status, result) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_ms())
        .bind(user)
        .bind(truncate(action))
        .bind(cluster)
        .bind(status)
        .bind(truncate(result))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Newest first; `before` pages back by id.
    pub async fn audit_page(
        &self,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, user_name, action, cluster, status, result FROM proxy_audit \
             WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    user: r.try_get(2)?,
                    action: r.try_get(3)?,
                    cluster: r.try_get(4)?,
                    status: r.try_get(5)?,
                    result: r.try_get(6)?,
                })
            })
            .collect()
    }

    pub async fn put_schedule(&self, s: &ScheduleRow) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO proxy_schedules (project, workflow, cron, timezone, params, online, next_fire_at, last_fire_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $8) \
             ON CONFLICT (project, workflow) DO UPDATE SET cron = $3, timezone = $4, params = $5, online = $6, next_fire_at = $7, updated_at = $8",
        )
        .bind(&s.project)
        .bind(&s.workflow)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(&s.params)
        .bind(i64::from(s.online))
        .bind(s.next_fire_at)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn schedule(
        &self,
        project: &str,
        workflow: &str,
    ) -> Result<Option<ScheduleRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM proxy_schedules WHERE project = $1 AND workflow = $2"
        ))
        .bind(project)
        .bind(workflow)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(schedule_row).transpose()
    }

    pub async fn schedules(&self, project: Option<&str>) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM proxy_schedules WHERE ($1 IS NULL OR project = $1) ORDER BY project, workflow"
        ))
        .bind(project)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(schedule_row).collect()
    }

    pub async fn delete_schedule(&self, project: &str, workflow: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM proxy_schedules WHERE project = $1 AND workflow = $2")
            .bind(project)
            .bind(workflow)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Move a schedule's next fire from `from` to `to`; false when another pass (or
    /// another proxy on the same store) moved it first, so one fire time fires once.
    pub async fn advance_schedule(
        &self,
        project: &str,
        workflow: &str,
        from: i64,
        to: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE proxy_schedules SET next_fire_at = $1, last_fire_at = $2, updated_at = $3 \
             WHERE project = $4 AND workflow = $5 AND next_fire_at = $2",
        )
        .bind(to)
        .bind(from)
        .bind(now_ms())
        .bind(project)
        .bind(workflow)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Keep stored texts bounded: a cluster's error body is not ours to store whole.
fn truncate(text: &str) -> String {
    const MAX: usize = 2000;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
