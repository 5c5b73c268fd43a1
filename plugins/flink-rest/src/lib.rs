//! Flink's REST API, shared by the `flink` and `flink-cdc` task types: choosing the
//! operator's cluster, uploading a jar once per digest, submitting it under a job id
//! chosen here, following the job by its handle, cancelling it, and savepoints.
//!
//! Never the `flink` CLI: DolphinScheduler scrapes job ids from its output and has left
//! jobs running after a stop and taken savepoints of the wrong job. Here a job is known
//! by an id this plugin chooses (`jobId` of `/jars/{id}/run`) and puts in its handle
//! *before* submitting: `start` returns the handle, the host stores it, and only the
//! first poll submits (see [`follow`]). Flink refuses a second job of an id it knows,
//! so two processes following one handle cannot both submit; every later call (poll,
//! cancel, savepoint) names the id.

use shoal_sdk::http::{HttpError, Request, Response};
use shoal_sdk::prelude::*;
use shoal_sdk::serde_json::{self, Value, json};

mod jar;
pub use jar::{JarRef, upload_jar};

/// How long one REST call may take to connect and to answer.
const CONNECT_MS: u64 = 10_000;
const READ_MS: u64 = 60_000;

/// What the host persists for a job: enough to find it again after any restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHandle {
    /// The operator's cluster name; its URL is looked up again on every call, so a
    /// cluster moved by the operator is followed at its new address.
    pub cluster: String,
    /// Flink's job id (32 hex digits), chosen before the job was submitted.
    pub job: String,
    /// `BATCH`: the task ends with the job; `STREAM`: it succeeds once the job runs.
    #[serde(default = "batch")]
    pub mode: String,
    /// The uploaded jar the job is submitted from (until it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jar: Option<String>,
    /// The savepoint the job starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_savepoint: Option<String>,
    /// Until when (ms since the epoch) the job may still be submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_by: Option<u64>,
    /// Where the last savepoint of this job went, if one was taken through Shoal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<String>,
    /// The job was stopped with that savepoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

fn batch() -> String {
    "BATCH".into()
}

impl JobHandle {
    pub fn parse(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text)
            .map_err(|e| Error::new(format!("not a Flink job handle ({e}): {text}")))
    }

    pub fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The savepoint a restart should resume from, when the task asks for the last one.
    pub fn last_savepoint(previous: Option<&str>) -> Option<String> {
        previous
            .and_then(|h| serde_json::from_str::<JobHandle>(h).ok())
            .and_then(|h| h.savepoint)
    }
}

/// One of the operator's Flink clusters, as this task's project may use it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub url: String,
}

impl Cluster {
    /// The cluster named `name`, or the operator's default. Only clusters the task's
    /// project may use are visible (`flink.cluster.NAME` settings).
    pub fn pick(name: Option<&str>) -> Result<Self, Error> {
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n.to_owned(),
            None => setting("flink.default-cluster").ok_or_else(|| {
                Error::new(
                    "the task names no Flink cluster (`flink_cluster`) and the operator set no `[flink] default-cluster`",
                )
            })?,
        };
        let url = setting(&format!("flink.cluster.{name}")).ok_or_else(|| {
            Error::new(format!(
                "no Flink cluster `{name}` for this task's project: the operator lists clusters as [flink.clusters.NAME] in the policy, each with the projects that may use it"
            ))
        })?;
        Ok(Self {
            name,
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The cluster a handle names.
    pub fn of(handle: &JobHandle) -> Result<Self, Error> {
        Self::pick(Some(&handle.cluster))
    }

    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, format!("{}{path}", self.url))
            .timeouts(Some(CONNECT_MS), Some(READ_MS))
            .header("accept", "application/json")
    }

    /// Send and read a JSON answer; a status outside 2xx becomes an error with Flink's
    /// own `errors` text.
    pub fn call(&self, request: Request) -> Result<(u16, Value), Error> {
        let what = format!("{} {}", request.method, request.url);
        let response = request.send().map_err(|e| self.transport(&what, e))?;
        let body = json_body(&response);
        if !(200..300).contains(&response.status) {
            return Err(Error::new(format!(
                "Flink cluster `{}` answered {what} with {}: {}",
                self.name,
                response.status,
                flink_errors(&body, &response)
            )));
        }
        Ok((response.status, body))
    }

