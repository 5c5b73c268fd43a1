//! `testkit`: a task type that misbehaves on request, for the host's end-to-end tests.
//! It is never embedded in the `shoal` binary. Each test installs it with a manifest
//! that grants exactly what the test is about.

use shoal_sdk::prelude::*;

#[derive(Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Params {
    /// Spin forever in guest code.
    Loop,
    /// Allocate until something stops us.
    Bomb,
    /// Write to the component's own stdout and stderr.
    Print { text: String },
    /// Trap (Rust panic → wasm `unreachable`).
    Trap,
    /// Start a long-running child process, then spin forever.
    SpawnAndLoop { argv: Vec<String> },
    /// Run a program and report its exit code as an OUT param.
    Spawn { argv: Vec<String> },
    /// Read a file; its contents become the OUT param `content`.
    Read { path: String },
    /// Write a file.
    Write { path: String, content: String },
    /// GET a URL; status and body become OUT params.
    Http { url: String },
    /// Pretend to be an external job that finishes once `polls` polls have happened; the
    /// handle carries all state so any fresh instance can poll it.
    External { polls: u32 },
    /// As `external`, but first GET `url` once, when the job is submitted: a test's
    /// recorder counts submissions (a re-attached job must not submit again).
    ExternalNotify { polls: u32, url: String },
    /// Ask the workflow hook where workflow instance `instance` stands, as if it were a
    /// child of this task; its state becomes the OUT param `state`.
    ChildStatus { instance: u64 },
    /// Ask the workflow hook to stop workflow instance `instance`.
    StopChild { instance: u64 },
    /// Ask the workflow hook for the newest run of `workflow` in `project` (any business
    /// time); its state (or `none`) becomes the OUT param `state`.
    LastRun {
        project: Option<String>,
        workflow: String,
    },
}

pub struct Testkit;

impl TaskType for Testkit {
    type Params = Params;
    const NAME: &'static str = "testkit";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Misbehaves on request, for tests";
    const CAPABILITIES: &'static [&'static str] = &["process", "http", "work-dir"];

    fn start(ctx: &mut TaskContext, params: Params) -> Result<Start, Error> {
        match params {
            Params::Loop => spin(),
            Params::Bomb => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    log::debug(format!("holding {} MiB", hoard.len()));
                }
            }
            Params::Trap => panic!("testkit was asked to trap"),
            Params::Print { text } => {
                println!("{text} (stdout)");
                eprint!("{text} (stderr, no newline)");
                Ok(Start::success("printed"))
            }
            Params::SpawnAndLoop { argv } => {
                let child = process::Command::new(&argv[0]).args(&argv[1..]).spawn()?;
                log::info(format!("started pid {}", child.id()));
                std::mem::forget(child);
                spin()
            }
            Params::Spawn { argv } => {
                let status = process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .capture_all(4096)
                    .status()?;
                ctx.set_out_param("code", format!("{:?}", status.code));
                ctx.set_out_param("output", status.captured.join("\n"));
                Ok(Start::success("spawned"))
            }
            Params::Read { path } => {
                let content = std::fs::read_to_string(&path)
                    .map_err(|e| Error::new(format!("cannot read {path}: {e}")))?;
                ctx.set_out_param("content", content);
                Ok(Start::success("read"))
            }
            Params::Write { path, content } => {
                std::fs::write(&path, content)
                    .map_err(|e| Error::new(format!("cannot write {path}: {e}")))?;
                Ok(Start::success("written"))
            }
            Params::Http { url } => {
                let response = http::get(&url)?;
                ctx.set_out_param("status", response.status.to_string());
                ctx.set_out_param("body", response.text());
                Ok(Start::success("fetched"))
            }
            Params::External { polls } => Ok(Start::running(format!("job:{polls}"))),
            Params::ExternalNotify { polls, url } => {
                let response = http::get(&url)?;
                if response.status != 200 {
                    return Err(Error::new(format!("{url} answered {}", response.status)));
                }
                Ok(Start::running(format!("job:{polls}")))
            }
            Params::ChildStatus { instance } => {
                let status = workflow::child_status(instance).map_err(Error::new)?;
                ctx.set_out_param("state", status.state);
                Ok(Start::success("asked"))
            }
            Params::StopChild { instance } => {
                workflow::stop_child(instance).map_err(Error::new)?;
                Ok(Start::success("stopped"))
            }
            Params::LastRun {
                project,
                workflow: name,
            } => {
                let state = workflow::last_run(project.as_deref(), &name, None, 0, i64::MAX)
                    .map_err(Error::new)?;
                ctx.set_out_param("state", state.unwrap_or_else(|| "none".into()));
                Ok(Start::success("asked"))
            }
        }
    }

    fn poll(ctx: &mut TaskContext, _params: Params, handle: &str) -> Result<Poll, Error> {
        let polls = parse_handle(handle)?;
        // Progress lives in the work dir, not in the instance: every poll may run in a
        // fresh instance, or in another process after a restart.
        let marker = format!("{}/polls", ctx.work_dir);
        let count: u32 = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
            + 1;
        std::fs::write(&marker, count.to_string())?;
        if count >= polls {
            ctx.set_out_param("polls", count.to_string());
            Ok(Poll::Done(Done {
                succeeded: true,
                message: format!("finished after {count} polls"),
            }))
        } else {
            Ok(Poll::Running(format!("poll {count} of {polls}")))
        }
    }

    fn cancel(ctx: &mut TaskContext, _params: Params, handle: &str) -> Result<(), Error> {
        parse_handle(handle)?;
        std::fs::write(format!("{}/cancelled", ctx.work_dir), handle)?;
        Ok(())
    }
}

fn parse_handle(handle: &str) -> Result<u32, Error> {
    handle
        .strip_prefix("job:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::new(format!("unknown handle `{handle}`")))
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

export_task!(Testkit);
