//! Throw-away databases for tests: a SQLite file in a temp dir, or a fresh PostgreSQL
//! database on the server named by `SHOAL_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.
//!
//! Without a PostgreSQL server the PostgreSQL half of a test is skipped loudly, except
//! under `CI=true`, where a missing service is a failure.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

use crate::{Store, StoreError};

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

pub fn pg_admin_url() -> String {
    std::env::var("SHOAL_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database: `(url, name)`, or None (skipped) when there is no
/// server outside CI.
pub async fn fresh_pg() -> Option<(String, String)> {
    sqlx::any::install_default_drivers();
    let admin = pg_admin_url();
    let mut conn = match sqlx::AnyConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {admin} is required under CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL half of this test (no server at {admin}: {e})");
            return None;
        }
    };
    let name = format!(
        "shoal_test_{}_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed),
        crate::now_ms() % 1_000_000
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some((format!("{base}/{name}"), name))
}

pub async fn drop_pg(name: &str) {
    let mut conn = sqlx::AnyConnection::connect(&pg_admin_url())
        .await
        .expect("connecting to drop a test database");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .expect("dropping a test database");
}

/// Run `test` on a fresh SQLite file, then on a fresh PostgreSQL database. The test gets
/// the store's URL too, for code that opens the store itself (a child process).
pub async fn on_both<F, Fut>(test: F)
where
    F: Fn(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shoal.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = Store::open(&url).await.expect("opening SQLite");
    test(store.clone(), url).await;
    store.close().await;

    if let Some((url, name)) = fresh_pg().await {
        let store = Store::open(&url).await.expect("opening PostgreSQL");
        test(store.clone(), url).await;
        store.close().await;
        drop_pg(&name).await;
    }
}

/// The plan PostgreSQL picks for the writer's update of `rows` task rows, inside a
/// transaction set up as the writer sets up its own (rolled back). For tests that the
/// hot path finds rows by key however the planner prices a scan.
pub async fn task_update_plan(store: &Store, rows: usize) -> Result<String, StoreError> {
    let pool = store
        .writer
        .pg_pool()
        .ok_or_else(|| StoreError::UnsupportedUrl("a plan is PostgreSQL's".into()))?;
    let mut tx = pool.begin().await?;
    crate::writer::prefer_keys(&mut tx).await?;
    let sql = format!("EXPLAIN {}", crate::writer::UPDATE_TASK_ROWS);
    let ids: Vec<i64> = (1..=rows as i64).collect();
    let texts = vec![None::<String>; rows];
    let numbers = vec![None::<i64>; rows];
    let query = sqlx::query(&sql)
        .bind(&ids)
        .bind(vec!["succeeded"; rows])
        .bind(&texts)
        .bind(&texts)
        .bind(&texts)
        .bind(&texts)
        .bind(&texts)
        .bind(&texts)
        .bind(&numbers)
        .bind(&numbers);
    let lines = query.bind(0_i64).fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    let mut plan = String::new();
    for line in lines {
        plan.push_str(&sqlx::Row::try_get::<String, _>(&line, 0)?);
        plan.push('\n');
    }
    Ok(plan)
}