    fn transport(&self, what: &str, e: HttpError) -> Error {
        Error::new(format!(
            "Flink cluster `{}` ({}) could not be reached for {what}: {e}",
            self.name, self.url
        ))
    }

    pub fn get(&self, path: &str) -> Result<Value, Error> {
        self.call(self.request("GET", path)).map(|(_, v)| v)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let request = self
            .request("POST", path)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.call(request).map(|(_, v)| v)
    }

    /// Submit jar `jar_id` as job `job_id`.
    pub fn run_jar(&self, jar_id: &str, run: &RunSpec) -> Result<(), Error> {
        let mut body = json!({
            "entryClass": run.entry_class,
            "programArgsList": run.args,
            "jobId": run.job_id,
            "allowNonRestoredState": run.allow_non_restored_state,
        });
        if let Some(p) = run.parallelism {
            body["parallelism"] = json!(p);
        }
        if let Some(s) = &run.savepoint_path {
            body["savepointPath"] = json!(s);
        }
        if let Some(name) = &run.job_name {
            body["flinkConfiguration"] = json!({"pipeline.name": name});
        }
        self.post(&format!("/jars/{jar_id}/run"), &body)?;
        Ok(())
    }

    /// The job as the cluster knows it now, or none when it does not know it. Read from
    /// `/jobs/overview`, which is current: `/jobs/{id}` is served from a cache that lags
    /// by up to `web.refresh-interval` (3 s).
    pub fn job(&self, job: &str) -> Result<Option<JobView>, Error> {
        let overview = self.get("/jobs/overview")?;
        let jobs = overview["jobs"].as_array().cloned().unwrap_or_default();
        Ok(jobs.iter().find(|j| j["jid"] == job).map(|j| JobView {
            state: j["state"].as_str().unwrap_or("UNKNOWN").to_owned(),
            name: j["name"].as_str().unwrap_or_default().to_owned(),
            tasks_running: j["tasks"]["running"].as_u64().unwrap_or(0),
            tasks_total: j["tasks"]["total"].as_u64().unwrap_or(0),
        }))
    }

    /// What made the job fail, as Flink reports it: the root exception's first line and
    /// the deepest cause (Flink wraps the job's own exception in its restart policy's).
    pub fn root_exception(&self, job: &str) -> String {
        let Ok(v) = self.get(&format!("/jobs/{job}/exceptions")) else {
            return "Flink did not say why".into();
        };
        let entry = &v["exceptionHistory"]["entries"][0];
        match entry["stacktrace"]
            .as_str()
            .or_else(|| v["root-exception"].as_str())
        {
            Some(trace) => cause_lines(trace),
            None => "Flink did not say why".into(),
        }
    }

    /// Cancel the job and wait (up to 30 s) until Flink says it is gone. A job that
    /// already ended, or that the cluster does not know, is not an error.
    pub fn cancel(&self, job: &str) -> Result<String, Error> {
        let what = format!("PATCH /jobs/{job}?mode=cancel");
        let response = self
            .request("PATCH", &format!("/jobs/{job}?mode=cancel"))
            .send()
            .map_err(|e| self.transport(&what, e))?;
        match response.status {
            200..=299 => {}
            404 => return Ok(format!("job {job} is not known to cluster `{}`", self.name)),
            409 => {}
            other => {
                return Err(Error::new(format!(
                    "Flink cluster `{}` answered {what} with {other}: {}",
                    self.name,
                    flink_errors(&json_body(&response), &response)
                )));
            }
        }
        for _ in 0..300 {
            match self.job(job)? {
                None => return Ok(format!("job {job} is gone")),
                Some(j) if is_final(&j.state) => return Ok(format!("job {job} is {}", j.state)),
                Some(_) => sleep_ms(100),
            }
        }
        Err(Error::new(format!(
            "job {job} was asked to cancel but is not gone after 30 s"
        )))
    }

