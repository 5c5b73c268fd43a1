//! One dispatch for the commands that read instances, over either backend: the
//! embedded store, or the API of a server or proxy. Both answer with the API's own
//! types (`shoal-api-types`), printed by one function and mapped to one exit code, so a
//! command shows and exits the same wherever it runs.

use std::process::ExitCode;

use anyhow::Context as _;
use reqwest::Method;
use shoal_api::view::View;
use shoal_api_types::instances::{InstanceDetail, InstancePage};

use crate::app::{DataDir, open_store};
use crate::client::Client;

/// Where a command's data lives.
pub enum Backend<'a> {
    Embedded {
        data: &'a DataDir,
        db: Option<&'a str>,
        project: &'a str,
    },
    /// A `shoal server` or `shoal proxy`.
    Remote(&'a Client),
}

/// The exit code for an instance that settled in `state`, the same everywhere: 0 when
/// it succeeded, 2 when it is paused (not finished: resume it), 1 otherwise.
pub fn exit_for(state: &str) -> ExitCode {
    match state {
        "succeeded" => ExitCode::SUCCESS,
        "paused" => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

impl Backend<'_> {
    /// The server or proxy client; an error naming what to give for the embedded one
    /// (the commands that only exist against a server select one anyway).
    pub fn client(&self) -> anyhow::Result<&Client> {
        match self {
            Backend::Remote(c) => Ok(c),
            Backend::Embedded { .. } => anyhow::bail!(
                "this command talks to a server: give --server URL (or $SHOAL_SERVER), or save one with `shoal login`"
            ),
        }
    }

    /// Instances, newest first.
    pub async fn instances(
        &self,
        workflow: Option<&str>,
        states: &[String],
        limit: i64,
    ) -> anyhow::Result<InstancePage> {
        match self {
            Backend::Remote(c) => {
                let mut q = vec![("project", c.project.clone()), ("limit", limit.to_string())];
                if let Some(w) = workflow {
                    q.push(("workflow", w.to_owned()));
                }
                if !states.is_empty() {
                    q.push(("state", states.join(",")));
                }
                Ok(c.send(c.request(Method::GET, "/instances").query(&q))
                    .await?
                    .json()
                    .await?)
            }
            Backend::Embedded { data, db, project } => {
                let store = open_store(data, *db).await?;
                let mut filter = shoal_store::InstanceFilter {
                    states: states.to_vec(),
                    ..Default::default()
                };
                if let Some(w) = workflow {
                    let d = store
                        .definition_row(project, w)
                        .await?
                        .with_context(|| format!("project `{project}` has no workflow `{w}`"))?;
                    filter.definition_id = Some(d.id);
                }
                let limit = limit.clamp(1, 1000);
                let listing = store.find_instances(&filter, limit, 0).await?;
                Ok(InstancePage {
                    next_before: listing.next_before(0),
                    total: listing.total,
                    total_capped: listing.capped,
                    limit,
                    offset: 0,
                    items: listing.rows.into_iter().map(View::view).collect(),
                    missing: Vec::new(),
                })
            }
        }
    }

    /// One instance with its task attempts.
    pub async fn instance(&self, id: i64) -> anyhow::Result<InstanceDetail> {
        match self {
            Backend::Remote(c) => c.json(Method::GET, &format!("/instances/{id}"), None).await,
            Backend::Embedded { data, db, .. } => {
                let store = open_store(data, *db).await?;
                let row = store
                    .workflow_instance(id)
                    .await?
                    .with_context(|| format!("there is no workflow instance {id}"))?;
                let project = store
                    .definition_row_by_id(row.definition_id)
                    .await?
                    .map(|d| d.project)
                    .unwrap_or_default();
                let tasks = store.task_instances(id).await?;
                Ok(InstanceDetail {
                    project,
                    instance: row.view(),
                    tasks: tasks.into_iter().map(View::view).collect(),
                })
            }
        }
    }
}

/// `shoal instances`, on either backend.
pub async fn instances(
    backend: &Backend<'_>,
    workflow: Option<&str>,
    states: &[String],
    limit: i64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let page = backend.instances(workflow, states, limit).await?;
    crate::client::commands::print_instances(&serde_json::to_value(&page)?, json);
    Ok(ExitCode::SUCCESS)
}

/// `shoal instance show`, on either backend.
pub async fn show(backend: &Backend<'_>, id: i64, json: bool) -> anyhow::Result<ExitCode> {
    let detail = backend.instance(id).await?;
    crate::client::commands::print_show(&serde_json::to_value(&detail)?, json);
    Ok(ExitCode::SUCCESS)
}
