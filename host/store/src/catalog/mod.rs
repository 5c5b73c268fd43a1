//! What server mode adds to the store: projects, the definition catalogue (release state,
//! run mode, deletion), filtered instance listings, users and API tokens with per-project
//! permissions, schedules, the queue of runs waiting for a slot, encrypted secrets, alert
//! channels, plugin versions and plugin components' bytes (by digest).
//!
//! These are operator-facing writes (a few per request), so they go straight to the pool;
//! only the engine's hot path uses the group-commit writer. Schedules and the run queue
//! are in [`scheduling`]; datasources (SQL tasks' connections) in [`datasources`]; alert
//! channels in [`alerts`]; plugin versions, blobs and pins in [`plugins`].

mod alerts;
mod datasources;
mod plugins;
mod scheduling;

pub use alerts::{AlertChannelRow, AlertTarget};
pub use datasources::DatasourceRow;
pub use plugins::PluginVersionRow;
pub use scheduling::{GroupHold, NewSchedule, QueuedRunRow, ScheduleRow};

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::rows::WORKFLOW_COLUMNS;
use crate::{Store, StoreError, WorkflowInstanceRow, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    /// The OS user its task processes run as (none: the policy's default tenant).
    pub tenant: Option<String>,
    /// 1 when an admin allowed task types that start processes.
    pub allow_process: i64,
}

crate::rows::from_row!(ProjectRow {
    id,
    name,
    description,
    created_at,
    tenant,
    allow_process
});

const PROJECT_COLUMNS: &str = "id, name, description, created_at, tenant, allow_process";

/// A definition as the catalogue lists it (no spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionRow {
    pub id: i64,
    pub project: String,
    pub name: String,
    pub current_version: i64,
    pub released: bool,
    pub run_mode: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const DEFINITION_ROW: &str =
    "id, project, name, current_version, released, run_mode, created_at, updated_at";

impl DefinitionRow {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.try_get(0)?,
            project: r.try_get(1)?,
            name: r.try_get(2)?,
            current_version: r.try_get(3)?,
            released: r.try_get::<i64, _>(4)? != 0,
            run_mode: r.try_get(5)?,
            created_at: r.try_get(6)?,
            updated_at: r.try_get(7)?,
        })
    }
}

/// Filters for listing instances; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub project: Option<String>,
    pub definition_id: Option<i64>,
    pub states: Vec<String>,
    /// Business time range `[from, to)` in ms.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Keyset paging: only instances with a smaller id (older than the last row of the
    /// previous page), so a deep page costs what the first one does.
    pub before_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