    /// Trigger a savepoint (or, with `stop`, a stop with a savepoint) and wait until it
    /// is written; returns where.
    pub fn savepoint(
        &self,
        job: &str,
        target: Option<&str>,
        stop: bool,
        drain: bool,
    ) -> Result<String, Error> {
        let trigger = if stop {
            let mut body = json!({"drain": drain});
            if let Some(t) = target {
                body["targetDirectory"] = json!(t);
            }
            self.post(&format!("/jobs/{job}/stop"), &body)?
        } else {
            let mut body = json!({"cancel-job": false});
            if let Some(t) = target {
                body["target-directory"] = json!(t);
            }
            self.post(&format!("/jobs/{job}/savepoints"), &body)?
        };
        let request_id = trigger["request-id"].as_str().ok_or_else(|| {
            Error::new(format!(
                "Flink gave no request-id for the savepoint: {trigger}"
            ))
        })?;
        // The host's deadline for the action bounds this loop too.
        loop {
            let status = self.get(&format!("/jobs/{job}/savepoints/{request_id}"))?;
            if status["status"]["id"] == "COMPLETED" {
                let op = &status["operation"];
                if let Some(location) = op["location"].as_str() {
                    return Ok(location.to_owned());
                }
                let cause = op["failure-cause"]["stack-trace"]
                    .as_str()
                    .or_else(|| op["failure-cause"]["class"].as_str())
                    .unwrap_or("no reason given");
                return Err(Error::new(format!(
                    "the savepoint of job {job} failed: {}",
                    cause.lines().take(8).collect::<Vec<_>>().join("\n")
                )));
            }
            sleep_ms(200);
        }
    }
}

/// What `/jars/{id}/run` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub entry_class: String,
    pub args: Vec<String>,
    pub job_id: String,
    pub parallelism: Option<u64>,
    pub savepoint_path: Option<String>,
    pub allow_non_restored_state: bool,
    /// Flink's `pipeline.name`, for programs that do not name their job.
    pub job_name: Option<String>,
}

/// Flink's job states that do not change any more.
pub fn is_final(state: &str) -> bool {
    matches!(state, "FINISHED" | "FAILED" | "CANCELED" | "SUSPENDED")
}

/// How long after a task's start its job may still be submitted. The submission waits
/// for the handle to be stored; past this window a job Flink does not know is reported
/// as lost rather than submitted, since Flink forgets ended jobs after a while (an hour
/// by default) and submitting then could run a job a second time.
const SUBMIT_WINDOW_MS: u64 = 10 * 60 * 1000;

/// A fresh job id (32 hex digits, random): unique across every Shoal that shares the
/// cluster, so no task can mistake another's job for its own.
pub fn new_job_id() -> String {
    hex(&wasip2::random::random::get_random_bytes(16))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    let t = wasip2::clocks::wall_clock::now();
    t.seconds * 1000 + u64::from(t.nanoseconds / 1_000_000)
}

impl JobHandle {
    /// The handle of a job to submit: the host stores it before the first poll, which
    /// submits the job (see [`follow`]). So a job is never running without its handle
    /// being stored first.
    pub fn to_submit(cluster: &str, jar: &str, mode: &str, from: Option<String>) -> Self {
        Self {
            cluster: cluster.to_owned(),
            job: new_job_id(),
            mode: mode.to_owned(),
            jar: Some(jar.to_owned()),
            from_savepoint: from,
            submit_by: Some(now_ms() + SUBMIT_WINDOW_MS),
            savepoint: None,
            stopped: false,
        }
    }
}

