//! `shoal datasource`: a project's named database connections for SQL tasks, on the
//! embedded store or, with `--server`, through the API. Passwords are read from stdin
//! or an environment variable, never from the command line (which other users of the
//! machine can see), and never printed.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use shoal_api::datasources::{DatasourceBody, DatasourceView};
use shoal_api::secrets::SecretBox;

use crate::app::{DataDir, open_store};
use crate::cli::workflow::parse_pairs;
use crate::client::{Client, seg};

#[derive(Debug, Subcommand)]
pub enum DatasourceCommand {
    /// Create or replace a datasource of the project (--project).
    Set {
        name: String,
        /// postgresql, mysql (MySQL and MariaDB) or sqlite.
        #[arg(long = "type")]
        kind: String,
        #[arg(long, default_value = "")]
        host: String,
        #[arg(long)]
        port: Option<u16>,
        /// Database name; for sqlite a file name in <data dir>/datasources/<project>/.
        #[arg(long)]
        database: String,
        #[arg(long, default_value = "")]
        user: String,
        /// Read the password from standard input (one line).
        #[arg(long, conflicts_with = "password_env")]
        password_stdin: bool,
        /// Read the password from this environment variable.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Connection option (repeatable), e.g. `sslmode=require`.
        #[arg(long = "option", value_name = "NAME=VALUE")]
        options: Vec<String>,
    },
    /// The project's datasources (never their passwords).
    List {
        #[arg(long)]
        json: bool,
    },
    Delete {
        name: String,
    },
}

/// Where the commands act: the embedded store, or a server.
pub enum Target<'a> {
    Embedded {
        data: &'a DataDir,
        db: Option<&'a str>,
        project: &'a str,
    },
    Server(&'a Client),
}

pub async fn run(cmd: &DatasourceCommand, target: Target<'_>) -> anyhow::Result<ExitCode> {
    match cmd {
        DatasourceCommand::Set {
            name,
            kind,
            host,
            port,
            database,
            user,
            password_stdin,
            password_env,
            options,
        } => {
            let password = if *password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_to_string(&mut line)
                    .context("reading the password from stdin")?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else if let Some(var) = password_env {
                Some(std::env::var(var).with_context(|| format!("environment variable {var}"))?)
            } else {
                None
            };
            let body = DatasourceBody {
                kind: kind.clone(),
                host: host.clone(),
                port: *port,
                database: database.clone(),
                user: user.clone(),
                password,
                options: parse_pairs(options, "--option")?,
            };
            let view = set(&target, name, &body).await?;
            eprintln!(
                "datasource `{}` saved: {} {}{}",
                view.name,
                view.kind,
                where_of(&view),
                if view.has_password {
                    " (password sealed)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        DatasourceCommand::List { json } => {
            let views = list(&target).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                let mut t = comfy_table::Table::new();
                t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                    .set_header(["name", "type", "where", "user", "password"]);
                for v in &views {
                    t.add_row([
                        v.name.clone(),
                        v.kind.clone(),
                        where_of(v),
                        v.user.clone(),
                        if v.has_password { "sealed" } else { "-" }.to_owned(),
                    ]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DatasourceCommand::Delete { name } => {
            delete(&target, name).await?;
            eprintln!("datasource `{name}` deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn where_of(v: &DatasourceView) -> String {
    if v.kind == "sqlite" {
        v.database.clone()
    } else {
        let port = v.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}{port}/{}", v.host, v.database)
    }
}

/// The embedded store's project row (created on first use: an embedded data dir has
/// the one `default` project unless told otherwise) and the data dir's sealing key.
async fn embedded(
    data: &DataDir,
    db: Option<&str>,
    project: &str,
) -> anyhow::Result<(shoal_store::Store, SecretBox, i64)> {
    let store = open_store(data, db).await?;
    let sealer = SecretBox::load_or_create(&data.root().join("secret.key"))?;
    if store.project(project).await?.is_none() {
        store.create_project(project, "").await?;
    }
    let id = store
        .project(project)
        .await?
        .with_context(|| format!("project `{project}` could not be created"))?
        .id;
    Ok((store, sealer, id))
}

async fn set(
    target: &Target<'_>,
    name: &str,
    body: &DatasourceBody,
) -> anyhow::Result<DatasourceView> {
    match target {
        Target::Server(c) => {
            let path = format!("/projects/{}/datasources/{}", seg(&c.project), seg(name));
            let body = serde_json::to_value(body)?;
            c.json(reqwest::Method::PUT, &path, Some(&body)).await
        }
        Target::Embedded { data, db, project } => {
            let (store, sealer, id) = embedded(data, *db, project).await?;
            shoal_api::datasources::put(&store, &sealer, id, project, name, body).await?;
            shoal_api::datasources::list(&store, &sealer, project)
                .await?
                .into_iter()
                .find(|d| d.name == name)
                .context("the datasource was not saved")
        }
    }
}

async fn list(target: &Target<'_>) -> anyhow::Result<Vec<DatasourceView>> {
    match target {
        Target::Server(c) => {
            let path = format!("/projects/{}/datasources", seg(&c.project));
            c.json(reqwest::Method::GET, &path, None).await
        }
        Target::Embedded { data, db, project } => {
            let (store, sealer, _) = embedded(data, *db, project).await?;
            Ok(shoal_api::datasources::list(&store, &sealer, project).await?)
        }
    }
}

async fn delete(target: &Target<'_>, name: &str) -> anyhow::Result<()> {
    match target {
        Target::Server(c) => {
            let path = format!("/projects/{}/datasources/{}", seg(&c.project), seg(name));
            let _: serde_json::Value = c.json(reqwest::Method::DELETE, &path, None).await?;
            Ok(())
        }
        Target::Embedded { data, db, project } => {
            let (store, _, id) = embedded(data, *db, project).await?;
            if !store.delete_datasource(id, name).await? {
                bail!("project `{project}` has no datasource `{name}`");
            }
            Ok(())
        }
    }
}
