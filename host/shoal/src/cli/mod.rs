//! Command-line definitions and dispatch.

pub(crate) mod backend;
mod datasource;
mod import;
mod plugins;
pub(crate) mod task;
mod validate;
pub(crate) mod workflow;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::DataDir;
use crate::client::Client;
use crate::client::profile::{self, Profile, Profiles};
use backend::Backend;

#[derive(Debug, Parser)]
#[command(
    name = "shoal",
    version,
    about = "A workflow scheduler whose task types are WebAssembly components"
)]
pub struct Cli {
    /// Data directory (plugin store, compile cache, logs, work dirs) [env: SHOAL_HOME]
    /// [default: ~/.shoal]
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Operator policy file narrowing plugin grants [default: <data dir>/policy.toml]
    #[arg(long, global = true, env = "SHOAL_POLICY")]
    pub policy: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://...` [default: <data dir>/shoal.db]
    #[arg(long, global = true, env = "SHOAL_DB")]
    pub db: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where a client command sends its requests.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Talk to this `shoal server` instead of the embedded engine
    #[arg(long, global = true, env = "SHOAL_SERVER")]
    pub server: Option<String>,
    /// API token for --server
    #[arg(long, global = true, env = "SHOAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A profile of <data dir>/client.toml (server, token, project)
    #[arg(long, global = true, env = "SHOAL_PROFILE")]
    pub profile: Option<String>,
    /// Project on the server [default: the profile's, else `default`]
    #[arg(long, global = true, env = "SHOAL_PROJECT")]
    pub project: Option<String>,
}

