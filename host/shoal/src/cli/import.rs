//! `shoal import FILE.json` (a DolphinScheduler export into the project) and `shoal
//! export NAME` (a definition back out as the file it was applied from), on the
//! embedded store or, with `--server`, through the API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use shoal_api::catalog::RegistryCatalog;
use shoal_api::import::ImportReport;
use shoal_api::routes::import::id_names;

use crate::app::{DataDir, load_policy, open_registry, open_store};
use crate::client::{Client, seg};

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The file DolphinScheduler's "Export" wrote (3.0–3.3), or a create-definition API
    /// body.
    pub file: PathBuf,
    /// Import the rest when some tasks have types Shoal lacks; those become skipped
    /// `Noop` tasks, each reported.
    #[arg(long)]
    pub partial: bool,
    /// Shoal datasource names for the export's datasource ids: `--datasource 1=warehouse`
    /// (repeatable). An id not given becomes `datasource-<id>`.
    #[arg(long = "datasource", value_name = "ID=NAME")]
    pub datasources: Vec<String>,
    /// Shoal task group names for the export's task group ids (repeatable).
    #[arg(long = "task-group", value_name = "ID=NAME")]
    pub task_groups: Vec<String>,
    /// The zone of the DolphinScheduler server that wrote the file [default: each
    /// schedule's own].
    #[arg(long)]
    pub export_timezone: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    pub workflow: String,
    /// Which version [default: the current one].
    #[arg(long)]
    pub version: Option<i64>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Where the commands act.
pub enum Target<'a> {
    Embedded {
        data: &'a DataDir,
        db: Option<&'a str>,
        policy: Option<&'a Path>,
        project: &'a str,
    },
    Server(&'a Client),
}

pub async fn import(args: &ImportArgs, target: Target<'_>) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let joined = |v: &[String]| v.join(",");
    let report: ImportReport = match target {
        Target::Server(c) => {
            let mut query = vec![("partial", args.partial.to_string())];
            if !args.datasources.is_empty() {
                query.push(("datasources", joined(&args.datasources)));
            }
            if !args.task_groups.is_empty() {
                query.push(("task_groups", joined(&args.task_groups)));
            }
            if let Some(z) = &args.export_timezone {
                query.push(("export_timezone", z.clone()));
            }
            c.send(
                c.request(
                    reqwest::Method::POST,
                    &format!("/projects/{}/import", seg(&c.project)),
                )
                .query(&query)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(text),
            )
            .await
            .with_context(|| format!("importing {}", args.file.display()))?
            .json()
            .await?
        }
        Target::Embedded {
            data,
            db,
            policy,
            project,
        } => {
            let options = shoal_dolphin::Options {
                project: Some(project.to_owned()),
                partial: args.partial,
                datasources: id_names(Some(&joined(&args.datasources)), "--datasource")
                    .map_err(anyhow::Error::msg)?,
                task_groups: id_names(Some(&joined(&args.task_groups)), "--task-group")
                    .map_err(anyhow::Error::msg)?,
                export_timezone: args.export_timezone.clone(),
            };
            let store = open_store(data, db).await?;
            let catalog = RegistryCatalog::new(open_registry(data, load_policy(data, policy)?)?);
            match shoal_api::import::import(&store, &catalog, project, &text, &options).await {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("{}: {e}", args.file.display());
                    return Ok(ExitCode::from(1));
                }
            }
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for d in &report.workflows {
            eprintln!(
                "imported workflow `{}` version {}{} ({}, {}){}",
                d.name,
                d.version,
                if d.created { "" } else { " (unchanged)" },
                if d.online { "online" } else { "offline" },
                d.run_mode,
                d.schedule
                    .as_deref()
                    .map(|s| format!(", schedule {s}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(args: &ExportArgs, target: Target<'_>) -> anyhow::Result<ExitCode> {
    let source = match target {
        Target::Server(c) => {
            let version = match args.version {
                Some(v) => v,
                None => {
                    let detail: shoal_api::routes::DefinitionDetail = c
                        .json(
                            reqwest::Method::GET,
                            &format!(
                                "/projects/{}/definitions/{}",
                                seg(&c.project),
                                seg(&args.workflow)
                            ),
                            None,
                        )
                        .await?;
                    detail.definition.current_version
                }
            };
            let v: shoal_api::routes::VersionView = c
                .json(
                    reqwest::Method::GET,
                    &format!(
                        "/projects/{}/definitions/{}/versions/{version}",
                        seg(&c.project),
                        seg(&args.workflow)
                    ),
                    None,
                )
                .await?;
            v.source
        }
        Target::Embedded {
            data, db, project, ..
        } => {
            let store = open_store(data, db).await?;
            let Some(row) = store.definition_row(project, &args.workflow).await? else {
                bail!("project `{project}` has no workflow `{}`", args.workflow);
            };
            let version = args.version.unwrap_or(row.current_version);
            store
                .definition_by_id(row.id, version)
                .await?
                .with_context(|| format!("workflow `{}` has no version {version}", args.workflow))?
                .source
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &source).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{source}"),
    }
    Ok(ExitCode::SUCCESS)
}
