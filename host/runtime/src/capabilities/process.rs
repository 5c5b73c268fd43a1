//! `shoal:task/process`: programs run by the host on a plugin's behalf.
//!
//! WASI cannot start processes, and a plugin must never escape its sandbox to do so.
//! Instead the host starts the program: from a clean environment (only the policy's
//! pass-through variables plus what the plugin sets), in the task's work dir, in a
//! process group of its own. Output is streamed line by line into the task log and,
//! when asked, captured for the plugin. Killing, the task's deadline, cancellation and
//! the end of the task all kill the whole group, so a script's own children die too.
//! Where and as whom the program runs is [`super::sandbox`]'s job: every spawn goes
//! through it.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_model::{Grant, LogLevel, LogStream, SandboxKind, SandboxPolicy, TaskLog};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;
use wasmtime::component::Resource;

use crate::bindings::process::{Capture, Error, ExitStatus, Host, HostChild, SpawnOptions};
use crate::capabilities::HostState;
use crate::capabilities::sandbox::{self, PidsCgroup, SANDBOX_WORK_DIR};
use crate::invoke::TaskEnv;

/// Configuration of the capability for one task.
pub struct ProcessCapability {
    granted: bool,
    plugin_id: String,
    work_dir: PathBuf,
    base_env: Vec<(String, String)>,
    log: TaskLog,
    sandbox: SandboxPolicy,
    tenant: Option<String>,
    /// Longest output line kept (the rest is cut), and the most output handed back.
    max_line: usize,
    max_capture: usize,
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
            sandbox: grant.sandbox.clone(),
            tenant: env.tenant.clone(),
            max_line: grant.limits.log_line_bytes,
            max_capture: grant.limits.capture_bytes,
        }
    }

    /// The working directory, relative to the work dir.
    fn resolve_cwd(&self, cwd: Option<&str>) -> Result<PathBuf, String> {
        let Some(rel) = cwd.filter(|c| !c.is_empty() && *c != ".") else {
            return Ok(PathBuf::new());
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
        Ok(rel_path.to_path_buf())
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
    /// Everything, up to this many bytes (the plugin's wish within the host's cap).
    All(usize),
    /// Lines containing the needle, up to this many bytes.
    Containing(String, usize),
}

impl CaptureRule {
    fn take(&self, captured: &Mutex<Captured>, line: &str) {
        let (keep, limit) = match self {
            Self::None => return,
            Self::All(max) => (true, *max),
            Self::Containing(needle, max) => (line.contains(needle.as_str()), *max),
        };
        if !keep {
            return;
        }
        let mut c = captured.lock().unwrap_or_else(|p| p.into_inner());
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
    cgroup: Option<PidsCgroup>,
    /// Started by bubblewrap, which exits with 128 + N when its child dies of signal N.
    sandboxed: bool,
}

impl ChildProcess {
    fn kill_group(&self) {
        // The child leads its own group (pgid == pid), so this reaches grandchildren;
        // the sandbox's PID namespace and the cgroup reach those that left the group.
        // SAFETY: killpg has no memory-safety preconditions.
        unsafe {
            libc::killpg(self.pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill_group();
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_and_remove();
        }
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Read the next line into `buf`, keeping at most `max` bytes of it and skipping the
/// rest: a process printing one endless line costs `max` bytes of memory, not the line.
/// Returns how many bytes were skipped, or None at the end of the stream.
async fn bounded_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut skipped = 0;
    let mut seen = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(seen.then_some(skipped));
        }
        seen = true;
        let (part, used, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        let keep = part.len().min(room);
        buf.extend_from_slice(&part[..keep]);
        skipped += part.len() - keep;
        reader.consume(used);
        if done {
            return Ok(Some(skipped));
        }
    }
}

fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    log: TaskLog,
    stream: LogStream,
    rule: CaptureRule,
    captured: Arc<Mutex<Captured>>,
    max_line: usize,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        let level = if stream == LogStream::ProcessErr {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        while let Ok(Some(skipped)) = bounded_line(&mut reader, &mut buf, max_line).await {
            let text = String::from_utf8_lossy(&buf);
            let line = text.trim_end_matches('\r');
            if skipped > 0 {
                log.write(
                    stream,
                    level,
                    &format!("{line} … [line cut: {skipped} more bytes]"),
                );
            } else {
                log.write(stream, level, line);
            }
            rule.take(&captured, line);
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
        let confined = match sandbox::confine(
            &cap.sandbox,
            cap.tenant.as_deref(),
            &cap.work_dir,
            &cwd,
            &options.argv,
        ) {
            Ok(c) => c,
            Err(message) => {
                cap.log.write(LogStream::Host, LogLevel::Error, &message);
                return Ok(Err(Error::Os(message)));
            }
        };
        let home = match cap.sandbox.kind {
            SandboxKind::Bubblewrap => PathBuf::from(SANDBOX_WORK_DIR),
            SandboxKind::None => cap.work_dir.clone(),
        };
        let mut command = confined.command;
        command
            .env_clear()
            .envs(cap.base_env.iter().map(|(k, v)| (k, v)))
            // The host's home is not the task's: inside the sandbox it does not exist.
            .env("HOME", &home)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                if let Some(cgroup) = &confined.cgroup {
                    cgroup.kill_and_remove();
                }
                return Ok(Err(Error::Os(format!("{program}: {err}"))));
            }
        };
        let pid = child.id().unwrap_or_default();
        cap.log.write(
            LogStream::Host,
            LogLevel::Info,
            &format!(
                "started `{}` (pid {pid}), {}",
                options.argv.join(" "),
                confined.note
            ),
        );
        let rule = match options.capture {
            Capture::None => CaptureRule::None,
            Capture::All(max) => CaptureRule::All((max as usize).min(cap.max_capture)),
            Capture::Containing(needle) => CaptureRule::Containing(needle, cap.max_capture),
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
                cap.max_line,
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
                cap.max_line,
            ));
        }
        let handle = self.table.push(ChildProcess {
            pid,
            child,
            readers,
            captured,
            exit: None,
            cgroup: confined.cgroup,
            sandboxed: cap.sandbox.kind == SandboxKind::Bubblewrap,
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
            proc.exit = Some(match (status.code(), status.signal()) {
                // Report what happened to the program, not to its sandbox.
                (Some(code), None) if proc.sandboxed && (129..=128 + 64).contains(&code) => {
                    (None, Some(code - 128))
                }
                other => other,
            });
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