impl RemoteArgs {
    /// A client when a server is selected; with `required`, the default profile counts
    /// too and having none is an error.
    pub fn client(&self, data: &DataDir, required: bool) -> anyhow::Result<Option<Client>> {
        if !required && self.server.is_none() && self.profile.is_none() {
            return Ok(None);
        }
        let profiles = Profiles::load(&profile::path(data.root()))?;
        let picked = profiles
            .pick(self.profile.as_deref())?
            .cloned()
            .unwrap_or_default();
        let server = match self.server.clone() {
            Some(s) => s,
            None if !picked.server.is_empty() => picked.server.clone(),
            None => anyhow::bail!(
                "this command talks to a server: give --server URL (or $SHOAL_SERVER), or save one with `shoal login`"
            ),
        };
        let token = self.token.clone().or(picked.token);
        let project = self
            .project
            .clone()
            .or(picked.project)
            .unwrap_or_else(|| "default".into());
        Ok(Some(Client::new(&server, token, project)?))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage task-type plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Run single tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Check workflow definition files; every problem is printed with file, line and
    /// field. Exits 1 if any file has a problem.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a workflow file to its end on the embedded engine, with live progress; exits
    /// 0 when it succeeds, 1 when it fails.
    Run(workflow::RunArgs),
    /// List workflow instances, newest first.
    Instances {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Only this workflow's instances.
        #[arg(long)]
        workflow: Option<String>,
        /// Only instances in this state (repeatable): running, succeeded, failed, ...
        #[arg(long)]
        state: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Inspect one workflow instance.
    #[command(subcommand)]
    Instance(workflow::InstanceCommand),
    /// Print a task instance's log.
    Logs {
        task_instance: i64,
        /// Keep printing new lines until the task finishes (with --server).
        #[arg(long, short)]
        follow: bool,
    },
    /// Continue every instance left unfinished (after a crash), and resume instance ID if
    /// it is paused; waits until they settle.
    Resume {
        id: Option<i64>,
        #[command(flatten)]
        engine: workflow::EngineArgs,
    },
    /// Container occupancy and waiting tasks of the running engine.
    Status,
    #[command(flatten)]
    Operation(workflow::OperationCommand),
    /// Run the server: engine, scheduler and the HTTP API (/api/v1) in one process.
    Server(crate::server::config::ServerArgs),
    /// Run one master of a cluster on PostgreSQL: the server's API and scheduler, with
    /// tasks on `shoal worker` nodes (see the README's "Distributed mode").
    Master(crate::server::config::MasterArgs),
    /// Run one worker of a cluster on PostgreSQL: takes the tasks of its worker groups
    /// from the masters.
    Worker(crate::server::config::WorkerArgs),
    /// Run the cluster proxy: one API in front of many clusters (see the README's
    /// "Many clusters"); `shoal proxy seal-token` seals a cluster's token for its config.
    Proxy(crate::server::proxy::ProxyArgs),
    /// Serve MCP (Model Context Protocol) on stdin/stdout for an agent, acting on the
    /// server or proxy given by --server/--profile with its token.
    Mcp,
    /// The clusters behind a proxy: health with its reason, free slots, queue, latency.
    Clusters {
        #[arg(long)]
        json: bool,
    },
    /// The cluster's masters and workers: role, address, groups, slots, load,
    /// heartbeat age, generation.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// Save a client profile (server, token, project) after checking the token works.
    Login {
        /// Profile name [default: default]
        #[arg(long = "name", default_value = "default")]
        name: String,
    },
    /// Upload workflow files to the server's project (a new version when changed).
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also put them online (runnable and schedulable).
        #[arg(long)]
        online: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the project's workflow definitions on the server.
    Definitions {
        #[arg(long)]
        json: bool,
    },
    /// Put a workflow definition online or offline on the server.
    Release {
        workflow: String,
        #[arg(value_parser = ["online", "offline"])]
        state: String,
    },
    /// Queue runs of a workflow for past business dates on the server.
    Backfill {
        workflow: String,
        /// First date of a range (YYYY-MM-DD).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Last date of the range, included.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// A date to run (repeatable), instead of a range.
        #[arg(long = "date", conflicts_with_all = ["from", "to"])]
        dates: Vec<String>,
        /// How many dates run at once.
        #[arg(long, default_value_t = 1)]
        parallel: i64,
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Manage workflow schedules on the server.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Manage API tokens on the server.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Manage users on the server (admins).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage projects on the server.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Import a DolphinScheduler export (JSON) into the project: its workflows, run
    /// modes and schedules (embedded, or with --server).
    Import(import::ImportArgs),
    /// Print a workflow definition as the file it was applied or imported from.
    Export(import::ExportArgs),
    /// Manage the project's datasources for SQL tasks (embedded, or with --server).
    #[command(subcommand)]
    Datasource(datasource::DatasourceCommand),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create or replace a workflow's schedule.
    Set {
        workflow: String,
        /// Quartz cron with seconds, e.g. `0 0 2 * * ?` or `*/5 * * * * ?`.
        #[arg(long)]
        cron: String,
        /// IANA time zone [default: UTC]
        #[arg(long)]
        timezone: Option<String>,
        /// RFC 3339 start of the window.
        #[arg(long)]
        start: Option<String>,
        /// RFC 3339 end of the window.
        #[arg(long)]
        end: Option<String>,
        /// What to do with fires missed while the server was down.
        #[arg(long, value_parser = ["skip", "run-once"])]
        missed: Option<String>,
        /// Save it offline.
        #[arg(long)]
        offline: bool,
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one workflow's schedule, or list the project's.
    Show {
        workflow: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Online {
        workflow: String,
    },
    Offline {
        workflow: String,
    },
    Delete {
        workflow: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token for a user (yourself, or anyone as an admin); printed once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: Option<String>,
        /// Lifetime: 30d, 12h, 45m, 90s.
        #[arg(long)]
        expires_in: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Your tokens.
    List {
        #[arg(long)]
        json: bool,
    },
    Revoke {
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    Create {
        name: String,
        #[arg(long, default_value = "user", value_parser = ["admin", "user"])]
        role: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Let a project run task types that start processes (Shell, ...): admins only.
    AllowProcess {
        name: String,
        /// Forbid them again instead.
        #[arg(long)]
        deny: bool,
    },
    /// Set the OS user a project's task processes run as (`--default`: the server's).
    Tenant {
        name: String,
        #[arg(required_unless_present = "default")]
        user: Option<String>,
        #[arg(long)]
        default: bool,
    },
    /// Give a user read, operate or edit on the project (--project).
    Grant {
        user: String,
        #[arg(value_parser = ["read", "operate", "edit"])]
        level: String,
    },
    Delete {
        name: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data = DataDir::resolve(cli.data_dir);
    let policy = cli.policy;
    let db = cli.db.as_deref();
    // What runs on this machine whatever --server says: the node roles, the tools that
    // work on files, and the engine's own status.
    let command = match cli.command {
        Command::Validate { files } => return validate::run(files, &data, policy.as_deref()).await,
        Command::Bench(cmd) => return crate::bench::run(cmd, &data, db).await,
        Command::Server(args) => {
            return crate::server::run(args, &data, policy.as_deref(), db).await;
        }
        Command::Master(args) => {
            return crate::server::run_node(
                args.server,
                Some(args.cluster),
                &data,
                policy.as_deref(),
                db,
            )
            .await;
        }
        Command::Worker(args) => {
            return crate::server::worker::run(args, &data, policy.as_deref(), db).await;
        }
        Command::Proxy(args) => return crate::server::proxy::run(args).await,
        Command::Status => return workflow::status(&data).await,
        Command::Task(cmd @ task::TaskCommand::Run { .. }) => {
            return task::run(cmd, &data, policy.as_deref()).await;
        }
        Command::Plugins(cmd @ plugins::PluginsCommand::New { .. }) => {
            return plugins::run(cmd, &data, policy.as_deref()).await;
        }
        Command::Login { name } => return login(&cli.remote, &data, &name).await,
        other => other,
    };
    // Everything else is dispatched once, below, on the backend chosen here: a server or
    // proxy when one is selected (or the command exists only there), else the embedded
    // store and engine.
    let client = cli.remote.client(&data, command.server_only())?;
    let project = cli.remote.project.as_deref().unwrap_or("default");
    let backend = match &client {
        Some(cl) => Backend::Remote(cl),
        None => Backend::Embedded {
            data: &data,
            db,
            project,
        },
    };
    dispatch(&command, &backend, policy.as_deref()).await
}

impl Command {
    /// Commands that exist only against a server or proxy.
    fn server_only(&self) -> bool {
        matches!(
            self,
            Command::Login { .. }
                | Command::Apply { .. }
                | Command::Definitions { .. }
                | Command::Release { .. }
                | Command::Backfill { .. }
                | Command::Schedule(_)
                | Command::Tokens(_)
                | Command::Users(_)
                | Command::Projects(_)
                | Command::Mcp
                | Command::Clusters { .. }
        )
    }
}

/// Every command that reads or changes workflows, on either backend: each command is
/// matched once, and where the backends differ the arm says how.
async fn dispatch(
    command: &Command,
    backend: &Backend<'_>,
    policy: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    use crate::client::commands::{self as c, Cell};
    use Backend::{Embedded, Remote};
    use reqwest::Method;
    use serde_json::json;
    let code = match command {
        Command::Import(args) => match backend {
            Remote(cl) => import::import(args, import::Target::Server(cl)).await?,
            Embedded { data, db, project } => {
                let target = import::Target::Embedded {
                    data,
                    db: *db,
                    policy,
                    project,
                };
                import::import(args, target).await?
            }
        },
        Command::Export(args) => match backend {
            Remote(cl) => import::export(args, import::Target::Server(cl)).await?,
            Embedded { data, db, project } => {
                let target = import::Target::Embedded {
                    data,
                    db: *db,
                    policy,
                    project,
                };
                import::export(args, target).await?
            }
        },
        Command::Datasource(cmd) => match backend {
            Remote(cl) => datasource::run(cmd, datasource::Target::Server(cl)).await?,
            Embedded { data, db, project } => {
                let target = datasource::Target::Embedded {
                    data,
                    db: *db,
                    project,
                };
                datasource::run(cmd, target).await?
            }
        },
        Command::Plugins(cmd) => match (backend, cmd) {
            (Remote(cl), plugins::PluginsCommand::List { json }) => {
                c::plugin_list(cl, *json).await?
            }
            (Remote(cl), plugins::PluginsCommand::Install { path }) => {
                c::plugin_install(cl, path, false).await?
            }
            (Remote(cl), plugins::PluginsCommand::Activate { id, version }) => {
                c::send_json(
                    cl,
                    Method::POST,
                    &format!("/plugins/{}/activate", crate::client::seg(id)),
                    json!({"version": version}),
                    &format!("plugin `{id}` {version} is active"),
                    false,
                )
                .await?
            }
            (Remote(cl), plugins::PluginsCommand::Rollback { id }) => {
                c::send_json(
                    cl,
                    Method::POST,
                    &format!("/plugins/{}/rollback", crate::client::seg(id)),
                    json!({}),
                    &format!("plugin `{id}` rolled back"),
                    false,
                )
                .await?
            }
            (Embedded { data, .. }, cmd) => plugins::run(cmd.clone(), data, policy).await?,
            (Remote(_), plugins::PluginsCommand::New { .. }) => {
                unreachable!("`plugins new` runs locally")
            }
        },
        Command::Task(task::TaskCommand::Jobs { limit, json }) => match backend {
            Remote(cl) => c::jobs(cl, *limit, *json).await?,
            Embedded { data, db, project } => task::jobs(data, *db, project, *limit, *json).await?,
        },
        Command::Task(cmd) => match (backend, cmd.action()) {
            (Remote(cl), Some((id, action, args))) => c::task_action(cl, id, &action, args).await?,
            (Embedded { data, db, .. }, Some((id, action, args))) => {
                task::act(id, &action, args, data, policy, *db).await?
            }
            (_, None) => unreachable!("`task run` runs locally"),
        },
        Command::Nodes { json } => match backend {
            Remote(cl) => crate::server::nodes::remote(cl, *json).await?,
            Embedded { data, db, .. } => crate::server::nodes::local(data, *db, *json).await?,
        },
        Command::Run(args) => match backend {
            Remote(cl) => {
                let start_tasks = if !args.start_from.is_empty() {
                    Some(json!({"mode": "with-downstream", "tasks": args.start_from}))
                } else if !args.only.is_empty() {
                    Some(json!({"mode": "only", "tasks": args.only}))
                } else {
                    None
                };
                c::run(
                    cl,
                    c::RunOptions {
                        target: args.file.display().to_string(),
                        params: workflow::parse_pairs(&args.params, "--param")?,
                        date: args.date.map(|d| d.format("%Y-%m-%d").to_string()),
                        start_tasks,
                        wait: !args.detach,
                        json: args.json,
                    },
                )
                .await?
            }
            Embedded { data, db, .. } => workflow::run(args.clone(), data, policy, *db).await?,
        },
        Command::Instances {
            limit,
            state,
            json,
            workflow,
        } => backend::instances(backend, workflow.as_deref(), state, *limit, *json).await?,
        Command::Instance(workflow::InstanceCommand::Show { id, json }) => {
            backend::show(backend, *id, *json).await?
        }
        Command::Instance(workflow::InstanceCommand::Watch { id, json }) => match backend {
            Remote(cl) => c::watch(cl, *id, *json).await?,
            Embedded { .. } => {
                anyhow::bail!(
                    "`shoal instance watch` follows a server's instance: give --server URL"
                )
            }
        },
        Command::Logs {
            task_instance,
            follow,
        } => match backend {
            Remote(cl) => c::logs(cl, *task_instance, *follow).await?,
            Embedded { data, db, .. } => workflow::logs(data, *db, *task_instance).await?,
        },
        Command::Resume { id, engine } => match backend {
            Remote(cl) => {
                let id = id.ok_or_else(|| {
                    anyhow::anyhow!("with --server, give the instance id to resume")
                })?;
                c::operate(cl, id, "resume", None).await?
            }
            Embedded { data, db, .. } => workflow::resume(*id, engine, data, policy, *db).await?,
        },
        Command::Operation(op) => match backend {
            Remote(cl) => {
                use workflow::OperationCommand as O;
                match op {
                    O::Stop { id } => c::operate(cl, *id, "stop", None).await?,
                    O::Pause { id } => c::operate(cl, *id, "pause", None).await?,
                    O::Rerun { id, .. } => c::operate(cl, *id, "rerun", None).await?,
                    O::Recover { id, .. } => c::operate(cl, *id, "recover", None).await?,
                    O::ForceSuccess { id, task } => {
                        c::operate(cl, *id, "force-success", Some(task)).await?
                    }
                    O::Kill { id, task } => c::operate(cl, *id, "kill", Some(task)).await?,
                }
            }
            Embedded { data, db, .. } => workflow::operate(op.clone(), data, policy, *db).await?,
        },
        Command::Apply {
            files,
            online,
            json,
        } => {
            let cl = backend.client()?;
            {
                for f in files {
                    c::apply(cl, f, *online, *json).await?;
                }
                ExitCode::SUCCESS
            }
        }
        Command::Definitions { json } => {
            let cl = backend.client()?;
            c::definitions(cl, *json).await?
        }
        Command::Release { workflow, state } => {
            let cl = backend.client()?;
            let p = crate::client::seg(&cl.project);
            {
                let path = format!(
                    "/projects/{p}/definitions/{}/{state}",
                    crate::client::seg(workflow)
                );
                c::send_json(
                    cl,
                    Method::POST,
                    &path,
                    json!({}),
                    &format!("workflow `{workflow}` is {state}"),
                    false,
                )
                .await?
            }
        }
        Command::Backfill {
            workflow,
            from,
            to,
            dates,
            parallel,
            params,
            json,
        } => {
            let cl = backend.client()?;
            {
                let params = workflow::parse_pairs(params, "--param")?;
                c::backfill(
                    cl,
                    workflow,
                    c::BackfillOptions {
                        from: from.clone(),
                        to: to.clone(),
                        dates: dates.clone(),
                        parallel: *parallel,
                        params,
                    },
                    *json,
                )
                .await?
            }
        }
        Command::Schedule(cmd) => {
            let cl = backend.client()?;
            match cmd {
                ScheduleCommand::Set {
                    workflow,
                    cron,
                    timezone,
                    start,
                    end,
                    missed,
                    offline,
                    params,
                    json,
                } => {
                    let o = c::ScheduleSet {
                        cron: cron.clone(),
                        timezone: timezone.clone(),
                        start: start.clone(),
                        end: end.clone(),
                        missed: missed.clone(),
                        offline: *offline,
                        params: workflow::parse_pairs(params, "--param")?,
                    };
                    c::schedule_set(cl, workflow, o, *json).await?
                }
                ScheduleCommand::Show { workflow, json } => {
                    c::schedule_show(cl, workflow.as_deref(), *json).await?
                }
                ScheduleCommand::Online { workflow } => {
                    c::schedule_switch(cl, workflow, "online").await?
                }
                ScheduleCommand::Offline { workflow } => {
                    c::schedule_switch(cl, workflow, "offline").await?
                }
                ScheduleCommand::Delete { workflow } => {
                    c::schedule_switch(cl, workflow, "delete").await?
                }
            }
        }
        Command::Tokens(cmd) => {
            let cl = backend.client()?;
            match cmd {
                TokensCommand::Create {
                    user,
                    name,
                    expires_in,
                    json,
                } => c::token_create(cl, user, name.clone(), expires_in.clone(), *json).await?,
                TokensCommand::List { json } => {
                    c::list(
                        cl,
                        "/tokens",
                        &[
                            ("id", Cell::Text("id")),
                            ("name", Cell::Text("name")),
                            ("expires", Cell::Time("expires_at")),
                            ("created", Cell::Time("created_at")),
                            ("revoked", Cell::Time("revoked_at")),
                        ],
                        *json,
                    )
                    .await?
                }
                TokensCommand::Revoke { id } => {
                    cl.delete(&format!("/tokens/{id}")).await?;
                    eprintln!("token {id} revoked");
                    ExitCode::SUCCESS
                }
            }
        }
        Command::Users(cmd) => {
            let cl = backend.client()?;
            match cmd {
                UsersCommand::Create { name, role } => {
                    c::send_json(
                        cl,
                        Method::POST,
                        "/users",
                        json!({"name": name, "role": role}),
                        &format!("user `{name}` created"),
                        false,
                    )
                    .await?
                }
                UsersCommand::List { json } => {
                    c::list(
                        cl,
                        "/users",
                        &[
                            ("id", Cell::Text("id")),
                            ("name", Cell::Text("name")),
                            ("role", Cell::Text("role")),
                            ("created", Cell::Time("created_at")),
                        ],
                        *json,
                    )
                    .await?
                }
            }
        }
        Command::Projects(cmd) => {
            let cl = backend.client()?;
            let p = crate::client::seg(&cl.project);
            match cmd {
                ProjectsCommand::Create { name, description } => {
                    c::send_json(
                        cl,
                        Method::POST,
                        "/projects",
                        json!({"name": name, "description": description}),
                        &format!("project `{name}` created"),
                        false,
                    )
                    .await?
                }
                ProjectsCommand::List { json } => {
                    c::list(
                        cl,
                        "/projects",
                        &[
                            ("name", Cell::Text("name")),
                            ("description", Cell::Text("description")),
                            ("created", Cell::Time("created_at")),
                        ],
                        *json,
                    )
                    .await?
                }
                ProjectsCommand::AllowProcess { name, deny } => {
                    let path = format!("/projects/{}/tenancy", crate::client::seg(name));
                    c::send_json(
                        cl,
                        Method::PATCH,
                        &path,
                        json!({"allow_process": !deny}),
                        &if *deny {
                            format!("project `{name}` may no longer run process task types")
                        } else {
                            format!("project `{name}` may run process task types")
                        },
                        false,
                    )
                    .await?
                }
                ProjectsCommand::Tenant {
                    name,
                    user,
                    default,
                } => {
                    let path = format!("/projects/{}/tenancy", crate::client::seg(name));
                    let tenant = if *default {
                        String::new()
                    } else {
                        user.clone().unwrap_or_default()
                    };
                    c::send_json(
                        cl,
                        Method::PATCH,
                        &path,
                        json!({"tenant": tenant}),
                        &format!(
                            "project `{name}` runs its processes as {}",
                            if tenant.is_empty() {
                                "the server's default tenant".to_owned()
                            } else {
                                format!("`{tenant}`")
                            }
                        ),
                        false,
                    )
                    .await?
                }
                ProjectsCommand::Grant { user, level } => {
                    let path = format!("/projects/{p}/permissions/{}", crate::client::seg(user));
                    cl.put(&path, &json!({"level": level})).await?;
                    eprintln!("`{user}` has {level} on project `{}`", cl.project);
                    ExitCode::SUCCESS
                }
                ProjectsCommand::Delete { name } => {
                    cl.delete(&format!("/projects/{}", crate::client::seg(name)))
                        .await?;
                    eprintln!("project `{name}` deleted");
                    ExitCode::SUCCESS
                }
            }
        }
        Command::Clusters { json } => {
            let cl = backend.client()?;
            c::clusters(cl, *json).await?
        }
        Command::Mcp => {
            let cl = backend.client()?;
            {
                let token = cl.token().ok_or_else(|| {
                    anyhow::anyhow!(
                        "shoal mcp acts with a token: give --token, $SHOAL_TOKEN or `shoal login`"
                    )
                })?;
                shoal_mcp::serve_stdio(cl.base(), token.to_owned()).await?;
                ExitCode::SUCCESS
            }
        }
        Command::Validate { .. }
        | Command::Bench(_)
        | Command::Server(_)
        | Command::Master(_)
        | Command::Worker(_)
        | Command::Proxy(_)
        | Command::Status
        | Command::Login { .. } => unreachable!("handled before the dispatch"),
    };
    Ok(code)
}

/// `shoal login`: check the token against the server, then save the profile.
async fn login(args: &RemoteArgs, data: &DataDir, name: &str) -> anyhow::Result<ExitCode> {
    let server = args
        .server
        .clone()
        .ok_or_else(|| anyhow::anyhow!("shoal login needs --server URL"))?;
    let token = args
        .token
        .clone()
        .ok_or_else(|| anyhow::anyhow!("shoal login needs --token TOKEN (or $SHOAL_TOKEN)"))?;
    let client = Client::new(&server, Some(token.clone()), String::new())?;
    client.get("/tokens").await?;
    let file = profile::path(data.root());
    let mut profiles = Profiles::load(&file)?;
    profiles.profiles.insert(
        name.to_owned(),
        Profile {
            server,
            token: Some(token),
            project: args.project.clone(),
        },
    );
    if profiles.default.is_none() || name == "default" {
        profiles.default = Some(name.to_owned());
    }
    profiles.save(&file)?;
    eprintln!("saved profile `{name}` in {}", file.display());
    Ok(ExitCode::SUCCESS)
}
