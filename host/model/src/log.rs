//! A task's log: one file per task instance, written by the host on behalf of the
//! plugin (its `log` calls, its stdout/stderr, and the output of processes it starts).
//!
//! Short tasks of a workflow run (logic tasks, quick calls) share one append-only file per
//! workflow instance instead ([`TaskLog::to_shared`]), each line tagged with its task
//! instance id: creating a file per task costs more than the task itself when a run fans
//! out to thousands of them. [`read_task_log`] gives one task's lines back either way.

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

/// A file several task logs append to, open while any of them is.
type SharedFile = Arc<Mutex<BufWriter<File>>>;

/// The shared files currently open, by path.
type OpenShared = std::collections::HashMap<PathBuf, std::sync::Weak<Mutex<BufWriter<File>>>>;
static SHARED: Mutex<Option<OpenShared>> = Mutex::new(None);

/// File-name ending of a shared log; lines in it start with `#<task instance id> `.
pub const SHARED_LOG_SUFFIX: &str = ".short.log";

/// What a masked secret looks like in a log.
pub const REDACTED: &str = "******";

struct Inner {
    file: Option<BufWriter<File>>,
    /// A shared file and the task instance id tagging this log's lines in it.
    shared: Option<(SharedFile, u64)>,
    echo: Option<Echo>,
    lines: u64,
    /// Secret values to mask in every line.
    redact: Vec<String>,
}

/// A cheap-to-clone handle to a task's log. A task's own log file is flushed at every
/// write, so it can be followed live; the shared file of short tasks is flushed when
/// they end ([`TaskLog::flush`]), so a hot task does not pay a write per line.
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
                shared: None,
                echo: None,
                lines: 0,
                redact: Vec::new(),
            })),
            path: Some(path.to_path_buf()),
        })
    }

    /// A log whose lines go to the shared file `path` (whose name must end with
    /// [`SHARED_LOG_SUFFIX`]), tagged with `task_instance_id`.
    pub fn to_shared(path: &Path, task_instance_id: u64) -> std::io::Result<Self> {
        let file = {
            let mut open = SHARED.lock().unwrap_or_else(|p| p.into_inner());
            let open = open.get_or_insert_with(Default::default);
            match open.get(path).and_then(std::sync::Weak::upgrade) {
                Some(file) => file,
                None => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?;
                    let file = Arc::new(Mutex::new(BufWriter::new(file)));
                    open.retain(|_, weak| weak.strong_count() > 0);
                    open.insert(path.to_path_buf(), Arc::downgrade(&file));
                    file
                }
            }
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                file: None,
                shared: Some((file, task_instance_id)),
                echo: None,
                lines: 0,
                redact: Vec::new(),
            })),
            path: Some(path.to_path_buf()),
        })
    }

    /// A log that keeps nothing (benchmarks).
    pub fn discard() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                file: None,
                shared: None,
                echo: None,
                lines: 0,
                redact: Vec::new(),
            })),
            path: None,
        }
    }

    /// Also pass every formatted line to `echo` (e.g. to print it live).
    /// Mask each of `values` (a task's secrets) wherever it appears in a line, before the
    /// line reaches the file or the echo.
    pub fn with_redactions(self, values: impl IntoIterator<Item = String>) -> Self {
        {
            let mut inner = self.lock();
            inner
                .redact
                .extend(values.into_iter().filter(|v| !v.is_empty()));
            // Longest first, so a secret containing another is masked whole.
            inner.redact.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
        self
    }

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
            let mut line = format!("{stamp} {level} [{}] {text}", stream.tag());
            for secret in &inner.redact {
                if line.contains(secret.as_str()) {
                    line = line.replace(secret.as_str(), REDACTED);
                }
            }
            if let Some(echo) = &inner.echo {
                echo(&line);
            }
            if let Some(file) = &mut inner.file {
                // Logging must never fail a task; a full disk shows up in the host's own log.
                let _ = writeln!(file, "{line}");
            }
            if let Some((file, tag)) = &inner.shared {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(file, "#{tag} {line}");
            }
            inner.lines += 1;
        }
        // A file log belongs to a blocking or external-job task, whose lines come at the
        // pace of a process or a poll: flushing each write keeps `logs --follow` live at
        // a syscall per write. Short tasks share a file and flush when they end.
        if let Some(file) = &mut inner.file {
            let _ = file.flush();
        }
    }

    pub fn info(&self, stream: LogStream, message: &str) {
        self.write(stream, LogLevel::Info, message);
    }

    pub fn flush(&self) {
        let mut inner = self.lock();
        if let Some(file) = &mut inner.file {
            let _ = file.flush();
        }
        if let Some((file, _)) = &inner.shared {
            let _ = file.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }

    /// Number of lines written so far.
    pub fn line_count(&self) -> u64 {
        self.lock().lines
    }
}

/// One task's log text from `path`: the whole file, or, from a shared log, the lines
/// tagged with `task_instance_id` (tag removed).
pub fn read_task_log(path: &Path, task_instance_id: u64) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let shared = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(SHARED_LOG_SUFFIX));
    if !shared {
        return Ok(text);
    }
    let tag = format!("#{task_instance_id} ");
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix(&tag))
        .map(|l| format!("{l}\n"))
        .collect())
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

    #[test]
    fn shared_logs_interleave_and_read_back_per_task() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("7{SHARED_LOG_SUFFIX}"));
        let a = TaskLog::to_shared(&path, 1).unwrap();
        let b = TaskLog::to_shared(&path, 2).unwrap();
        a.info(LogStream::Host, "from a");
        b.info(LogStream::Host, "from b\nsecond line");
        a.info(LogStream::Plugin, "a again");
        a.flush();
        b.flush();
        let a_text = read_task_log(&path, 1).unwrap();
        let b_text = read_task_log(&path, 2).unwrap();
        assert_eq!(a_text.lines().count(), 2, "{a_text}");
        assert!(a_text.contains("[host] from a") && a_text.contains("[plugin] a again"));
        assert!(!a_text.contains("from b"));
        assert_eq!(b_text.lines().count(), 2, "{b_text}");
        assert!(!b_text.contains('#'), "tags are removed: {b_text}");
        // Both tasks wrote through one open file.
        let opened = SHARED.lock().unwrap().as_ref().unwrap().len();
        assert!(opened >= 1);
    }

    #[test]
    fn secrets_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let log = TaskLog::to_file(&path)
            .unwrap()
            .with_redactions(["hunter2".to_owned(), String::new()]);
        log.info(LogStream::Stdout, "password is hunter2, again hunter2");
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("password is ******, again ******"), "{text}");
    }
}
