//! SQL through the host (`shoal:task/sql`, WIT 0.1.1): the plugin names a datasource of
//! its task's project and passes statements; the host connects, runs them and hands
//! rows back as text. Connection details and passwords never reach the plugin.

use crate::bindings::shoal::task::sql as wit;

/// One statement and whether it returns rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub query: bool,
}

impl Statement {
    pub fn query(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            query: true,
        }
    }

    pub fn update(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            query: false,
        }
    }
}

/// What a statement gave back: for a query, columns and rows (values as the database
/// prints them, `None` for NULL); for anything else, the rows it affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// The host's row or byte limit cut the rows short.
    pub truncated: bool,
    pub rows_affected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlError {
    CapabilityDenied(String),
    UnknownDatasource(String),
    Database(String),
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CapabilityDenied(m) | Self::UnknownDatasource(m) | Self::Database(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for SqlError {}

impl From<SqlError> for crate::Error {
    fn from(value: SqlError) -> Self {
        Self::new(value.to_string())
    }
}

/// Run `statements` in order on one connection to `datasource`, stopping at the first
/// that fails.
pub fn execute(
    datasource: &str,
    statements: &[Statement],
) -> Result<Vec<StatementResult>, SqlError> {
    let batch: Vec<wit::Statement> = statements
        .iter()
        .map(|s| wit::Statement {
            text: s.text.clone(),
            query: s.query,
        })
        .collect();
    wit::execute(datasource, &batch)
        .map(|results| {
            results
                .into_iter()
                .map(|r| StatementResult {
                    columns: r.columns,
                    rows: r.rows,
                    truncated: r.truncated,
                    rows_affected: r.rows_affected,
                })
                .collect()
        })
        .map_err(|e| match e {
            wit::Error::CapabilityDenied(m) => SqlError::CapabilityDenied(m),
            wit::Error::UnknownDatasource(m) => SqlError::UnknownDatasource(m),
            wit::Error::Database(m) => SqlError::Database(m),
        })
}