/// Follow the job one step, submitting it first when the cluster does not know it yet
/// and the handle is still within its submission window. `spec` builds the submission
/// from the task's parameters (never stored: a pipeline's passwords are in them).
pub fn follow(
    cluster: &Cluster,
    handle: &JobHandle,
    spec: impl FnOnce() -> Result<RunSpec, Error>,
) -> Result<Poll, Error> {
    if cluster.job(&handle.job)?.is_some() {
        return poll_job(cluster, handle);
    }
    let (Some(jar), Some(by)) = (&handle.jar, handle.submit_by) else {
        return poll_job(cluster, handle);
    };
    if now_ms() > by {
        return Ok(Poll::Done(Done {
            succeeded: false,
            message: format!(
                "job {} was never submitted to cluster `{}`: its submission window passed while no Shoal process followed it",
                handle.job, cluster.name
            ),
        }));
    }
    let mut run = spec()?;
    run.job_id = handle.job.clone();
    run.savepoint_path = handle.from_savepoint.clone();
    match cluster.run_jar(jar, &run) {
        Ok(()) => {}
        // Another process following the same handle submitted it a moment ago.
        Err(e) if e.message().contains("DuplicateJobSubmission") => {}
        Err(e) => return Err(e),
    }
    log::info(format!(
        "submitted job {} ({}) to cluster `{}`{}",
        run.job_id,
        run.entry_class,
        cluster.name,
        run.savepoint_path
            .as_deref()
            .map(|s| format!(", starting from savepoint {s}"))
            .unwrap_or_default()
    ));
    // A stream job counts as started once every task runs, which takes Flink a few
    // hundred milliseconds: wait for that here rather than a whole poll interval.
    if handle.mode == "STREAM" {
        for _ in 0..STREAM_START_CHECKS {
            if cluster
                .job(&handle.job)?
                .is_some_and(|j| j.fully_running() || is_final(&j.state))
            {
                return poll_job(cluster, handle);
            }
            sleep_ms(50);
        }
    }
    Ok(Poll::Running(format!("job {} submitted", handle.job)))
}

/// How many times (50 ms apart) a submitting poll looks for a stream job to run.
const STREAM_START_CHECKS: u32 = 60;

/// The job as `/jobs/overview` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub state: String,
    pub name: String,
    pub tasks_running: u64,
    pub tasks_total: u64,
}

impl JobView {
    /// RUNNING with every task running: only then does a savepoint work, so only then
    /// does a stream task count as started.
    pub fn fully_running(&self) -> bool {
        self.state == "RUNNING" && self.tasks_total > 0 && self.tasks_running == self.tasks_total
    }
}

/// Follow a job one step. A `STREAM` job ends its task with success once it fully runs.
pub fn poll_job(cluster: &Cluster, handle: &JobHandle) -> Result<Poll, Error> {
    let Some(job) = cluster.job(&handle.job)? else {
        return Ok(Poll::Done(Done {
            succeeded: false,
            message: format!(
                "Flink cluster `{}` does not know job {} (the cluster was restarted without high availability, or the job expired from its history)",
                cluster.name, handle.job
            ),
        }));
    };
    let done = |succeeded: bool, message: String| Ok(Poll::Done(Done { succeeded, message }));
    let (id, name) = (&handle.job, &job.name);
    match job.state.as_str() {
        "FINISHED" if handle.stopped => done(
            true,
            format!(
                "job {id} ({name}) stopped with a savepoint at {}",
                handle.savepoint.as_deref().unwrap_or("?")
            ),
        ),
        "FINISHED" => done(true, format!("job {id} ({name}) finished")),
        "FAILED" => done(
            false,
            format!("job {id} ({name}) failed: {}", cluster.root_exception(id)),
        ),
        "CANCELED" => done(false, format!("job {id} ({name}) was cancelled")),
        "SUSPENDED" => done(false, format!("job {id} ({name}) was suspended")),
        _ if handle.mode == "STREAM" && job.fully_running() => done(
            true,
            format!(
                "job {id} ({name}) runs on cluster `{}`; it stays this task's job (`shoal task jobs`, `shoal task savepoint|stop`)",
                cluster.name
            ),
        ),
        other => Ok(Poll::Running(format!(
            "job {id} ({name}): {other}, {}/{} tasks running",
            job.tasks_running, job.tasks_total
        ))),
    }
}

/// The actions both Flink task types offer.
pub const ACTIONS: &[Action] = &[
    Action {
        name: "savepoint",
        description: "take a savepoint of the running job (arg: target-directory)",
    },
    Action {
        name: "stop-with-savepoint",
        description: "stop the job with a savepoint, which a restart can resume from (args: target-directory, drain)",
    },
];

/// Cancel the job behind `handle` (both task types' `cancel`).
pub fn cancel(handle: &str) -> Result<(), Error> {
    let h = JobHandle::parse(handle)?;
    let cluster = Cluster::of(&h)?;
    log::info(cluster.cancel(&h.job)?);
    Ok(())
}

