//! `shoal:task/process`: programs run by the host on a plugin's behalf.
//!
//! WASI cannot start processes, and a plugin must never escape its sandbox to do so.
//! Instead the host starts the program: from a clean environment (only the policy's
//! pass-through variables plus what the plugin sets), in the task's work dir, in a
//! process group of its own. Output is streamed line by line into the task log and,
//! when asked, captured for the plugin. Killing, the task's deadline, cancellation and
//! the end of the task all kill the whole group, so a script's own children die too.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_model::{Grant, LogLevel, LogStream, TaskLog};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;
use wasmtime::component::Resource;

use crate::bindings::process::{Capture, Error, ExitStatus, Host, HostChild, SpawnOptions};
use crate::capabilities::HostState;
use crate::invoke::TaskEnv;

/// Configuration of the capability for one task.
pub struct ProcessCapability {
    granted: bool,
    plugin_id: String,
    work_dir: PathBuf,
    base_env: Vec<(String, String)>,
    log: TaskLog,
}

impl ProcessCapability {
    pub fn new(plugin_id: &str, grant: &Grant, env: &TaskEnv) -> Self {
        let base_env = grant
            .env_passthrough
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        Self {
            granted: grant.process,
            plugin_id: plugin_id.to_owned(),
            work_dir: env.work_dir.clone(),
            base_env,
            log: env.log.clone(),
        }
    }

    fn resolve_cwd(&self, cwd: Option<&str>) -> Result<PathBuf, String> {
        let Some(rel) = cwd.filter(|c| !c.is_empty() && *c != ".") else {
            return Ok(self.work_dir.clone());
        };
        let rel_path = Path::new(rel);
        let escapes = rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            return Err(format!(
                "cwd `{rel}` must be a relative path inside the work dir"
            ));
        }
        Ok(self.work_dir.join(rel_path))
    }
}

/// Output lines handed back to the plugin.
#[derive(Default)]
struct Captured {
    lines: Vec<String>,
    bytes: usize,
    truncated: bool,
}

#[derive(Clone)]
enum CaptureRule {
    None,
    All(usize),
    Containing(String),
}

impl CaptureRule {
    fn take(&self, captured: &Mutex<Captured>, line: &str) {
        let keep = match self {
            Self::None => return,
            Self::All(_) => true,
            Self::Containing(needle) => line.contains(needle.as_str()),
        };
        if !keep {
            return;
        }
        let mut c = captured.lock().unwrap_or_else(|p| p.into_inner());
        let limit = match self {
            Self::All(max) => *max,
            // Filtered capture is for a handful of marker lines; still bound it.
            _ => 1 << 20,
        };
        if c.bytes + line.len() > limit {
            c.truncated = true;
            return;
        }
        c.bytes += line.len();
        c.lines.push(line.to_owned());
    }
}

/// A child process owned by one task instance.
pub struct ChildProcess {
    pid: u32,
    child: tokio::process::Child,
    readers: Vec<JoinHandle<()>>,
    captured: Arc<Mutex<Captured>>,
    exit: Option<(Option<i32>, Option<i32>)>,
}

impl ChildProcess {
    fn kill_group(&self) {
        // The child leads its own group (pgid == pid), so this reaches grandchildren.
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(self.pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill_group();
        for r in &self.readers {
            r.abort();
        }
    }
}

fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    log: TaskLog,
    stream: LogStream,
    rule: CaptureRule,
    captured: Arc<Mutex<Captured>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']);
                    let level = if stream == LogStream::ProcessErr {
                        LogLevel::Warn
                    } else {
                        LogLevel::Info
                    };
                    log.write(stream, level, line);
                    rule.take(&captured, line);
                }
            }
        }
    })
}

/// How long to wait for output of an exited process to drain. Its own background
/// children may hold the pipes open; they are killed with the group when the task ends.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

