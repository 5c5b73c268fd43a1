//! Datasources: a project's named database connections, as DolphinScheduler has them.
//!
//! A project editor registers a datasource once (type, host, port, database, user and a
//! password that is sealed at rest and never shown again); SQL tasks then name it. The
//! master hands a task only the datasources its parameters name, password included, to
//! the host that runs it, so the plugin names a datasource and never sees how to reach
//! it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The databases a datasource can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasourceKind {
    Postgresql,
    /// MySQL and MariaDB (one wire protocol).
    Mysql,
    /// A file in the running host's `datasources/<project>/` directory, never a path a
    /// user chooses: a user must not open the host's own files.
    Sqlite,
}

impl DatasourceKind {
    pub const ALL: [DatasourceKind; 3] = [Self::Postgresql, Self::Mysql, Self::Sqlite];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    /// The port a server of this kind listens on unless told otherwise.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Self::Postgresql => Some(5432),
            Self::Mysql => Some(3306),
            Self::Sqlite => None,
        }
    }
}

impl fmt::Display for DatasourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DatasourceKind {
    type Err = String;

    /// DolphinScheduler's spellings too (`POSTGRESQL`, `MYSQL`, `postgres`, `mariadb`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" | "pg" => Ok(Self::Postgresql),
            "mysql" | "mariadb" => Ok(Self::Mysql),
            "sqlite" => Ok(Self::Sqlite),
            other => Err(format!(
                "unknown datasource type `{other}`; expected postgresql, mysql or sqlite"
            )),
        }
    }
}

/// Where a datasource is, without its password: what the API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasourceSpec {
    #[serde(rename = "type")]
    pub kind: DatasourceKind,
    /// Server host (empty for SQLite).
    #[serde(default)]
    pub host: String,
    /// Server port; none means the kind's default.
    #[serde(default)]
    pub port: Option<u16>,
    /// Database name, or for SQLite the file name inside the datasource directory.
    pub database: String,
    #[serde(default)]
    pub user: String,
    /// Extra connection options (`sslmode=require`, ...), passed as URL query pairs.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// The longest field a datasource may hold; connection strings are short.
const MAX_FIELD: usize = 1024;

impl DatasourceSpec {
    /// Every problem with the spec, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.database.trim().is_empty() {
            out.push(("database", "missing".to_owned()));
        }
        for (field, value) in [
            ("host", &self.host),
            ("database", &self.database),
            ("user", &self.user),
        ] {
            if value.len() > MAX_FIELD {
                out.push((field, format!("longer than {MAX_FIELD} bytes")));
            }
            if value.chars().any(char::is_control) {
                out.push((field, "holds a control character".to_owned()));
            }
        }
        match self.kind {
            DatasourceKind::Sqlite => {
                if !valid_sqlite_file(&self.database) {
                    out.push((
                        "database",
                        format!(
                            "`{}` is not a plain file name: a SQLite datasource is a file in the \
                             host's datasources/<project>/ directory (letters, digits, `.`, `-`, `_`)",
                            self.database
                        ),
                    ));
                }
                if !self.host.is_empty() {
                    out.push(("host", "a SQLite datasource has no host".to_owned()));
                }
            }
            DatasourceKind::Postgresql | DatasourceKind::Mysql => {
                if self.host.trim().is_empty() {
                    out.push(("host", "missing".to_owned()));
                }
                if self.user.trim().is_empty() {
                    out.push(("user", "missing".to_owned()));
                }
            }
        }
        if self.options.len() > 32 {
            out.push(("options", "more than 32 options".to_owned()));
        }
        out
    }
}

fn valid_sqlite_file(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A datasource as handed to the host that runs a task: with its password, which no
/// `Debug` output, log or plugin ever shows.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedDatasource {
    pub name: String,
    /// The project it belongs to (names the SQLite directory).
    pub project: String,
    pub spec: DatasourceSpec,
    pub password: String,
}

impl fmt::Debug for GrantedDatasource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantedDatasource")
            .field("name", &self.name)
            .field("project", &self.project)
            .field("spec", &self.spec)
            .field("password", &crate::log::REDACTED)
            .finish()
    }
}

/// The parameter names through which a task names the datasources it uses: what a SQL
/// task writes (`datasource` in DolphinScheduler's export, `datasource_name` in
/// pydolphinscheduler's YAML).
pub const DATASOURCE_PARAMS: [&str; 2] = ["datasource", "datasource_name"];

/// The datasource names a task's parameters mention, in [`DATASOURCE_PARAMS`].
pub fn named_datasources(params: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = DATASOURCE_PARAMS
        .iter()
        .filter_map(|key| params.get(key)?.as_str())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: DatasourceKind, host: &str, database: &str, user: &str) -> DatasourceSpec {
        DatasourceSpec {
            kind,
            host: host.into(),
            port: None,
            database: database.into(),
            user: user.into(),
            options: BTreeMap::new(),
        }
    }

    #[test]
    fn a_sqlite_datasource_is_a_file_name_not_a_path() {
        assert!(
            spec(DatasourceKind::Sqlite, "", "demo.db", "")
                .problems()
                .is_empty()
        );
        for bad in ["../shoal.db", "/etc/passwd", "a/b.db", ".hidden", ""] {
            let problems = spec(DatasourceKind::Sqlite, "", bad, "").problems();
            assert!(
                problems.iter().any(|(f, _)| *f == "database"),
                "{bad}: {problems:?}"
            );
        }
    }

    #[test]
    fn servers_need_host_and_user() {
        let problems = spec(DatasourceKind::Postgresql, "", "db", "").problems();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["host", "user"]);
        assert_eq!("MYSQL".parse(), Ok(DatasourceKind::Mysql));
        assert_eq!("POSTGRESQL".parse(), Ok(DatasourceKind::Postgresql));
        assert!("oracle".parse::<DatasourceKind>().is_err());
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let granted = GrantedDatasource {
            name: "pg".into(),
            project: "p".into(),
            spec: spec(DatasourceKind::Postgresql, "127.0.0.1", "db", "u"),
            password: "hunter2".into(),
        };
        assert!(!format!("{granted:?}").contains("hunter2"));
    }

    #[test]
    fn tasks_name_their_datasources_by_parameter() {
        let params =
            serde_json::json!({"datasource_name": "pg", "sql": "select 1", "datasource": 3});
        assert_eq!(named_datasources(&params), ["pg"]);
    }
}