/// Carry out a savepoint action on the job behind `handle`.
pub fn act(handle: &str, action: &str, args: &Value) -> Result<ActionDone, Error> {
    let mut h = JobHandle::parse(handle)?;
    let cluster = Cluster::of(&h)?;
    let setting_dir = setting("flink.savepoint-dir");
    let target = args["target-directory"]
        .as_str()
        .map(str::to_owned)
        .or(setting_dir);
    let drain = args["drain"] == true || args["drain"] == "true";
    match action {
        "savepoint" | "stop-with-savepoint" => {
            let stop = action == "stop-with-savepoint";
            let location = cluster.savepoint(&h.job, target.as_deref(), stop, drain)?;
            h.savepoint = Some(location.clone());
            h.stopped = stop;
            let done = ActionDone::new(if stop {
                format!("job {} stopped with a savepoint at {location}", h.job)
            } else {
                format!("savepoint of job {} at {location}", h.job)
            })
            .with_handle(h.text());
            Ok(if stop { done.ended_job() } else { done })
        }
        other => Err(Error::new(format!("no action `{other}` on a Flink job"))),
    }
}

fn json_body(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

/// Flink's `{"errors": [...]}`, shortened to what a person needs: each entry's first
/// line and its deepest cause (entries are whole Java stack traces).
fn flink_errors(body: &Value, response: &Response) -> String {
    match body["errors"].as_array() {
        Some(list) => list
            .iter()
            .map(|e| {
                cause_lines(
                    &e.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| e.to_string()),
                )
            })
            .filter(|e| e != "Internal server error.")
            .collect::<Vec<_>>()
            .join("; "),
        None => cause_lines(&response.text()),
    }
}

/// A Java stack trace's first line and its last `Caused by:` line.
pub fn cause_lines(trace: &str) -> String {
    let trace = trace
        .trim()
        .trim_start_matches("<Exception on server side:")
        .trim();
    let first = trace.lines().next().unwrap_or_default().trim();
    match trace
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Caused by:"))
    {
        Some(cause) if cause.trim() != first => format!("{first} ({})", cause.trim()),
        _ => first.to_owned(),
    }
}

/// Wait without a clock of our own: `wasi:clocks` sleeps the component.
pub fn sleep_ms(ms: u64) {
    let pollable = wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000);
    pollable.block();
}

/// Split `main_args` as a shell would split words: blanks separate, quotes group.
pub fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a ' quote is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err("a \" quote is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a \" quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_a_shell() {
        assert_eq!(
            split_args(r#"--mode endless --name 'a b' "c \"d\"" e\ f"#).unwrap(),
            ["--mode", "endless", "--name", "a b", "c \"d\"", "e f"]
        );
        assert!(split_args("'open").is_err());
        assert!(split_args("  ").unwrap().is_empty());
    }

    #[test]
    fn stack_traces_shrink_to_their_causes() {
        let trace = "<Exception on server side:\norg.x.RestHandlerException: Could not execute application.\n\tat a.b(C.java:1)\nCaused by: x.Y: outer\n\tat d\nCaused by: java.lang.RuntimeException: shoal test job failed on purpose\n\tat e\nEnd of exception on server side>";
        assert_eq!(
            cause_lines(trace),
            "org.x.RestHandlerException: Could not execute application. (Caused by: java.lang.RuntimeException: shoal test job failed on purpose)"
        );
        assert_eq!(cause_lines("just one line"), "just one line");
    }

    #[test]
    fn handles_round_trip_and_keep_the_savepoint() {
        let h = JobHandle {
            cluster: "main".into(),
            job: "ab".repeat(16),
            mode: "STREAM".into(),
            jar: Some("x_job.jar".into()),
            from_savepoint: None,
            submit_by: Some(1),
            savepoint: Some("file:///sp/savepoint-1".into()),
            stopped: true,
        };
        assert_eq!(JobHandle::parse(&h.text()).unwrap(), h);
        assert_eq!(
            JobHandle::last_savepoint(Some(&h.text())).as_deref(),
            Some("file:///sp/savepoint-1")
        );
        assert_eq!(JobHandle::last_savepoint(None), None);
        let old = JobHandle::parse(r#"{"cluster":"c","job":"j"}"#).unwrap();
        assert_eq!(old.mode, "BATCH");
    }
}
