//! `sql`: DolphinScheduler's SQL task.
//!
//! Fields as DolphinScheduler and pydolphinscheduler write them: `datasource` /
//! `datasource_name` (a datasource of the task's project, by name), `type` (the
//! datasource's type, informational), `sql`, `sql_type` (`0` / `SELECT` a query,
//! `1` / `NOT_SELECT` anything else; detected from the text as pydolphinscheduler does
//! when absent), `pre_statements` and `post_statements` (run before and after, on the
//! same connection), `display_rows` (rows shown in the log, default 10),
//! `segment_separator` (splits `sql` into statements; by default it is split at `;`
//! outside quotes and comments, as DolphinScheduler's `splitAndRemoveComment` does) and
//! `limit` (rows read, default 10,000).
//!
//! As in DolphinScheduler, a query runs its first statement only; a non-query runs all
//! of them. The host runs the statements ([`shoal_sdk::sql`]) within its own row and
//! byte limits.
//!
//! OUT parameters: for a query, a declared `LIST` parameter gets the column of its name
//! over all rows as a JSON array, any other type the first row's value (`""` when
//! there are no rows); for a non-query, the first declared OUT parameter gets the rows
//! affected by the last statement.

use shoal_sdk::prelude::*;
use shoal_sdk::serde_json;
use shoal_sdk::sql::{Statement, StatementResult};

mod split;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The datasource's name in the task's project.
    #[serde(alias = "datasource_name")]
    pub datasource: String,
    /// The datasource's type (`POSTGRESQL`, `MYSQL`, `SQLITE`); the datasource itself
    /// decides, this is kept for DolphinScheduler's files.
    #[serde(default, rename = "type", alias = "datasource_type")]
    pub kind: Option<String>,
    pub sql: String,
    #[serde(
        default,
        alias = "sqlType",
        deserialize_with = "shoal_sdk::text::optional_scalar"
    )]
    #[schemars(with = "Option<shoal_sdk::text::Scalar>")]
    pub sql_type: Option<String>,
    #[serde(default, alias = "preStatements")]
    pub pre_statements: Statements,
    #[serde(default, alias = "postStatements")]
    pub post_statements: Statements,
    #[serde(default = "ten", alias = "displayRows")]
    pub display_rows: usize,
    #[serde(default, alias = "segmentSeparator")]
    pub segment_separator: String,
    #[serde(default = "query_limit")]
    pub limit: usize,
}

/// One statement or a list, as pydolphinscheduler's `get_stm_list` accepts.
#[derive(Default, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Statements {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Statements {
    fn list(&self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(s) if s.trim().is_empty() => Vec::new(),
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.iter().filter(|s| !s.trim().is_empty()).cloned().collect(),
        }
    }
}

fn ten() -> usize {
    10
}

/// DolphinScheduler's `QUERY_LIMIT`.
fn query_limit() -> usize {
    10_000
}

/// Whether the main SQL is a query.
fn is_query(params: &Params) -> Result<bool, String> {
    match params.sql_type.as_deref().map(str::trim) {
        Some("0") => Ok(true),
        Some("1") => Ok(false),
        Some(t) if t.eq_ignore_ascii_case("select") || t.eq_ignore_ascii_case("query") => Ok(true),
        Some(t)
            if t.eq_ignore_ascii_case("not_select")
                || t.eq_ignore_ascii_case("non_query")
                || t.eq_ignore_ascii_case("non-query") =>
        {
            Ok(false)
        }
        Some(other) => Err(format!(
            "`{other}` is not 0 (query) or 1 (non-query); SELECT and NOT_SELECT are accepted too"
        )),
        None => Ok(looks_like_query(&params.sql)),
    }
}

/// pydolphinscheduler's `Sql.sql_type`: a query unless the text holds one of these
/// words followed by a space, at its start or after a space (case-insensitive).
pub fn looks_like_query(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    // `re.match` with `.*` does not cross newlines: only the first line is looked at.
    let first_line = lower.lines().next().unwrap_or("");
    ![
        "insert", "delete", "drop", "update", "truncate", "alter", "create",
    ]
    .iter()
    .any(|word| {
        let needle = format!("{word} ");
        first_line.starts_with(&needle) || first_line.contains(&format!(" {needle}"))
    })
}

pub struct Sql;

