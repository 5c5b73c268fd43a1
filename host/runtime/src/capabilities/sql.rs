//! `shoal:task/sql`: statements on the datasources a task names, run by the host.
//!
//! The grant says whether the plugin may use SQL at all (manifest `sql = true` ∩ the
//! operator policy); the master says which datasources this task may use: those its own
//! parameters name ([`shoal_model::datasource::named_datasources`]), handed over in
//! [`TaskEnv::datasources`] with their passwords. The plugin passes a name and
//! statements; connection details never cross into the guest. Rows come back within
//! [`shoal_datasource::Limits`], so a `SELECT *` on a large table cannot fill the
//! host's memory.
//!
//! [`TaskEnv::datasources`]: crate::invoke::TaskEnv::datasources

use std::path::PathBuf;

use shoal_datasource::{Limits, SqlError, Statement};
use shoal_model::{Grant, GrantedDatasource};

use crate::bindings::sql::{Error, Host, Statement as WitStatement, StatementResult};
use crate::capabilities::HostState;
use crate::invoke::TaskEnv;

pub struct SqlCapability {
    granted: bool,
    plugin_id: String,
    datasources: Vec<GrantedDatasource>,
    sqlite_root: Option<PathBuf>,
    limits: Limits,
}

impl SqlCapability {
    pub fn new(plugin_id: &str, grant: &Grant, env: &TaskEnv) -> Self {
        Self {
            granted: grant.sql,
            plugin_id: plugin_id.to_owned(),
            datasources: env.datasources.clone(),
            sqlite_root: env.datasource_root.clone(),
            limits: Limits::default(),
        }
    }
}

impl Host for HostState {
    async fn execute(
        &mut self,
        datasource: String,
        statements: Vec<WitStatement>,
    ) -> wasmtime::Result<Result<Vec<StatementResult>, Error>> {
        let cap = &self.sql;
        if !cap.granted {
            return Ok(Err(Error::CapabilityDenied(format!(
                "capability denied: plugin `{}` is not granted `sql` (its manifest must ask for \
                 `sql = true` and the operator's policy must allow it)",
                cap.plugin_id
            ))));
        }
        let Some(ds) = cap.datasources.iter().find(|d| d.name == datasource) else {
            return Ok(Err(Error::UnknownDatasource(format!(
                "no datasource `{datasource}` is available to this task: it must exist in the \
                 task's project and be named by the task's `datasource` or `datasource_name`"
            ))));
        };
        let Some(root) = cap.sqlite_root.as_deref() else {
            return Ok(Err(Error::Database(
                "this host has no datasource directory".into(),
            )));
        };
        let statements: Vec<Statement> = statements
            .into_iter()
            .map(|s| Statement {
                text: s.text,
                query: s.query,
            })
            .collect();
        Ok(
            match shoal_datasource::execute(ds, root, &statements, &cap.limits).await {
                Ok(results) => Ok(results
                    .into_iter()
                    .map(|r| StatementResult {
                        columns: r.columns,
                        rows: r.rows,
                        truncated: r.truncated,
                        rows_affected: r.rows_affected,
                    })
                    .collect()),
                Err(e @ (SqlError::Connect { .. } | SqlError::Statement { .. })) => {
                    Err(Error::Database(e.to_string()))
                }
                Err(SqlError::Invalid(m)) => Err(Error::Database(m)),
            },
        )
    }
}
