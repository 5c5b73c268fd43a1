//! Statements on real databases: a SQLite file in a temp dir, a fresh PostgreSQL
//! database and a fresh MariaDB database, each created for the test and dropped after.

use std::collections::BTreeMap;

use shoal_datasource::testing::{ScratchDatabase, fresh_mariadb, fresh_postgres};
use shoal_datasource::{Limits, SqlError, Statement, execute};
use shoal_model::{DatasourceKind, DatasourceSpec, GrantedDatasource};

fn granted(name: &str, spec: DatasourceSpec, password: &str) -> GrantedDatasource {
    GrantedDatasource {
        name: name.into(),
        project: "proj".into(),
        spec,
        password: password.into(),
    }
}

fn update(s: &str) -> Statement {
    Statement {
        text: s.into(),
        query: false,
    }
}

fn query(s: &str) -> Statement {
    Statement {
        text: s.into(),
        query: true,
    }
}

/// The same script on every kind: a table, rows, a query whose values come back as
/// text (NULL as none), and affected-row counts.
async fn round_trip(ds: &GrantedDatasource, root: &std::path::Path) {
    let results = execute(
        ds,
        root,
        &[
            update("CREATE TABLE people (id INTEGER, name VARCHAR(20), score DECIMAL(5,2))"),
            update("INSERT INTO people VALUES (1, 'ann', 9.50), (2, 'bob', NULL), (3, 'cy', 1.25)"),
            update("UPDATE people SET score = 2.00 WHERE id = 3"),
            query("SELECT id, name, score FROM people ORDER BY id"),
        ],
        &Limits::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{:?}: {e}", ds.spec.kind));
    assert_eq!(results[1].rows_affected, 3);
    assert_eq!(results[2].rows_affected, 1);
    let q = &results[3];
    assert_eq!(q.columns, ["id", "name", "score"]);
    let rows: Vec<Vec<Option<&str>>> = q
        .rows
        .iter()
        .map(|r| r.iter().map(|v| v.as_deref()).collect())
        .collect();
    let score = |s: &'static str| Some(s);
    // SQLite's NUMERIC affinity keeps 9.5 as a REAL and 2.00 as the integer 2; the
    // servers print the DECIMAL's scale.
    let (ann, cy) = match ds.spec.kind {
        DatasourceKind::Sqlite => (score("9.5"), score("2")),
        _ => (score("9.50"), score("2.00")),
    };
    assert_eq!(
        rows,
        vec![
            vec![Some("1"), Some("ann"), ann],
            vec![Some("2"), Some("bob"), None],
            vec![Some("3"), Some("cy"), cy],
        ],
        "{:?}",
        ds.spec.kind
    );
    assert!(!q.truncated);

    // The row limit cuts the result and says so; a failing statement names its place
    // and stops the rest.
    let limits = Limits {
        max_rows: 2,
        ..Limits::default()
    };
    let cut = execute(
        ds,
        root,
        &[query("SELECT id FROM people ORDER BY id")],
        &limits,
    )
    .await
    .unwrap();
    assert_eq!(cut[0].rows.len(), 2);
    assert!(cut[0].truncated);
    let err = execute(
        ds,
        root,
        &[
            query("SELECT 1"),
            update("INSERT INTO no_such_table VALUES (1)"),
            update("DROP TABLE people"),
        ],
        &Limits::default(),
    )
    .await
    .unwrap_err();
    match &err {
        SqlError::Statement { index, message, .. } => {
            assert_eq!(*index, 2, "{err}");
            assert!(message.contains("no_such_table"), "{err}");
        }
        other => panic!("{other}"),
    }
    // The third statement never ran: the table is still there.
    let still = execute(
        ds,
        root,
        &[query("SELECT COUNT(*) AS n FROM people")],
        &Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(still[0].rows[0][0].as_deref(), Some("3"));
}

#[tokio::test]
async fn sqlite_files_live_in_the_projects_datasource_directory() {
    let root = tempfile::tempdir().unwrap();
    let spec = DatasourceSpec {
        kind: DatasourceKind::Sqlite,
        host: String::new(),
        port: None,
        database: "demo.db".into(),
        user: String::new(),
        options: BTreeMap::new(),
    };
    round_trip(&granted("local", spec.clone(), ""), root.path()).await;
    assert!(root.path().join("proj").join("demo.db").is_file());

    // A name that would leave the directory is refused before anything is opened.
    let escape = DatasourceSpec {
        database: "../../etc/shadow".into(),
        ..spec
    };
    let err = execute(
        &granted("bad", escape, ""),
        root.path(),
        &[query("SELECT 1")],
        &Limits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SqlError::Connect { .. }), "{err}");
}

async fn on_server(scratch: Option<ScratchDatabase>) {
    let Some(scratch) = scratch else { return };
    let root = tempfile::tempdir().unwrap();
    let ds = granted("server", scratch.spec.clone(), &scratch.password);
    round_trip(&ds, root.path()).await;

    // A wrong password is a connection error that does not echo the password.
    let wrong = GrantedDatasource {
        spec: DatasourceSpec {
            user: "shoal_no_such_user".into(),
            ..scratch.spec.clone()
        },
        password: "not-the-password".into(),
        ..ds.clone()
    };
    let err = execute(
        &wrong,
        root.path(),
        &[query("SELECT 1")],
        &Limits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SqlError::Connect { .. }), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    scratch.drop_database().await;
}

#[tokio::test]
async fn postgresql_datasource_round_trip() {
    on_server(fresh_postgres().await).await;
}

#[tokio::test]
async fn mariadb_datasource_round_trip() {
    on_server(fresh_mariadb().await).await;
}