impl TaskType for Sql {
    type Params = Params;
    const NAME: &'static str = "sql";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Runs SQL on a project datasource (PostgreSQL, MySQL/MariaDB, SQLite)";
    const EXECUTION_CLASS: ExecutionClass = ExecutionClass::Blocking;
    const CAPABILITIES: &'static [&'static str] = &["sql"];

    fn validate(params: &Params) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if params.datasource.trim().is_empty() {
            errors.push(FieldError::new("datasource", "no datasource named"));
        }
        if params.sql.trim().is_empty() {
            errors.push(FieldError::new("sql", "the SQL is empty"));
        }
        if let Err(e) = is_query(params) {
            errors.push(FieldError::new("sql_type", e));
        }
        errors
    }

    fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        let query = is_query(&params)?;
        let mut main = split::statements(&params.sql, &params.segment_separator);
        if main.is_empty() {
            return Ok(Start::failure("the SQL holds no statement"));
        }
        if query && main.len() > 1 {
            log::warn(format!(
                "a query runs its first statement only, as in DolphinScheduler; {} more ignored",
                main.len() - 1
            ));
            main.truncate(1);
        }
        let pre = params.pre_statements.list();
        let post = params.post_statements.list();
        let mut batch: Vec<Statement> = pre.iter().map(Statement::update).collect();
        batch.extend(main.iter().map(|s| Statement {
            text: s.clone(),
            query,
        }));
        batch.extend(post.iter().map(Statement::update));
        for s in &batch {
            log::info(format!(
                "{} statement: {}",
                if s.query { "query" } else { "update" },
                s.text
            ));
        }
        let results = shoal_sdk::sql::execute(&params.datasource, &batch)?;
        let main_results = &results[pre.len()..pre.len() + main.len()];
        if query {
            let result = &main_results[0];
            let rows = &result.rows[..result.rows.len().min(params.limit)];
            // DolphinScheduler shows its default when the field is 0.
            let display = if params.display_rows == 0 {
                10
            } else {
                params.display_rows
            };
            let shown = rows.len().min(display);
            log::info(format!("display sql result {shown} rows as follows:"));
            if shown > 0 {
                log::info(table(&result.columns, &rows[..shown]));
            }
            if result.truncated || result.rows.len() > params.limit {
                log::warn("the result was cut at the row limit");
            }
            for (name, value) in query_out_params(&declared_out_params(), result, rows) {
                ctx.set_out_param(name, value);
            }
            Ok(Start::success(format!("{} rows", rows.len())))
        } else {
            let affected = main_results.last().map(|r| r.rows_affected).unwrap_or(0);
            for r in main_results {
                log::info(format!("update result: {} rows affected", r.rows_affected));
            }
            if let Some((name, _)) = declared_out_params().first() {
                ctx.set_out_param(name.clone(), affected.to_string());
            }
            Ok(Start::success(format!("{affected} rows affected")))
        }
    }
}

/// The values of the declared OUT parameters from a query's rows.
pub fn query_out_params(
    declared: &[(String, String)],
    result: &StatementResult,
    rows: &[Vec<Option<String>>],
) -> Vec<(String, String)> {
    let column = |name: &str| result.columns.iter().position(|c| c == name);
    declared
        .iter()
        .map(|(name, kind)| {
            let at = column(name);
            let cell = |row: &Vec<Option<String>>| -> String {
                at.and_then(|i| row.get(i).cloned().flatten())
                    .unwrap_or_else(|| "null".into())
            };
            let value = if kind.eq_ignore_ascii_case("LIST") {
                json_array(rows.iter().map(cell))
            } else {
                match rows.first() {
                    Some(row) => cell(row),
                    // DolphinScheduler's empty result is one row of empty strings.
                    None => String::new(),
                }
            };
            (name.clone(), value)
        })
        .collect()
}

fn json_array(values: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = values
        .map(|v| serde_json::to_string(&v).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(","))
}

/// Rows as a text table for the log.
pub fn table(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(shown(v).chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let rule = format!(
        "+{}+",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let mut out = vec![rule.clone(), line(columns.to_vec()), rule.clone()];
    for row in rows {
        out.push(line(row.iter().map(shown).collect()));
    }
    out.push(rule);
    out.join("\n")
}

export_task!(Sql);

#[cfg(test)]
mod tests {
    use super::*;

    fn result(columns: &[&str], rows: &[&[&str]]) -> StatementResult {
        StatementResult {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| Some((*v).to_owned())).collect())
                .collect(),
            truncated: false,
            rows_affected: 0,
        }
    }

    #[test]
    fn out_params_take_a_column_or_the_first_row() {
        let r = result(&["id", "name"], &[&["1", "a"], &["2", "b"]]);
        let declared = vec![
            ("id".to_owned(), "LIST".to_owned()),
            ("name".to_owned(), "VARCHAR".to_owned()),
            ("missing".to_owned(), "VARCHAR".to_owned()),
        ];
        assert_eq!(
            query_out_params(&declared, &r, &r.rows),
            vec![
                ("id".to_owned(), r#"["1","2"]"#.to_owned()),
                ("name".to_owned(), "a".to_owned()),
                ("missing".to_owned(), "null".to_owned()),
            ]
        );
        let empty = result(&[], &[]);
        assert_eq!(
            query_out_params(&declared[1..2], &empty, &empty.rows),
            vec![("name".to_owned(), String::new())]
        );
    }

    #[test]
    fn the_sql_type_is_detected_as_pydolphinscheduler_does() {
        assert!(looks_like_query("select * from t"));
        assert!(looks_like_query("with x as (select 1) select * from x"));
        assert!(!looks_like_query("INSERT INTO t VALUES (1)"));
        assert!(!looks_like_query("  create table t (a int)"));
        assert!(!looks_like_query("truncate t"));
        assert!(looks_like_query("select created from t"));
    }

    #[test]
    fn a_table_lines_up() {
        let t = table(
            &["id".into(), "name".into()],
            &[vec![Some("1".into()), None]],
        );
        assert_eq!(
            t,
            "+----+------+\n| id | name |\n+----+------+\n| 1  | NULL |\n+----+------+"
        );
    }
}
