//! The MCP tools: each one REST call (or two), described so an agent can pick it, with
//! a JSON schema from its argument type. Writes act only with `confirm: true`.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::{Api, Body, seg};

/// The MCP server: the API it calls and, for stdio, the token it acts with (over HTTP
/// each request brings its own).
#[derive(Clone)]
pub struct ShoalMcp {
    api: Arc<Api>,
    token: Option<String>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProjectArgs {
    /// Project name.
    pub project: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DefinitionArgs {
    /// Project name.
    pub project: String,
    /// Workflow (definition) name.
    pub workflow: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct YamlArgs {
    /// Project name.
    pub project: String,
    /// The workflow definition, as YAML (DolphinScheduler's pydolphinscheduler YAML:
    /// a `workflow:` block and `tasks:`).
    pub yaml: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ApplyArgs {
    /// Project name.
    pub project: String,
    /// The workflow definition, as YAML.
    pub yaml: String,
    /// Also put it online (runnable and schedulable).
    #[serde(default)]
    pub online: bool,
    /// Must be true to save; otherwise the answer is a preview.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct InstancesArgs {
    /// Project name (required unless the token is an admin's).
    #[serde(default)]
    pub project: Option<String>,
    /// Only this workflow's instances.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Comma-separated states: submitted, running, paused, succeeded, failed, stopped.
    #[serde(default)]
    pub state: Option<String>,
    /// Page size, 1-1000 (default 20).
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IdArgs {
    /// Workflow instance id (as listed).
    pub id: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunArgs {
    /// Project name.
    pub project: String,
    /// Workflow (definition) name; it must be online.
    pub workflow: String,
    /// Startup parameters, name to value; they override every other layer.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Business date YYYY-MM-DD (default today).
    #[serde(default)]
    pub business_date: Option<String>,
    /// Behind a cluster proxy: run on this cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Must be true to start the run; otherwise the answer is a preview.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BackfillArgs {
    /// Project name.
    pub project: String,
    /// Workflow (definition) name.
    pub workflow: String,
    /// First business date YYYY-MM-DD of a range (with `to`).
    #[serde(default)]
    pub from: Option<String>,
    /// Last business date of the range, included.
    #[serde(default)]
    pub to: Option<String>,
    /// Or an explicit list of business dates.
    #[serde(default)]
    pub dates: Vec<String>,
    /// How many dates run at once (default 1).
    #[serde(default)]
    pub parallelism: Option<i64>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Must be true to queue the runs; otherwise the answer is a preview.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct OperateArgs {
    /// Workflow instance id.
    pub id: i64,
    /// One of: stop, pause, resume, rerun, recover, force-success, kill.
    pub op: String,
    /// The task, for force-success and kill.
    #[serde(default)]
    pub task: Option<String>,
    /// Must be true to act; otherwise the answer is a preview.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TaskActionArgs {
    /// Task instance id (from show_instance's tasks).
    pub task_id: i64,
    /// The action: savepoint, stop-with-savepoint, cancel, or another the task type offers.
    pub action: String,
    /// The action's options, e.g. {"target-directory": "file:///savepoints"}.
    #[serde(default)]
    pub args: Option<serde_json::Value>,
    /// Must be true to act; otherwise the answer is a preview.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogArgs {
    /// Task instance id (from show_instance's tasks).
    pub task_id: i64,
    /// Read from this byte (a previous read's next_offset); default: the start, or the
    /// tail when `tail_bytes` is given.
    #[serde(default)]
    pub offset: Option<u64>,
    /// At most this many bytes (default 65536, at most 262144).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Read only the last this-many bytes of the log.
    #[serde(default)]
    pub tail_bytes: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScheduleArgs {
    /// Project name.
    pub project: String,
    /// Workflow (definition) name.
    pub workflow: String,
    /// Quartz cron with seconds, e.g. "0 0 2 * * ?" (02:00 daily).
    pub cron: String,
    /// IANA time zone the cron reads in (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Default true.
    #[serde(default)]
    pub online: Option<bool>,
    /// Must be true to save; otherwise the answer is a preview.
    #[serde(default)]
    pub confirm: bool,
}

type ToolResult = Result<CallToolResult, rmcp::ErrorData>;

fn ok(text: String) -> ToolResult {
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

fn refused(text: String) -> ToolResult {
    Ok(CallToolResult::error(vec![ContentBlock::text(text)]))
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn answer(r: Result<serde_json::Value, String>) -> ToolResult {
    match r {
        Ok(v) => ok(pretty(&v)),
        Err(e) => refused(e),
    }
}

fn preview(what: String) -> ToolResult {
    refused(format!(
        "Not done: this changes things. Preview: {what}\nCall the tool again with \"confirm\": true to do it."
    ))
}

impl ShoalMcp {
    pub fn new(api: Arc<Api>, token: Option<String>) -> Self {
        Self {
            api,
            token,
            tool_router: Self::tool_router(),
        }
    }

    /// The caller's token: the HTTP request's bearer token, or stdio's own.
    fn token(&self, ctx: &RequestContext<RoleServer>) -> Result<String, String> {
        if let Some(parts) = ctx.extensions.get::<axum::http::request::Parts>()
            && let Some(t) = parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        {
            return Ok(t.trim().to_owned());
        }
        self.token
            .clone()
            .ok_or_else(|| "no API token: send `Authorization: Bearer TOKEN`".to_owned())
    }

    async fn get(
        &self,
        ctx: &RequestContext<RoleServer>,
        path: &str,
    ) -> Result<serde_json::Value, String> {
        let token = self.token(ctx)?;
        self.api.json(&token, Method::GET, path, Body::None).await
    }

    async fn send(
        &self,
        ctx: &RequestContext<RoleServer>,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<serde_json::Value, String> {
        let token = self.token(ctx)?;
        self.api.json(&token, method, path, body).await
    }
}

#[tool_router]
impl ShoalMcp {
    #[tool(
        description = "List the projects the token may see.",
        annotations(read_only_hint = true)
    )]
    async fn list_projects(
        &self,
        Parameters(_): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        answer(self.get(&ctx, "/projects").await)
    }

    #[tool(
        description = "List a project's workflow definitions: name, current version, online state, run mode.",
        annotations(read_only_hint = true)
    )]
    async fn list_definitions(
        &self,
        Parameters(a): Parameters<ProjectArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        answer(
            self.get(&ctx, &format!("/projects/{}/definitions", seg(&a.project)))
                .await,
        )
    }

    #[tool(
        description = "Show one workflow definition: its versions, plugin pins, tasks and the YAML it was saved from.",
        annotations(read_only_hint = true)
    )]
    async fn show_definition(
        &self,
        Parameters(a): Parameters<DefinitionArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let base = format!(
            "/projects/{}/definitions/{}",
            seg(&a.project),
            seg(&a.workflow)
        );
        let mut detail = match self.get(&ctx, &base).await {
            Ok(d) => d,
            Err(e) => return refused(e),
        };
        if let Some(v) = detail["current_version"].as_i64()
            && let Ok(version) = self.get(&ctx, &format!("{base}/versions/{v}")).await
        {
            detail["yaml"] = version["source"].clone();
        }
        ok(pretty(&detail))
    }

    #[tool(
        description = "Check a workflow definition (YAML) without saving it: every problem with its line and field, or the warnings it would be saved with.",
        annotations(read_only_hint = true)
    )]
    async fn validate_definition(
        &self,
        Parameters(a): Parameters<YamlArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let path = format!("/projects/{}/definitions?dry_run=true", seg(&a.project));
        match self
            .send(&ctx, Method::POST, &path, Body::Yaml(a.yaml))
            .await
        {
            Ok(v) => ok(format!("valid.\n{}", pretty(&v))),
            Err(e) => refused(format!("invalid: {e}")),
        }
    }

    #[tool(
        description = "Create or update a workflow definition from YAML (a new version when it changed), optionally putting it online. Needs confirm: true; without it, validates and previews."
    )]
    async fn apply_definition(
        &self,
        Parameters(a): Parameters<ApplyArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let base = format!("/projects/{}/definitions", seg(&a.project));
        if !a.confirm {
            return match self
                .send(
                    &ctx,
                    Method::POST,
                    &format!("{base}?dry_run=true"),
                    Body::Yaml(a.yaml),
                )
                .await
            {
                Ok(v) => preview(format!(
                    "would save workflow `{}` in project `{}`{}. Check result: {}",
                    v["name"].as_str().unwrap_or("?"),
                    a.project,
                    if a.online { " and put it online" } else { "" },
                    pretty(&v)
                )),
                Err(e) => refused(format!("invalid, nothing would be saved: {e}")),
            };
        }
        let saved = match self
            .send(&ctx, Method::POST, &base, Body::Yaml(a.yaml))
            .await
        {
            Ok(v) => v,
            Err(e) => return refused(e),
        };
        if a.online {
            let name = saved["name"].as_str().unwrap_or_default();
            if let Err(e) = self
                .send(
                    &ctx,
                    Method::POST,
                    &format!("{base}/{}/online", seg(name)),
                    Body::None,
                )
                .await
            {
                return refused(format!(
                    "saved ({}) but not put online: {e}",
                    pretty(&saved)
                ));
            }
        }
        ok(pretty(&saved))
    }

    #[tool(
        description = "List workflow instances (runs), newest first, with filters and paging. Behind a cluster proxy each has its cluster.",
        annotations(read_only_hint = true)
    )]
    async fn list_instances(
        &self,
        Parameters(a): Parameters<InstancesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let mut q = vec![format!("limit={}", a.limit.unwrap_or(20).clamp(1, 1000))];
        if let Some(o) = a.offset {
            q.push(format!("offset={o}"));
        }
        for (k, v) in [
            ("project", &a.project),
            ("workflow", &a.workflow),
            ("state", &a.state),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", seg(v)));
            }
        }
        answer(self.get(&ctx, &format!("/instances?{}", q.join("&"))).await)
    }

    #[tool(
        description = "Show one workflow instance: state, times, parameters, and every task attempt (ids for read_task_log and task_action).",
        annotations(read_only_hint = true)
    )]
    async fn show_instance(
        &self,
        Parameters(a): Parameters<IdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        answer(self.get(&ctx, &format!("/instances/{}", a.id)).await)
    }

    #[tool(
        description = "Start a run of an online workflow with parameters. Needs confirm: true; without it, previews what would run."
    )]
    async fn start_run(
        &self,
        Parameters(a): Parameters<RunArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let base = format!(
            "/projects/{}/definitions/{}",
            seg(&a.project),
            seg(&a.workflow)
        );
        if !a.confirm {
            let d = match self.get(&ctx, &base).await {
                Ok(d) => d,
                Err(e) => return refused(format!("cannot run: {e}")),
            };
            let tasks: Vec<String> = d["spec"]["tasks"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            format!(
                                "{} ({})",
                                t["name"].as_str().unwrap_or("?"),
                                t["task_type"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return preview(format!(
                "would start workflow `{}` (version {}, {}) of project `{}` with params {} and business date {}{}; tasks: {}",
                a.workflow,
                d["current_version"],
                if d["online"] == true {
                    "online"
                } else {
                    "OFFLINE: the run would be refused"
                },
                a.project,
                serde_json::to_string(&a.params).unwrap_or_default(),
                a.business_date.as_deref().unwrap_or("today"),
                a.cluster
                    .as_deref()
                    .map(|c| format!(" on cluster {c}"))
                    .unwrap_or_default(),
                tasks.join(", ")
            ));
        }
        let mut body = serde_json::json!({"params": a.params});
        if let Some(d) = &a.business_date {
            body["business_date"] = serde_json::json!(d);
        }
        let path = match &a.cluster {
            Some(c) => format!("{base}/runs?cluster={}", seg(c)),
            None => format!("{base}/runs"),
        };
        answer(self.send(&ctx, Method::POST, &path, Body::Json(body)).await)
    }

    #[tool(
        description = "Queue runs of a workflow for past business dates (a range or a list). Needs confirm: true; without it, previews the dates."
    )]
    async fn backfill(
        &self,
        Parameters(a): Parameters<BackfillArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        if !a.confirm {
            let dates = if a.dates.is_empty() {
                format!(
                    "every date from {} to {}",
                    a.from.as_deref().unwrap_or("?"),
                    a.to.as_deref().unwrap_or("?")
                )
            } else {
                a.dates.join(", ")
            };
            return preview(format!(
                "would queue runs of `{}` in project `{}` for {dates}, {} at a time, params {}",
                a.workflow,
                a.project,
                a.parallelism.unwrap_or(1),
                serde_json::to_string(&a.params).unwrap_or_default()
            ));
        }
        let body = serde_json::json!({
            "from": a.from, "to": a.to, "dates": a.dates,
            "parallelism": a.parallelism, "params": a.params,
        });
        let path = format!(
            "/projects/{}/definitions/{}/backfill",
            seg(&a.project),
            seg(&a.workflow)
        );
        answer(self.send(&ctx, Method::POST, &path, Body::Json(body)).await)
    }

    #[tool(
        description = "Operate on a workflow instance: stop, pause, resume, rerun, recover (rerun failed tasks), or force-success / kill one task. Needs confirm: true; without it, previews."
    )]
    async fn operate_instance(
        &self,
        Parameters(a): Parameters<OperateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        const OPS: [&str; 7] = [
            "stop",
            "pause",
            "resume",
            "rerun",
            "recover",
            "force-success",
            "kill",
        ];
        if !OPS.contains(&a.op.as_str()) {
            return refused(format!("op: `{}` is not one of {}", a.op, OPS.join(", ")));
        }
        if !a.confirm {
            let d = match self.get(&ctx, &format!("/instances/{}", a.id)).await {
                Ok(d) => d,
                Err(e) => return refused(e),
            };
            return preview(format!(
                "would {}{} instance {} of `{}` (now {})",
                a.op,
                a.task
                    .as_deref()
                    .map(|t| format!(" task `{t}` of"))
                    .unwrap_or_default(),
                a.id,
                d["name"].as_str().unwrap_or("?"),
                d["state"].as_str().unwrap_or("?")
            ));
        }
        let body = serde_json::json!({"op": a.op, "task": a.task});
        answer(
            self.send(
                &ctx,
                Method::POST,
                &format!("/instances/{}/operations", a.id),
                Body::Json(body),
            )
            .await,
        )
    }

    #[tool(
        description = "Act on a task's external job (a Flink job): savepoint, stop-with-savepoint, cancel, or another action its task type offers. Needs confirm: true; without it, previews."
    )]
    async fn task_action(
        &self,
        Parameters(a): Parameters<TaskActionArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        if !a.confirm {
            return preview(format!(
                "would ask task instance {} for `{}` with {}",
                a.task_id,
                a.action,
                a.args.clone().unwrap_or_default()
            ));
        }
        let body = serde_json::json!({"action": a.action, "args": a.args.unwrap_or(serde_json::json!({}))});
        answer(
            self.send(
                &ctx,
                Method::POST,
                &format!("/tasks/{}/actions", a.task_id),
                Body::Json(body),
            )
            .await,
        )
    }

    #[tool(
        description = "Read a task instance's log: from a byte offset (paging with next_offset) or its last bytes (tail_bytes).",
        annotations(read_only_hint = true)
    )]
    async fn read_task_log(
        &self,
        Parameters(a): Parameters<LogArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        let token = match self.token(&ctx) {
            Ok(t) => t,
            Err(e) => return refused(e),
        };
        let limit = a
            .limit
            .unwrap_or(65536)
            .clamp(1, crate::api::MAX_ANSWER as u64);
        let mut offset = a.offset.unwrap_or(0);
        if let Some(tail) = a.tail_bytes {
            let end = self.log_end(&token, a.task_id).await;
            offset = end.saturating_sub(tail);
        }
        let path = format!("/tasks/{}/log?offset={offset}&limit={limit}", a.task_id);
        match self.api.call(&token, Method::GET, &path, Body::None).await {
            Ok((_, text, headers)) => {
                let next = headers
                    .get("x-log-next-offset")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?");
                ok(format!(
                    "--- task {} log, bytes {offset}..{next} ---\n{text}",
                    a.task_id
                ))
            }
            Err(e) => refused(e),
        }
    }

    #[tool(
        description = "List a project's schedules with their next fire times (behind a proxy: its global schedules).",
        annotations(read_only_hint = true)
    )]
    async fn list_schedules(
        &self,
        Parameters(a): Parameters<ProjectArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        answer(
            self.get(&ctx, &format!("/projects/{}/schedules", seg(&a.project)))
                .await,
        )
    }

    #[tool(
        description = "Create or replace a workflow's cron schedule (Quartz cron with seconds). Needs confirm: true; without it, previews."
    )]
    async fn set_schedule(
        &self,
        Parameters(a): Parameters<ScheduleArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        if !a.confirm {
            return preview(format!(
                "would schedule `{}` of project `{}` at `{}` ({}), {}, params {}",
                a.workflow,
                a.project,
                a.cron,
                a.timezone.as_deref().unwrap_or("UTC"),
                if a.online.unwrap_or(true) {
                    "online"
                } else {
                    "offline"
                },
                serde_json::to_string(&a.params).unwrap_or_default()
            ));
        }
        let body = serde_json::json!({"cron": a.cron, "timezone": a.timezone, "params": a.params, "online": a.online});
        let path = format!(
            "/projects/{}/definitions/{}/schedule",
            seg(&a.project),
            seg(&a.workflow)
        );
        answer(self.send(&ctx, Method::PUT, &path, Body::Json(body)).await)
    }

    #[tool(
        description = "Show the nodes (masters, workers; behind a proxy, every cluster's) with slots, load and heartbeat age.",
        annotations(read_only_hint = true)
    )]
    async fn show_nodes(
        &self,
        Parameters(_): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        answer(self.get(&ctx, "/nodes").await)
    }

    #[tool(
        description = "Behind a cluster proxy: the clusters with health (healthy, degraded, unreachable) and why, free slots, queue and latency.",
        annotations(read_only_hint = true)
    )]
    async fn show_clusters(
        &self,
        Parameters(_): Parameters<NoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult {
        answer(self.get(&ctx, "/clusters").await)
    }
}

impl ShoalMcp {
    /// Where a task's log ends now: read forward until the API says end of file.
    async fn log_end(&self, token: &str, task: i64) -> u64 {
        let mut offset = 0u64;
        for _ in 0..4096 {
            let path = format!(
                "/tasks/{task}/log?offset={offset}&limit={}",
                crate::api::MAX_ANSWER
            );
            let Ok((_, _, headers)) = self.api.call(token, Method::GET, &path, Body::None).await
            else {
                break;
            };
            let next = headers
                .get("x-log-next-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(offset);
            if next <= offset {
                break;
            }
            offset = next;
        }
        offset
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ShoalMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("shoal", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Shoal is a workflow scheduler (DolphinScheduler-compatible YAML). Find a workflow with list_projects and list_definitions, run it with start_run, follow it with show_instance, read a task's output with read_task_log. Tools that change something need \"confirm\": true; without it they only answer with a preview.",
            )
    }
}
