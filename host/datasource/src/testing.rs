//! Throw-away databases on the machine's PostgreSQL and MariaDB for datasource tests:
//! each test creates its own database and drops it. Without a server the test is
//! skipped loudly, except under `CI=true`, where a missing service is a failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use shoal_model::{DatasourceKind, DatasourceSpec};
use sqlx::{ConnectOptions, Connection};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database created for one test.
pub struct ScratchDatabase {
    pub spec: DatasourceSpec,
    /// The password of `spec.user` (empty on this machine's trust setups).
    pub password: String,
    admin_url: String,
    dropped: bool,
}

fn unique(prefix: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{now}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn unavailable(what: &str, url: &str, e: impl std::fmt::Display) -> Option<ScratchDatabase> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} at {url} is required under CI: {e}");
    }
    eprintln!("SKIPPED: this test needs {what} (none at {url}: {e})");
    None
}

/// A fresh database on PostgreSQL (`SHOAL_TEST_PG`, default
/// `postgres://postgres@127.0.0.1:5432/postgres`).
pub async fn fresh_postgres() -> Option<ScratchDatabase> {
    let admin = std::env::var("SHOAL_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let options: sqlx::postgres::PgConnectOptions = admin.parse().ok()?;
    let mut conn = match options.connect().await {
        Ok(c) => c,
        Err(e) => return unavailable("PostgreSQL", &admin, e),
    };
    let name = unique("shoal_ds");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("creating a scratch database");
    let _ = conn.close().await;
    Some(ScratchDatabase {
        spec: DatasourceSpec {
            kind: DatasourceKind::Postgresql,
            host: options.get_host().to_owned(),
            port: Some(options.get_port()),
            database: name,
            user: options.get_username().to_owned(),
            options: BTreeMap::new(),
        },
        password: String::new(),
        admin_url: admin,
        dropped: false,
    })
}

/// A fresh database on MariaDB / MySQL (`SHOAL_TEST_MYSQL`, default
/// `mysql://root@127.0.0.1:3306/mysql`).
pub async fn fresh_mariadb() -> Option<ScratchDatabase> {
    let admin = std::env::var("SHOAL_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into());
    let options: sqlx::mysql::MySqlConnectOptions = admin.parse().ok()?;
    let mut conn = match options.connect().await {
        Ok(c) => c,
        Err(e) => return unavailable("MariaDB", &admin, e),
    };
    let name = unique("shoal_ds");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("creating a scratch database");
    let _ = conn.close().await;
    let url = url::Url::parse(&admin).expect("admin URL");
    Some(ScratchDatabase {
        spec: DatasourceSpec {
            kind: DatasourceKind::Mysql,
            host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
            port: url.port().or(Some(3306)),
            database: name,
            user: url.username().to_owned(),
            options: BTreeMap::new(),
        },
        password: url.password().unwrap_or_default().to_owned(),
        admin_url: admin,
        dropped: false,
    })
}

impl ScratchDatabase {
    /// Drop the database (call at the end of the test).
    pub async fn drop_database(mut self) {
        drop_named(self.spec.kind, &self.admin_url, &self.spec.database).await;
        self.dropped = true;
    }
}

/// A test that panicked before `drop_database` still leaves no database behind: CI runs
/// on the machine the next session works on.
impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (kind, url, name) = (
            self.spec.kind,
            self.admin_url.clone(),
            self.spec.database.clone(),
        );
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_named(kind, &url, &name));
            }
        })
        .join();
    }
}

async fn drop_named(kind: DatasourceKind, admin_url: &str, name: &str) {
    match kind {
        DatasourceKind::Postgresql => {
            let mut conn = sqlx::PgConnection::connect(admin_url)
                .await
                .expect("connecting to drop a scratch database");
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .expect("dropping a scratch database");
        }
        DatasourceKind::Mysql => {
            let mut conn = sqlx::MySqlConnection::connect(admin_url)
                .await
                .expect("connecting to drop a scratch database");
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut conn)
                .await
                .expect("dropping a scratch database");
        }
        DatasourceKind::Sqlite => {}
    }
}
