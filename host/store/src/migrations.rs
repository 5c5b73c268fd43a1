//! The schema migrations, embedded by `build.rs` and run through sqlx's `Migrator`
//! exactly as `sqlx::migrate!` would run them: same versions, descriptions and
//! checksums, so databases migrated by earlier builds are recognised.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::Backend;

mod files {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The embedded files of one backend.
#[derive(Debug)]
struct Embedded(&'static [(&'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|(name, sql)| migration(name, sql))
                .collect()
        })
    }
}

/// `NNNN_some_name.sql` → version NNNN, description "some name", as sqlx names them.
fn migration(name: &str, sql: &'static str) -> Result<Migration, BoxDynError> {
    let stem = name
        .strip_suffix(".sql")
        .ok_or_else(|| format!("migration `{name}` is not a .sql file"))?;
    let (version, description) = stem
        .split_once('_')
        .ok_or_else(|| format!("migration `{name}` is not named NNNN_description.sql"))?;
    let version: i64 = version
        .parse()
        .map_err(|_| format!("migration `{name}` does not start with a version number"))?;
    Ok(Migration::new(
        version,
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        sql.starts_with("-- no-transaction"),
    ))
}

/// The migrator of `backend`.
pub(crate) async fn migrator(backend: Backend) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(match backend {
        Backend::Sqlite => files::SQLITE,
        Backend::Postgres => files::POSTGRES,
    }))
    .await
}
