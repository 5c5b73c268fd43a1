//! # shoal-datasource: SQL on a project's datasources
//!
//! The host runs a SQL task's statements on the task's behalf (`shoal:task/sql`), so the
//! plugin names a datasource and never holds its password or a socket. This crate owns
//! that one job: connect to a [`GrantedDatasource`] (PostgreSQL, MySQL/MariaDB or a
//! SQLite file in the host's datasource directory), run statements in order on one
//! connection, and hand back rows as text within a row and byte limit.
//!
//! Statements go through each database's plain-text protocol (`sqlx::raw_sql`), so every
//! column arrives as the database prints it (`42`, `2024-01-31`, `t`) whatever its
//! type, as DolphinScheduler's SQL task shows values, and no type table has to be kept
//! per driver.

pub mod testing;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::TryStreamExt;
use shoal_model::datasource::{DatasourceKind, GrantedDatasource};
use sqlx::{Column, ConnectOptions, Connection, Row};

/// One statement and whether it returns rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub query: bool,
}

/// What one statement gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub truncated: bool,
    pub rows_affected: u64,
}

/// How much one call may bring into the host.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows kept per call (over all its statements).
    pub max_rows: usize,
    /// Bytes of values kept per call.
    pub max_bytes: usize,
    /// Statements per call.
    pub max_statements: usize,
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            max_bytes: 16 << 20,
            max_statements: 1_000,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("cannot connect to datasource `{datasource}`: {message}")]
    Connect { datasource: String, message: String },
    /// `index` is 1-based, in the order the statements were given.
    #[error("statement {index} failed on datasource `{datasource}`: {message}")]
    Statement {
        datasource: String,
        index: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Where SQLite datasources of `project` live under `root` (the host's
/// `<data dir>/datasources`); none when the project name could leave `root`.
pub fn sqlite_dir(root: &Path, project: &str) -> Option<PathBuf> {
    let plain =
        !project.is_empty() && !project.starts_with('.') && !project.contains(['/', '\\', '\0']);
    plain.then(|| root.join(project))
}

/// Run `statements` in order on one connection to `ds`, stopping at the first failure.
/// `sqlite_root` is the host's datasource directory (SQLite files live in
/// `<sqlite_root>/<project>/`).
///
/// The work runs on a thread of its own with a single-threaded runtime: sqlx's
/// higher-ranked executor lifetimes defeat rustc's proof that the statement loop's
/// future is `Send`, which a wasmtime host call needs. Dropping the returned future
/// (the task was killed or timed out) drops the work and with it the connection.
pub async fn execute(
    ds: &GrantedDatasource,
    sqlite_root: &Path,
    statements: &[Statement],
    limits: &Limits,
) -> Result<Vec<StatementResult>, SqlError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ds, root, statements, limits) = (
        ds.clone(),
        sqlite_root.to_path_buf(),
        statements.to_vec(),
        *limits,
    );
    let name = ds.name.clone();
    std::thread::Builder::new()
        .name("shoal-sql".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = done_tx.send(Err(SqlError::Invalid(format!("no runtime: {e}"))));
                    return;
                }
            };
            runtime.block_on(async move {
                tokio::select! {
                    result = execute_owned(ds, root, statements, limits) => {
                        let _ = done_tx.send(result);
                    }
                    _ = stop_rx => {}
                }
            });
        })
        .map_err(|e| SqlError::Invalid(format!("cannot start a SQL thread: {e}")))?;
    let _stop_on_drop = stop_tx;
    done_rx.await.unwrap_or_else(|_| {
        Err(SqlError::Connect {
            datasource: name,
            message: "the SQL thread ended without an answer".into(),
        })
    })
}

async fn execute_owned(
    ds: GrantedDatasource,
    sqlite_root: PathBuf,
    statements: Vec<Statement>,
    limits: Limits,
) -> Result<Vec<StatementResult>, SqlError> {
    let (ds, sqlite_root, statements, limits) =
        (&ds, sqlite_root.as_path(), &statements[..], &limits);
    if statements.len() > limits.max_statements {
        return Err(SqlError::Invalid(format!(
            "{} statements in one call; at most {} are allowed",
            statements.len(),
            limits.max_statements
        )));
    }
    let connect_err = |message: String| SqlError::Connect {
        datasource: ds.name.clone(),
        message,
    };
    let timeout =
        |message: &str| connect_err(format!("{message} within {:?}", limits.connect_timeout));
    match ds.spec.kind {
        DatasourceKind::Postgresql => {
            let options: sqlx::postgres::PgConnectOptions = server_url(ds, "postgres")
                .and_then(|u| ConnectOptions::from_url(&u).map_err(|e| e.to_string()))
                .map_err(connect_err)?;
            let mut conn = tokio::time::timeout(limits.connect_timeout, options.connect())
                .await
                .map_err(|_| timeout("no connection"))?
                .map_err(|e| connect_err(e.to_string()))?;
            let out = run::<sqlx::Postgres>(&mut conn, ds, statements, limits).await;
            let _ = conn.close().await;
            out
        }
        DatasourceKind::Mysql => {
            let options: sqlx::mysql::MySqlConnectOptions = server_url(ds, "mysql")
                .and_then(|u| ConnectOptions::from_url(&u).map_err(|e| e.to_string()))
                .map_err(connect_err)?;
            let mut conn = tokio::time::timeout(limits.connect_timeout, options.connect())
                .await
                .map_err(|_| timeout("no connection"))?
                .map_err(|e| connect_err(e.to_string()))?;
            let out = run::<sqlx::MySql>(&mut conn, ds, statements, limits).await;
            let _ = conn.close().await;
            out
        }
        DatasourceKind::Sqlite => {
            let dir = sqlite_dir(sqlite_root, &ds.project).ok_or_else(|| {
                connect_err(format!(
                    "project name `{}` cannot name a directory",
                    ds.project
                ))
            })?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| connect_err(format!("cannot create {}: {e}", dir.display())))?;
            // Validated again here: the spec came over the wire.
            if ds.spec.problems().iter().any(|(f, _)| *f == "database") {
                return Err(connect_err(format!(
                    "`{}` is not a plain file name",
                    ds.spec.database
                )));
            }
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.join(&ds.spec.database))
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(10));
            let mut conn = options
                .connect()
                .await
                .map_err(|e| connect_err(e.to_string()))?;
            let out = run::<sqlx::Sqlite>(&mut conn, ds, statements, limits).await;
            let _ = conn.close().await;
            out
        }
    }
}