crate::rows::from_row!(UserRow {
    id,
    name,
    role,
    created_at
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

crate::rows::from_row!(TokenRow {
    id,
    user_id,
    name,
    expires_at,
    created_at,
    revoked_at
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRow {
    pub project_id: i64,
    pub name: String,
    pub nonce: String,
    pub ciphertext: String,
    pub updated_at: i64,
}

crate::rows::from_row!(SecretRow {
    project_id,
    name,
    nonce,
    ciphertext,
    updated_at
});

/// How far past the requested page a listing counts matching instances: an exact count
/// of a long history would scan all of it on every page, and nobody pages that far by
/// number (beyond it a listing says "more", and keyset paging goes on).
pub const COUNT_AHEAD: i64 = 1_000;

/// A page of instances and how many match.
#[derive(Debug, Clone)]
pub struct InstanceListing {
    pub rows: Vec<WorkflowInstanceRow>,
    /// Matching instances from the start of the listing (from `before_id` when given),
    /// exact up to the page's end plus [`COUNT_AHEAD`].
    pub total: i64,
    /// More match than `total`.
    pub capped: bool,
}

impl InstanceListing {
    /// The `before_id` of the next page when more rows follow this one.
    pub fn next_before(&self, offset: i64) -> Option<i64> {
        let shown = offset + self.rows.len() as i64;
        (self.capped || self.total > shown)
            .then(|| self.rows.last().map(|r| r.id))
            .flatten()
    }
}

/// The states of an instance the engine has not finished with.
pub(crate) const UNFINISHED: &str = "('submitted', 'running', 'ready-pause', 'ready-stop')";

impl Store {
    /// Begin a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`, waiting out the busy timeout like any single statement): a
    /// deferred transaction that reads first cannot wait when it later needs the lock
    /// while another connection writes (the engine's group commit, another request),
    /// and fails at once with "database is locked".
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            crate::Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _ => self.pool.begin().await?,
        })
    }

    // ---- projects ----------------------------------------------------------------

    /// Create a project; None when the name is taken.
    pub async fn create_project(
        &self,
        name: &str,
        description: &str,
    ) -> Result<Option<ProjectRow>, StoreError> {
        Ok(sqlx::query_as(
            "INSERT INTO projects (name, description, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING RETURNING id, name, description, created_at, tenant, allow_process",
        )
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn project(&self, name: &str) -> Result<Option<ProjectRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Set a project's tenant and whether it may run processes; false when there is no
    /// such project.
    pub async fn set_project_tenancy(
        &self,
        name: &str,
        tenant: Option<&str>,
        allow_process: bool,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE projects SET tenant = $1, allow_process = $2 WHERE name = $3")
                .bind(tenant)
                .bind(allow_process as i64)
                .bind(name)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Delete a project that holds no definitions, with its permissions, secrets and
    /// alert channels. False when it still has definitions (or does not exist).
    pub async fn delete_project(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT id FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let id: i64 = row.try_get(0)?;
        let defs: i64 = sqlx::query("SELECT COUNT(*) FROM workflow_definitions WHERE project = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if defs > 0 {
            return Ok(false);
        }
        for table in [
            "project_permissions",
            "secrets",
            "datasources",
            "alert_channels",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE project_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- definitions catalogue -----------------------------------------------------

    pub async fn definitions(&self, project: &str) -> Result<Vec<DefinitionRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DEFINITION_ROW} FROM workflow_definitions WHERE project = $1 ORDER BY name"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DefinitionRow::from_row).collect()
    }

    pub async fn definition_row(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Option<DefinitionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DEFINITION_ROW} FROM workflow_definitions WHERE project = $1 AND name = $2"
        ))
        .bind(project)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(DefinitionRow::from_row).transpose()
    }

    pub async fn definition_row_by_id(&self, id: i64) -> Result<Option<DefinitionRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DEFINITION_ROW} FROM workflow_definitions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(DefinitionRow::from_row).transpose()
    }

    pub async fn set_released(&self, definition_id: i64, online: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE workflow_definitions SET released = $1, updated_at = $2 WHERE id = $3")
            .bind(online as i64)
            .bind(now_ms())
            .bind(definition_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_run_mode(&self, definition_id: i64, mode: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE workflow_definitions SET run_mode = $1, updated_at = $2 WHERE id = $3")
            .bind(mode)
            .bind(now_ms())
            .bind(definition_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How many instances of a definition the engine has not finished with.
    pub async fn unfinished_count(&self, definition_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query(&format!(
            "SELECT COUNT(*) FROM workflow_instances WHERE definition_id = $1 AND state IN {UNFINISHED}"
        ))
        .bind(definition_id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Unfinished instances of a definition, oldest first.
    pub async fn unfinished_of(
        &self,
        definition_id: i64,
    ) -> Result<Vec<WorkflowInstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances WHERE definition_id = $1 AND state IN {UNFINISHED} ORDER BY id"
        ))
        .bind(definition_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(WorkflowInstanceRow::from_row).collect()
    }

    /// Delete a definition with every version, instance, task instance, event, schedule,
    /// queued run and pin. Refused (false) while any instance is unfinished, checked in
    /// the same transaction as the delete.
    pub async fn delete_definition(&self, definition_id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let busy: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) FROM workflow_instances WHERE definition_id = $1 AND state IN {UNFINISHED}"
        ))
        .bind(definition_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if busy > 0 {
            return Ok(false);
        }
        let sub = "SELECT id FROM workflow_instances WHERE definition_id = $1";
        for sql in [
            format!("DELETE FROM workflow_events WHERE workflow_instance_id IN ({sub})"),
            format!("DELETE FROM task_instances WHERE workflow_instance_id IN ({sub})"),
            format!("DELETE FROM commands WHERE workflow_instance_id IN ({sub})"),
            "DELETE FROM workflow_instances WHERE definition_id = $1".into(),
            "DELETE FROM schedules WHERE definition_id = $1".into(),
            "DELETE FROM queued_runs WHERE definition_id = $1".into(),
            "DELETE FROM plugin_pins WHERE definition_id = $1".into(),
            "DELETE FROM workflow_definition_versions WHERE definition_id = $1".into(),
            "DELETE FROM workflow_definitions WHERE id = $1".into(),
        ] {
            sqlx::query(&sql)
                .bind(definition_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    // ---- instance listings -------------------------------------------------------

    /// Instances matching `filter`, newest first, `limit` of them after skipping `offset`,
    /// with the count for paging (see [`InstanceListing`]).
    pub async fn find_instances(
        &self,
        filter: &InstanceFilter,
        limit: i64,
        offset: i64,
    ) -> Result<InstanceListing, StoreError> {
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        // A definition belongs to one project: the project's subquery would only add work.
        if filter.project.is_some() && filter.definition_id.is_none() {
            clauses.push(format!(
                "definition_id IN (SELECT id FROM workflow_definitions WHERE project = {})",
                next()
            ));
        }
        if filter.definition_id.is_some() {
            clauses.push(format!("definition_id = {}", next()));
        }
        if !filter.states.is_empty() {
            let list: Vec<String> = filter.states.iter().map(|_| next()).collect();
            clauses.push(format!("state IN ({})", list.join(", ")));
        }
        if filter.from_ms.is_some() {
            clauses.push(format!("schedule_time >= {}", next()));
        }
        if filter.to_ms.is_some() {
            clauses.push(format!("schedule_time < {}", next()));
        }
        if filter.before_id.is_some() {
            clauses.push(format!("id < {}", next()));
        }
        let limit_p = next();
        let offset_p = next();
        let clause = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let list_sql = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflow_instances {clause} ORDER BY id DESC LIMIT {limit_p} OFFSET {offset_p}"
        );
        let count_to = offset.saturating_add(limit).saturating_add(COUNT_AHEAD);
        let count_sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM workflow_instances {clause} LIMIT {}) capped",
            count_to + 1
        );
        macro_rules! bind_filter {
            ($q:expr) => {{
                let mut q = $q;
                if let Some(p) = filter
                    .project
                    .as_ref()
                    .filter(|_| filter.definition_id.is_none())
                {
                    q = q.bind(p.clone());
                }
                if let Some(d) = filter.definition_id {
                    q = q.bind(d);
                }
                for s in &filter.states {
                    q = q.bind(s.clone());
                }
                if let Some(f) = filter.from_ms {
                    q = q.bind(f);
                }
                if let Some(t) = filter.to_ms {
                    q = q.bind(t);
                }
                if let Some(b) = filter.before_id {
                    q = q.bind(b);
                }
                q
            }};
        }
        // The page and its total from one snapshot: read apart, a run started between
        // the two showed up in the total but not in the page.
        let mut tx = self.pool.begin().await?;
        if self.backend == crate::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let rows = bind_filter!(sqlx::query(&list_sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *tx)
            .await?;
        let total: i64 = bind_filter!(sqlx::query(&count_sql))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(InstanceListing {
            rows: rows
                .iter()
                .map(WorkflowInstanceRow::from_row)
                .collect::<Result<_, _>>()?,
            total: total.min(count_to),
            capped: total > count_to,
        })
    }

    // ---- users, tokens, permissions ------------------------------------------------

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Create a user; None when the name is taken.
    pub async fn create_user(&self, name: &str, role: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(sqlx::query_as(
            "INSERT INTO users (name, role, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING RETURNING id, name, role, created_at",
        )
        .bind(name)
        .bind(role)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        Ok(
            sqlx::query_as("SELECT id, name, role, created_at FROM users ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(
            sqlx::query_as("SELECT id, name, role, created_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Store a token by its hash.
    pub async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<TokenRow, StoreError> {
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO api_tokens (user_id, name, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(expires_at)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(TokenRow {
            id,
            user_id,
            name: name.to_owned(),
            expires_at,
            created_at: now,
            revoked_at: None,
        })
    }

    /// The user a token hash belongs to, with the token's expiry and revocation.
    pub async fn token_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(UserRow, TokenRow)>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.role, u.created_at, t.id, t.name, t.expires_at, t.created_at, t.revoked_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let user = UserRow {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                role: r.try_get(2)?,
                created_at: r.try_get(3)?,
            };
            let token = TokenRow {
                id: r.try_get(4)?,
                user_id: user.id,
                name: r.try_get(5)?,
                expires_at: r.try_get(6)?,
                created_at: r.try_get(7)?,
                revoked_at: r.try_get(8)?,
            };
            Ok((user, token))
        })
        .transpose()
    }

    pub async fn tokens_of(&self, user_id: i64) -> Result<Vec<TokenRow>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, user_id, name, expires_at, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Revoke a token of `user_id` (admins pass None to revoke anyone's).
    pub async fn revoke_token(&self, id: i64, user_id: Option<i64>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR user_id = $3)",
        )
        .bind(now_ms())
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn grant_permission(
        &self,
        project_id: i64,
        user_id: i64,
        level: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO project_permissions (project_id, user_id, level) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET level = excluded.level",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(level)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A user's permission level on a project, if any.
    pub async fn permission(
        &self,
        project: &str,
        user_id: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT p.level FROM project_permissions p JOIN projects j ON j.id = p.project_id \
             WHERE j.name = $1 AND p.user_id = $2",
        )
        .bind(project)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get(0).map_err(Into::into)).transpose()
    }

    /// Every project a user holds a level on, as (project, level), by project name.
    pub async fn permissions_of_user(
        &self,
        user_id: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.name, p.level FROM project_permissions p JOIN projects j ON j.id = p.project_id \
             WHERE p.user_id = $1 ORDER BY j.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Who holds what level on a project, as (user, level), by user name.
    pub async fn project_permissions(
        &self,
        project: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name, p.level FROM project_permissions p \
             JOIN projects j ON j.id = p.project_id JOIN users u ON u.id = p.user_id \
             WHERE j.name = $1 ORDER BY u.name",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    // ---- secrets -------------------------------------------------------------------

    pub async fn put_secret(
        &self,
        project_id: i64,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO secrets (project_id, name, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (project_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(project_id)
        .bind(name)
        .bind(nonce)
        .bind(ciphertext)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every secret of the project named `project`, sealed.
    pub async fn secrets(&self, project: &str) -> Result<Vec<SecretRow>, StoreError> {
        let rows: Vec<SecretRow> = sqlx::query_as(
            "SELECT s.project_id, s.name, s.nonce, s.ciphertext, s.updated_at FROM secrets s \
             JOIN projects p ON p.id = s.project_id WHERE p.name = $1 ORDER BY s.name",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub async fn delete_secret(&self, project_id: i64, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM secrets WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Refresh the planner's statistics (after a bulk load).
    pub async fn analyze(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    /// How many workflow instances are in each state.
    /// Instances not finished yet (paused ones included): one indexed count, cheap
    /// enough for every health check of a cluster proxy.
    pub async fn open_instance_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query(&format!(
            "SELECT COUNT(*) FROM workflow_instances WHERE state IN {UNFINISHED} OR state = 'paused'"
        ))
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    pub async fn instance_counts_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM workflow_instances GROUP BY state ORDER BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