impl Host for HostState {
    async fn spawn(
        &mut self,
        options: SpawnOptions,
    ) -> wasmtime::Result<Result<Resource<ChildProcess>, Error>> {
        let cap = &self.process;
        if !cap.granted {
            let message = format!(
                "plugin `{}` has no `process` grant (its manifest must request `process = true` and the operator policy must allow it)",
                cap.plugin_id
            );
            cap.log.write(
                LogStream::Host,
                LogLevel::Error,
                &format!("capability denied: {message}"),
            );
            return Ok(Err(Error::CapabilityDenied(message)));
        }
        let Some(program) = options.argv.first() else {
            return Ok(Err(Error::Invalid("argv is empty".into())));
        };
        let cwd = match cap.resolve_cwd(options.cwd.as_deref()) {
            Ok(cwd) => cwd,
            Err(message) => return Ok(Err(Error::Invalid(message))),
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(&options.argv[1..])
            .env_clear()
            .envs(cap.base_env.iter().map(|(k, v)| (k, v)))
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => return Ok(Err(Error::Os(format!("{program}: {err}")))),
        };
        let pid = child.id().unwrap_or_default();
        cap.log.write(
            LogStream::Host,
            LogLevel::Info,
            &format!("started `{}` (pid {pid})", options.argv.join(" ")),
        );
        let rule = match options.capture {
            Capture::None => CaptureRule::None,
            Capture::All(max) => CaptureRule::All(max as usize),
            Capture::Containing(needle) => CaptureRule::Containing(needle),
        };
        let captured = Arc::new(Mutex::new(Captured::default()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(pump(
                out,
                cap.log.clone(),
                LogStream::ProcessOut,
                rule,
                captured.clone(),
            ));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(pump(
                err,
                cap.log.clone(),
                LogStream::ProcessErr,
                // Only standard output is captured: error messages often echo the
                // command that failed, markers included.
                CaptureRule::None,
                captured.clone(),
            ));
        }
        let handle = self.table.push(ChildProcess {
            pid,
            child,
            readers,
            captured,
            exit: None,
        })?;
        Ok(Ok(handle))
    }
}

impl HostChild for HostState {
    async fn id(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&child)?.pid)
    }

    async fn wait(
        &mut self,
        child: Resource<ChildProcess>,
        timeout_ms: u64,
    ) -> wasmtime::Result<Option<ExitStatus>> {
        let proc = self.table.get_mut(&child)?;
        if proc.exit.is_none() {
            let waited =
                tokio::time::timeout(Duration::from_millis(timeout_ms), proc.child.wait()).await;
            let status = match waited {
                Err(_) => return Ok(None),
                Ok(status) => status?,
            };
            use std::os::unix::process::ExitStatusExt;
            proc.exit = Some((status.code(), status.signal()));
            for reader in &mut proc.readers {
                let _ = tokio::time::timeout(DRAIN_GRACE, reader).await;
            }
        }
        let (code, signal) = proc.exit.unwrap_or_default();
        let captured =
            std::mem::take(&mut *proc.captured.lock().unwrap_or_else(|p| p.into_inner()));
        let note = match (code, signal) {
            (Some(c), _) => format!("process {} exited with code {c}", proc.pid),
            (None, Some(s)) => format!("process {} killed by signal {s}", proc.pid),
            _ => format!("process {} ended", proc.pid),
        };
        self.process
            .log
            .write(LogStream::Host, LogLevel::Info, &note);
        Ok(Some(ExitStatus {
            code,
            signal,
            captured: captured.lines,
            truncated: captured.truncated,
        }))
    }

    async fn kill(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<()> {
        self.table.get(&child)?.kill_group();
        Ok(())
    }

    async fn drop(&mut self, child: Resource<ChildProcess>) -> wasmtime::Result<()> {
        // Dropping kills the group (see `Drop for ChildProcess`).
        self.table.delete(child)?;
        Ok(())
    }
}