/// `scheme://user:password@host:port/database?options`, each part escaped by `url`.
fn server_url(ds: &GrantedDatasource, scheme: &str) -> Result<url::Url, String> {
    let spec = &ds.spec;
    let mut u = url::Url::parse(&format!("{scheme}://placeholder/")).map_err(|e| e.to_string())?;
    u.set_host(Some(spec.host.trim()))
        .map_err(|e| format!("host `{}`: {e}", spec.host))?;
    u.set_port(spec.port.or(spec.kind.default_port()))
        .map_err(|()| "bad port".to_owned())?;
    u.set_username(&spec.user)
        .map_err(|()| "bad user".to_owned())?;
    if !ds.password.is_empty() {
        u.set_password(Some(&ds.password))
            .map_err(|()| "bad password".to_owned())?;
    }
    u.path_segments_mut()
        .map_err(|()| "no path".to_owned())?
        .clear()
        .push(&spec.database);
    if !spec.options.is_empty() {
        u.query_pairs_mut().extend_pairs(spec.options.iter());
    }
    Ok(u)
}

/// Run the statements in order on one connection. The future needs no `Send`: it runs
/// on the SQL thread's own runtime (see [`execute`]).
async fn run<DB>(
    conn: &mut DB::Connection,
    ds: &GrantedDatasource,
    statements: &[Statement],
    limits: &Limits,
) -> Result<Vec<StatementResult>, SqlError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'r> String: sqlx::Decode<'r, DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    DB::QueryResult: Affected,
{
    let mut rows_left = limits.max_rows;
    let mut bytes_left = limits.max_bytes;
    let mut results = Vec::with_capacity(statements.len());
    let mut failure = None;
    for (i, statement) in statements.iter().enumerate() {
        let failed = |e: sqlx::Error| SqlError::Statement {
            datasource: ds.name.clone(),
            index: i + 1,
            message: database_message(e),
        };
        let mut result = StatementResult::default();
        if statement.query {
            let mut stream = sqlx::raw_sql(&statement.text).fetch(&mut *conn);
            loop {
                let row = match stream.try_next().await {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(failed(e));
                        break;
                    }
                };
                if result.columns.is_empty() {
                    result.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                let values: Vec<Option<String>> =
                    (0..row.len()).map(|c| text_of(&row, c)).collect();
                let size: usize =
                    values.iter().flatten().map(String::len).sum::<usize>() + values.len();
                if rows_left == 0 || size > bytes_left {
                    // The rest is not read into the host; dropping the stream lets
                    // the driver discard it on the wire.
                    result.truncated = true;
                    break;
                }
                rows_left -= 1;
                bytes_left -= size;
                result.rows.push(values);
            }
        } else {
            match sqlx::raw_sql(&statement.text).execute(&mut *conn).await {
                Ok(done) => result.rows_affected = Affected::rows_affected(&done),
                Err(e) => failure = Some(failed(e)),
            }
        }
        if let Some(e) = failure.take() {
            return Err(e);
        }
        results.push(result);
    }
    Ok(results)
}

/// The rows a statement changed: each driver's result has it, under no shared trait.
trait Affected {
    fn rows_affected(&self) -> u64;
}

impl Affected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl Affected for sqlx::mysql::MySqlQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl Affected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// A value as the database printed it; binary data that is not UTF-8 as `\x` hex.
fn text_of<R: Row>(row: &R, column: usize) -> Option<String>
where
    for<'r> String: sqlx::Decode<'r, R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    match row.try_get_unchecked::<Option<String>, _>(column) {
        Ok(v) => v,
        Err(_) => match row.try_get_unchecked::<Option<Vec<u8>>, _>(column) {
            Ok(Some(bytes)) => Some(format!("\\x{}", hex(&bytes))),
            Ok(None) => None,
            Err(e) => Some(format!("<unreadable: {e}>")),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn database_message(e: sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}
