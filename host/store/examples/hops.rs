//! What a SQLite round trip costs through sqlx, where every statement is a hand-off to
//! the connection's own thread and back (BENCHMARKS.md, issue 15): a chain step's
//! transaction statement by statement, the same as one multi-statement string, one
//! autocommit insert, and a bare `SELECT` (a round trip that writes nothing).
//!
//! `cargo run --release -p shoal-store --example hops`
use std::time::Instant;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("h.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT, n INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE e (id INTEGER PRIMARY KEY, k TEXT, n INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    // The store's pool is sqlx's `Any` driver over SQLite.
    sqlx::any::install_default_drivers();
    let any = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect(&format!("sqlite://{}", dir.path().join("h.db").display()))
        .await
        .unwrap();
    let n = 3000;
    // Two OS threads handing a message back and forth: the wake-up a driver thread costs.
    {
        let (to_b, b_rx) = std::sync::mpsc::channel::<u64>();
        let (to_a, a_rx) = std::sync::mpsc::channel::<u64>();
        let b = std::thread::spawn(move || {
            while let Ok(v) = b_rx.recv() {
                if to_a.send(v).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        for i in 0..n as u64 {
            to_b.send(i).unwrap();
            a_rx.recv().unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("a round trip between two threads (std channels): {per:.1} µs");
        drop(to_b);
        b.join().unwrap();
    }
    for round in 0..2 {
        let start = Instant::now();
        for i in 0..n {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("UPDATE t SET state = $1 WHERE id = $2")
                .bind("succeeded")
                .bind(i as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO t (state, n) VALUES ($1, $2) RETURNING id")
                .bind("dispatched")
                .bind(i as i64)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO e (k, n) VALUES ($1, $2), ($3, $4)")
                .bind("a")
                .bind(i as i64)
                .bind("b")
                .bind(i as i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("round {round}: statement by statement: {per:.1} µs per transaction");
        let start = Instant::now();
        for i in 0..n {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query(
                "BEGIN; UPDATE t SET state = ?1 WHERE id = ?2; INSERT INTO t (state, n) VALUES (?3, ?4); \
                 INSERT INTO e (k, n) VALUES (?5, ?6), (?7, ?8); COMMIT",
            )
            .bind("succeeded")
            .bind(i as i64)
            .bind("dispatched")
            .bind(i as i64)
            .bind("a")
            .bind(i as i64)
            .bind("b")
            .bind(i as i64)
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("round {round}: one multi-statement string: {per:.1} µs per transaction");
        let start = Instant::now();
        for i in 0..n {
            sqlx::query("INSERT INTO e (k, n) VALUES ($1, $2)")
                .bind("a")
                .bind(i as i64)
                .execute(&pool)
                .await
                .unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("round {round}: one autocommit insert: {per:.1} µs");
        let start = Instant::now();
        for i in 0..n {
            sqlx::query("SELECT $1")
                .bind(i as i64)
                .fetch_one(&pool)
                .await
                .unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("round {round}: one SELECT (a round trip, no write): {per:.1} µs");
        let start = Instant::now();
        for i in 0..n {
            sqlx::query("SELECT $1")
                .bind(i as i64)
                .fetch_one(&any)
                .await
                .unwrap();
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("round {round}: the same through sqlx's Any driver (as the store): {per:.1} µs");
    }
}
