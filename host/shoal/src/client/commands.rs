//! Each client command: build the request, print the answer as a table or JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use reqwest::Method;
use serde_json::{Value, json};
use shoal_api_types::clusters::{ClusterList, ProxyRun};
use shoal_api_types::definitions::LaunchView;

use shoal_api::routes::Saved;

use super::{Client, seg};

/// How a table column reads its cell from a JSON item.
pub enum Cell {
    /// A field as text.
    Text(&'static str),
    /// A field of ms since the epoch, as local time.
    Time(&'static str),
    /// Anything computed from the item.
    With(fn(&Value) -> String),
}

/// A table with one row per item of the JSON array `items`.
pub fn table(items: &Value, columns: &[(&str, Cell)]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_header(columns.iter().map(|(h, _)| *h).collect::<Vec<_>>());
    for item in items.as_array().map(Vec::as_slice).unwrap_or_default() {
        t.add_row(
            columns
                .iter()
                .map(|(_, cell)| match cell {
                    Cell::Text(k) => s(&item[*k]),
                    Cell::Time(k) => when(&item[*k]),
                    Cell::With(f) => f(item),
                })
                .collect::<Vec<_>>(),
        );
    }
    t.to_string()
}

fn flag(v: &Value, yes: &str, no: &str) -> String {
    if v.as_bool() == Some(true) { yes } else { no }.to_owned()
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ms since the epoch` as local time.
fn when(v: &Value) -> String {
    use chrono::TimeZone;
    v.as_i64()
        .and_then(|ms| chrono::Local.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Finished states of a workflow instance.
const FINISHED: [&str; 4] = ["succeeded", "failed", "stopped", "paused"];

pub use crate::cli::backend::exit_for;

/// Upload a workflow file (and the files it references with `$WORKFLOW{...}`, first)
/// to the client's project. `$FILE{}`, `$ENV{}` and `$WORKFLOW{}` are resolved here, on
/// the user's machine: the server refuses them. Returns (name, version).
pub async fn apply(
    c: &Client,
    file: &Path,
    online: bool,
    json_out: bool,
) -> anyhow::Result<(String, i64)> {
    let loaded =
        shoal_workflow::load_file(file).map_err(|problems| anyhow::anyhow!("{problems}"))?;
    for (ref_file, _) in loaded.referenced.values() {
        upload_file(c, ref_file, online, json_out).await?;
    }
    upload_file(c, file, online, json_out).await
}

/// Upload one file: as it is, or as its resolved JSON rendering when it holds references.
async fn upload_file(
    c: &Client,
    file: &Path,
    online: bool,
    json_out: bool,
) -> anyhow::Result<(String, i64)> {
    match shoal_workflow::render_resolved(file).map_err(|p| anyhow::anyhow!("{p}"))? {
        Some(json) => upload(c, &json, file, true, online, json_out).await,
        None => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let is_json = file.extension().is_some_and(|e| e == "json");
            upload(c, &text, file, is_json, online, json_out).await
        }
    }
}

async fn upload(
    c: &Client,
    text: &str,
    file: &Path,
    is_json: bool,
    online: bool,
    json_out: bool,
) -> anyhow::Result<(String, i64)> {
    let resp = c
        .send(
            c.request(
                Method::POST,
                &format!("/projects/{}/definitions", seg(&c.project)),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                if is_json {
                    "application/json"
                } else {
                    "application/yaml"
                },
            )
            .body(text.to_owned()),
        )
        .await
        .with_context(|| format!("applying {}", file.display()))?;
    let saved: Saved = resp.json().await?;
    let Saved { name, version, .. } = saved.clone();
    if online {
        c.post(
            &format!(
                "/projects/{}/definitions/{}/online",
                seg(&c.project),
                seg(&name)
            ),
            &json!({}),
        )
        .await?;
    }
    // Warnings go to stderr even with --json, so a script reading stdout still shows a
    // person what was not supported.
    for w in &saved.warnings {
        eprintln!("warning: {w}");
    }
    if json_out {
        print_json(&saved);
    } else {
        let what = if saved.created { "saved" } else { "unchanged" };
        eprintln!(
            "{}: workflow `{name}` version {version} {what}{}",
            file.display(),
            if online { ", online" } else { "" }
        );
    }
    Ok((name, version))
}

pub async fn definitions(c: &Client, json_out: bool) -> anyhow::Result<ExitCode> {
    let path = format!("/projects/{}/definitions", seg(&c.project));
    list(
        c,
        &path,
        &[
            ("workflow", Cell::Text("name")),
            ("version", Cell::Text("current_version")),
            (
                "release",
                Cell::With(|d| flag(&d["online"], "online", "offline")),
            ),
            ("run mode", Cell::Text("run_mode")),
            ("updated", Cell::Time("updated_at")),
        ],
        json_out,
    )
    .await
}

pub struct RunOptions {
    pub target: String,
    pub params: BTreeMap<String, String>,
    pub date: Option<String>,
    pub start_tasks: Option<Value>,
    pub wait: bool,
    pub json: bool,
}

/// Start a run of a stored workflow, or of a file (applied and put online first).
pub async fn run(c: &Client, o: RunOptions) -> anyhow::Result<ExitCode> {
    let path = Path::new(&o.target);
    let name = if path.is_file() {
        apply(c, path, true, false).await?.0
    } else {
        o.target.clone()
    };
    let mut body = json!({ "params": o.params });
    if let Some(d) = &o.date {
        body["business_date"] = json!(d);
    }
    if let Some(st) = o.start_tasks {
        body["start_tasks"] = st;
    }
    let launch: LaunchView = c
        .json(
            Method::POST,
            &format!(
                "/projects/{}/definitions/{}/runs",
                seg(&c.project),
                seg(&name)
            ),
            Some(&body),
        )
        .await?;
    // Behind a cluster proxy a run may be accepted before a cluster took it: wait for
    // its placement (the proxy keeps forwarding it).
    let launch = match (launch.instance, launch.run.clone()) {
        (None, Some(key)) if launch.outcome == "accepted" => {
            eprintln!("run of `{name}` accepted by the proxy as {key}; waiting for a cluster");
            placed(c, &key, launch).await?
        }
        _ => launch,
    };
    let Some(id) = launch.instance else {
        if o.json {
            print_json(&launch);
        } else {
            eprintln!(
                "run of `{name}` {}{}",
                launch.outcome,
                launch
                    .queued
                    .map(|q| format!(" (queue entry {q})"))
                    .unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let launch = serde_json::to_value(&launch)?;
    if !o.wait {
        if o.json {
            print_json(&launch);
        } else {
            println!("{id}");
            eprintln!("started instance {id} of `{name}`");
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("started instance {id} of `{name}`");
    watch(c, id, o.json).await
}

/// Wait until the proxy's run `key` is placed on a cluster (or refused).
async fn placed(c: &Client, key: &str, mut launch: LaunchView) -> anyhow::Result<LaunchView> {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let run: ProxyRun = c
            .json(Method::GET, &format!("/proxy-runs/{}", seg(key)), None)
            .await?;
        match run.state.as_str() {
            "placed" => {
                launch.outcome = "started".into();
                launch.instance = run.instance;
                launch.cluster = run.cluster;
                return Ok(launch);
            }
            "failed" => anyhow::bail!("the proxy could not start run {key}: {}", run.last_error),
            _ if std::time::Instant::now() > deadline => {
                anyhow::bail!(
                    "run {key} is still waiting for a cluster: {}",
                    run.last_error
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// The clusters behind a proxy, as its cluster manager last saw them.
pub async fn clusters(c: &Client, json_out: bool) -> anyhow::Result<ExitCode> {
    let list: ClusterList = c.json(Method::GET, "/clusters", None).await?;
    if json_out {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:<12} {:>11} {:>7} {:>8} {:>8}  {:<28} reason",
        "cluster", "health", "free/slots", "queued", "running", "latency", "url"
    );
    for v in &list.clusters {
        let st = v.status.clone().unwrap_or_default();
        println!(
            "{:<12} {:<12} {:>11} {:>7} {:>8} {:>8}  {:<28} {}",
            v.name,
            v.health.as_str(),
            format!("{}/{}", st.slots_free, st.slots),
            st.queued_runs,
            st.running_instances,
            v.latency_ms
                .map(|l| format!("{l} ms"))
                .unwrap_or_else(|| "-".into()),
            v.url,
            v.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Follow an instance until it finishes, printing each task change.
pub async fn watch(c: &Client, id: i64, json_out: bool) -> anyhow::Result<ExitCode> {
    let mut seen: BTreeMap<i64, String> = BTreeMap::new();
    loop {
        let d = c.get(&format!("/instances/{id}")).await?;
        if !json_out {
            for t in d["tasks"].as_array().cloned().unwrap_or_default() {
                let tid = t["id"].as_i64().unwrap_or_default();
                let state = s(&t["state"]);
                if seen.get(&tid) != Some(&state) {
                    eprintln!(
                        "  {:<24} {:<14} {}",
                        s(&t["task_name"]),
                        state,
                        s(&t["message"])
                    );
                    seen.insert(tid, state);
                }
            }
        }
        let state = s(&d["state"]);
        if FINISHED.contains(&state.as_str()) {
            if json_out {
                print_json(&d);
            } else {
                show_detail(&d);
            }
            return Ok(exit_for(&state));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn show_detail(d: &Value) {
    println!(
        "instance {} of `{}` (project {}, version {}): {}",
        s(&d["id"]),
        s(&d["name"]),
        s(&d["project"]),
        s(&d["version"]),
        s(&d["state"])
    );
    let columns = [
        ("task id", Cell::Text("id")),
        ("task", Cell::Text("task_name")),
        ("type", Cell::Text("task_type")),
        ("attempt", Cell::Text("attempt")),
        ("state", Cell::Text("state")),
        ("plugin", Cell::Text("plugin_version")),
        ("started", Cell::Time("started_at")),
        ("message", Cell::Text("message")),
    ];
    println!("{}", table(&d["tasks"], &columns));
}

/// Print an instance detail (the API's `InstanceDetail`, from either backend).
pub fn print_show(d: &Value, json_out: bool) {
    if json_out {
        print_json(d)
    } else {
        show_detail(d)
    }
}

/// Print a page of instances (the API's `InstancePage`, from either backend).
pub fn print_instances(page: &Value, json_out: bool) {
    if json_out {
        print_json(page);
    } else {
        let columns = [
            ("id", Cell::Text("id")),
            ("workflow", Cell::Text("name")),
            ("state", Cell::Text("state")),
            ("business time", Cell::Time("schedule_time")),
            ("started", Cell::Time("started_at")),
            ("ended", Cell::Time("ended_at")),
        ];
        println!("{}", table(&page["items"], &columns));
        eprintln!(
            "{} of {}{} shown",
            page["items"].as_array().map_or(0, Vec::len),
            s(&page["total"]),
            if page["total_capped"].as_bool() == Some(true) {
                "+"
            } else {
                ""
            }
        );
    }
}

pub async fn logs(c: &Client, task: i64, follow: bool) -> anyhow::Result<ExitCode> {
    use futures_util::StreamExt as _;
    use std::io::Write as _;
    let mut out = std::io::stdout();
    if !follow {
        // The server answers a bounded piece at a time; page through it.
        let mut offset = 0u64;
        loop {
            let resp = c
                .send(
                    c.request(Method::GET, &format!("/tasks/{task}/log"))
                        .query(&[("offset", offset)]),
                )
                .await?;
            let next = resp
                .headers()
                .get("x-log-next-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = resp.bytes().await.context("reading the log")?;
            out.write_all(&body)?;
            match next {
                Some(n) if n > offset => offset = n,
                _ => break,
            }
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut resp = c
        .send(
            c.request(Method::GET, &format!("/tasks/{task}/log"))
                .query(&[("follow", follow)]),
        )
        .await?
        .bytes_stream();
    while let Some(chunk) = resp.next().await {
        out.write_all(&chunk.context("reading the log stream")?)?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn operate(
    c: &Client,
    id: i64,
    op: &str,
    task: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let v = c
        .post(
            &format!("/instances/{id}/operations"),
            &json!({"op": op, "task": task}),
        )
        .await?;
    eprintln!("instance {id}: {op} accepted; now {}", s(&v["state"]));
    Ok(ExitCode::SUCCESS)
}

/// An action on a task's job (`shoal task savepoint|stop|action`).
pub async fn task_action(
    c: &Client,
    task_instance: i64,
    action: &str,
    args: Value,
) -> anyhow::Result<ExitCode> {
    let body = json!({"action": action, "args": args});
    let done: shoal_api::routes::ActionDone = c
        .json(
            Method::POST,
            &format!("/tasks/{task_instance}/actions"),
            Some(&body),
        )
        .await?;
    println!("{}: {}", done.action, done.message);
    Ok(ExitCode::SUCCESS)
}

/// The project's external jobs (`shoal task jobs`).
pub async fn jobs(c: &Client, limit: i64, json_out: bool) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/jobs?project={}&limit={limit}",
        crate::client::seg(&c.project)
    );
    let jobs: Vec<shoal_api::routes::Job> = c.json(Method::GET, &path, None).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(ExitCode::SUCCESS);
    }
    crate::cli::task::print_jobs(jobs.into_iter().map(|j| {
        (
            j.task_instance_id,
            j.workflow_instance_id,
            j.task_name,
            j.task_type,
            j.state,
            j.handle,
        )
    }));
    Ok(ExitCode::SUCCESS)
}

pub struct BackfillOptions {
    pub from: Option<String>,
    pub to: Option<String>,
    pub dates: Vec<String>,
    pub parallel: i64,
    pub params: BTreeMap<String, String>,
}

pub async fn backfill(
    c: &Client,
    name: &str,
    o: BackfillOptions,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let BackfillOptions {
        from,
        to,
        dates,
        parallel,
        params,
    } = o;
    let body =
        json!({"from": from, "to": to, "dates": dates, "parallelism": parallel, "params": params});
    let v = c
        .post(
            &format!(
                "/projects/{}/definitions/{}/backfill",
                seg(&c.project),
                seg(name)
            ),
            &body,
        )
        .await?;
    if json_out {
        print_json(&v);
    } else {
        let dates: Vec<String> = v["dates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(s)
            .collect();
        eprintln!(
            "queued {} run(s) of `{name}`, {parallel} at a time: {}",
            dates.len(),
            dates.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_schedule(v: &Value) {
    println!(
        "workflow `{}`: {} ({}) {}",
        s(&v["workflow"]),
        s(&v["cron"]),
        s(&v["timezone"]),
        if v["online"].as_bool() == Some(true) {
            "online"
        } else {
            "offline"
        }
    );
    println!(
        "missed fires: {}; last fire: {}; next fire: {}",
        s(&v["missed"]),
        when(&v["last_fire_at"]),
        when(&v["next_fire_at"])
    );
    for u in v["upcoming"].as_array().cloned().unwrap_or_default() {
        println!("  next: {}", s(&u));
    }
}

pub struct ScheduleSet {
    pub cron: String,
    pub timezone: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub missed: Option<String>,
    pub offline: bool,
    pub params: BTreeMap<String, String>,
}

pub async fn schedule_set(
    c: &Client,
    name: &str,
    o: ScheduleSet,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let body = json!({"cron": o.cron, "timezone": o.timezone, "start": o.start, "end": o.end, "missed": o.missed, "online": !o.offline, "params": o.params});
    let v = c
        .put(
            &format!(
                "/projects/{}/definitions/{}/schedule",
                seg(&c.project),
                seg(name)
            ),
            &body,
        )
        .await?;
    if json_out {
        print_json(&v)
    } else {
        print_schedule(&v)
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn schedule_show(
    c: &Client,
    name: Option<&str>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    match name {
        Some(n) => {
            let v = c
                .get(&format!(
                    "/projects/{}/definitions/{}/schedule",
                    seg(&c.project),
                    seg(n)
                ))
                .await?;
            if json_out {
                print_json(&v)
            } else {
                print_schedule(&v)
            }
        }
        None => {
            let path = format!("/projects/{}/schedules", seg(&c.project));
            list(
                c,
                &path,
                &[
                    ("workflow", Cell::Text("workflow")),
                    ("cron", Cell::Text("cron")),
                    ("zone", Cell::Text("timezone")),
                    (
                        "state",
                        Cell::With(|x| flag(&x["online"], "online", "offline")),
                    ),
                    ("next fire", Cell::Time("next_fire_at")),
                ],
                json_out,
            )
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn schedule_switch(c: &Client, name: &str, action: &str) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/projects/{}/definitions/{}/schedule",
        seg(&c.project),
        seg(name)
    );
    match action {
        "delete" => {
            c.delete(&path).await?;
        }
        other => {
            c.post(&format!("{path}/{other}"), &json!({})).await?;
        }
    }
    eprintln!("schedule of `{name}`: {action}");
    Ok(ExitCode::SUCCESS)
}

/// `30d`, `12h`, `45m`, `90s` or plain seconds.
pub fn parse_lifetime(text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num
        .parse()
        .with_context(|| format!("`{text}` is not a lifetime like 30d, 12h, 45m"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => bail!("`{text}`: unknown unit `{other}`; use s, m, h or d"),
    };
    Ok(n * mult)
}

pub async fn token_create(
    c: &Client,
    user: &str,
    name: Option<String>,
    expires: Option<String>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let expires_in_s = expires.as_deref().map(parse_lifetime).transpose()?;
    let v = c
        .post(
            &format!("/users/{}/tokens", seg(user)),
            &json!({"name": name, "expires_in_s": expires_in_s}),
        )
        .await?;
    if json_out {
        print_json(&v);
    } else {
        println!("{}", s(&v["token"]));
        eprintln!(
            "token {} for `{user}` (shown once){}",
            s(&v["id"]),
            v["expires_at"]
                .as_i64()
                .map(|_| format!(", expires {}", when(&v["expires_at"])))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// GET `path` (a JSON array) and print it as a table, or as JSON.
pub async fn list(
    c: &Client,
    path: &str,
    columns: &[(&str, Cell)],
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let v = c.get(path).await?;
    if json_out {
        print_json(&v);
    } else {
        println!("{}", table(&v, columns));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn send_json(
    c: &Client,
    method: Method,
    path: &str,
    body: Value,
    done: &str,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let v: Value = c.json(method, path, Some(&body)).await?;
    if json_out {
        print_json(&v)
    } else {
        eprintln!("{done}")
    }
    Ok(ExitCode::SUCCESS)
}

/// Upload a plugin directory (or its manifest) to the server.
pub async fn plugin_install(c: &Client, path: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let (manifest, file) = shoal_model::PluginManifest::load(path)?;
    let manifest_text = std::fs::read_to_string(&file)?;
    let wasm_path = file
        .parent()
        .unwrap_or(Path::new("."))
        .join(&manifest.component);
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let form = reqwest::multipart::Form::new()
        .text("manifest", manifest_text)
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm).file_name("component.wasm"),
        );
    let v: Value = c
        .send(c.request(Method::POST, "/plugins").multipart(form))
        .await?
        .json()
        .await?;
    if json_out {
        print_json(&v);
    } else {
        eprintln!(
            "plugin `{}` {} is active (sha256 {}){}",
            s(&v["id"]),
            s(&v["version"]),
            s(&v["sha256"]),
            v["previous"]
                .as_str()
                .map(|p| format!("; it replaced {p}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn plugin_list(c: &Client, json_out: bool) -> anyhow::Result<ExitCode> {
    list(
        c,
        "/plugins",
        &[
            ("plugin", Cell::Text("id")),
            ("version", Cell::Text("version")),
            ("active", Cell::With(|p| flag(&p["active"], "active", ""))),
            ("origin", Cell::Text("origin")),
            (
                "sha256",
                Cell::With(|p| {
                    p["sha256"]
                        .as_str()
                        .map(|h| h.chars().take(12).collect())
                        .unwrap_or_else(|| "-".into())
                }),
            ),
            (
                "capabilities",
                Cell::With(|p| {
                    p["capabilities"]
                        .as_array()
                        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                }),
            ),
        ],
        json_out,
    )
    .await
}
