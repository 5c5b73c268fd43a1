//! A task's log: one file per task instance, written by the host on behalf of the
//! plugin (its `log` calls, its stdout/stderr, and the output of processes it starts).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The host itself (state changes, capability denials).
    Host,
    /// The plugin's `log.write` calls.
    Plugin,
    /// The component's own stdout / stderr.
    Stdout,
    Stderr,
    /// A process started through the `process` capability.
    ProcessOut,
    ProcessErr,
}

impl LogStream {
    fn tag(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Plugin => "plugin",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::ProcessOut => "out",
            Self::ProcessErr => "err",
        }
    }
}

type Echo = Box<dyn Fn(&str) + Send + Sync>;

struct Inner {
    file: Option<BufWriter<File>>,
    echo: Option<Echo>,
    lines: u64,
}

/// A cheap-to-clone handle to a task's log. Lines are flushed when the task ends
/// ([`TaskLog::flush`]) or every few lines, so a hot task does not pay a write per line.
#[derive(Clone)]
pub struct TaskLog {
    inner: Arc<Mutex<Inner>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for TaskLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLog").field("path", &self.path).finish()
    }
}

impl TaskLog {
    /// A log written to `path` (created, with parent directories).
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::create(path)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                file: Some(BufWriter::new(file)),
                echo: None,
                lines: 0,
            })),
            path: Some(path.to_path_buf()),
        })
    }

    /// A log that keeps nothing (benchmarks).
    pub fn discard() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                file: None,
                echo: None,
                lines: 0,
            })),
            path: None,
        }
    }

    /// Also pass every formatted line to `echo` (e.g. to print it live).
    pub fn with_echo(self, echo: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.lock().echo = Some(Box::new(echo));
        self
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only a partially written line behind.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self, stream: LogStream, level: LogLevel, message: &str) {
        let stamp = humantime::format_rfc3339_millis(SystemTime::now());
        let level = match level {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO ",
            LogLevel::Warn => "WARN ",
            LogLevel::Error => "ERROR",
        };
        let mut inner = self.lock();
        for text in message.lines() {
            let line = format!("{stamp} {level} [{}] {text}", stream.tag());
            if let Some(echo) = &inner.echo {
                echo(&line);
            }
            if let Some(file) = &mut inner.file {
                // Logging must never fail a task; a full disk shows up in the host's own log.
                let _ = writeln!(file, "{line}");
            }
            inner.lines += 1;
        }
        if inner.lines.is_multiple_of(64)
            && let Some(file) = &mut inner.file
        {
            let _ = file.flush();
        }
    }

    pub fn info(&self, stream: LogStream, message: &str) {
        self.write(stream, LogLevel::Info, message);
    }

    pub fn flush(&self) {
        if let Some(file) = &mut self.lock().file {
            let _ = file.flush();
        }
    }

    /// Number of lines written so far.
    pub fn line_count(&self) -> u64 {
        self.lock().lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_tagged_lines_to_file_and_echo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/1.log");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let log = TaskLog::to_file(&path)
            .unwrap()
            .with_echo(move |l| sink.lock().unwrap().push(l.to_owned()));
        log.write(LogStream::ProcessOut, LogLevel::Info, "a\nb");
        log.write(LogStream::Plugin, LogLevel::Warn, "careful");
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().next().unwrap().ends_with("INFO  [out] a"));
        assert!(text.contains("WARN  [plugin] careful"));
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert_eq!(log.line_count(), 3);
    }
}
