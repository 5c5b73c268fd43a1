//! Running programs through the host's `process` capability.
//!
//! WASI has no way to start a process, and a plugin must not escape its sandbox to do
//! so; instead the host runs the program for it, in the task's work dir, in a process
//! group of its own, with output streamed into the task log.

use std::time::Duration;

use crate::bindings::shoal::task::process as wit;

/// Why a process could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    /// The plugin has no `process` grant.
    CapabilityDenied(String),
    /// Bad options (empty argv, cwd outside the work dir).
    Invalid(String),
    /// The operating system refused (program not found, ...).
    Os(String),
}

impl std::fmt::Display for ProcessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CapabilityDenied(m) => write!(f, "capability denied: {m}"),
            Self::Invalid(m) => write!(f, "invalid process options: {m}"),
            Self::Os(m) => write!(f, "could not start process: {m}"),
        }
    }
}

impl std::error::Error for ProcessError {}

/// A program to run, built up like `std::process::Command`.
#[derive(Debug, Clone)]
pub struct Command {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    capture: wit::Capture,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            argv: vec![program.into()],
            env: Vec::new(),
            cwd: None,
            capture: wit::Capture::None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.argv.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Working directory relative to the task's work dir.
    pub fn current_dir(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Also hand every output line back in [`ExitStatus::captured`], up to `max_bytes`.
    pub fn capture_all(mut self, max_bytes: u32) -> Self {
        self.capture = wit::Capture::All(max_bytes);
        self
    }

    /// Hand back only the output lines that contain `needle`.
    pub fn capture_containing(mut self, needle: impl Into<String>) -> Self {
        self.capture = wit::Capture::Containing(needle.into());
        self
    }

    pub fn spawn(&self) -> Result<Child, ProcessError> {
        let options = wit::SpawnOptions {
            argv: self.argv.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            capture: self.capture.clone(),
        };
        wit::spawn(&options).map(Child).map_err(|e| match e {
            wit::Error::CapabilityDenied(m) => ProcessError::CapabilityDenied(m),
            wit::Error::Invalid(m) => ProcessError::Invalid(m),
            wit::Error::Os(m) => ProcessError::Os(m),
        })
    }

    /// Start the program and wait for it to exit.
    pub fn status(&self) -> Result<ExitStatus, ProcessError> {
        Ok(self.spawn()?.wait())
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub captured: Vec<String>,
    pub truncated: bool,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A running process. Dropping it kills its process group.
pub struct Child(wit::Child);

impl Child {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Wait at most `timeout`; `None` if the process is still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.0.wait(ms).map(|s| ExitStatus {
            code: s.code,
            signal: s.signal,
            captured: s.captured,
            truncated: s.truncated,
        })
    }

    /// Wait until the process exits. The task's deadline still applies: the host ends
    /// the task (and the process) when it passes.
    pub fn wait(&self) -> ExitStatus {
        loop {
            if let Some(status) = self.wait_timeout(Duration::from_secs(3600)) {
                return status;
            }
        }
    }

    /// Kill the process and everything it started.
    pub fn kill(&self) {
        self.0.kill();
    }
}
