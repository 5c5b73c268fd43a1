//! A task's log: one file per task instance, written by the host on behalf of the
//! plugin (its `log` calls, its stdout/stderr, and the output of processes it starts).
//!
//! Short tasks (logic tasks, quick calls) share append-only *segment* files instead
//! ([`TaskLog::to_segment`]), each line tagged with its task instance id. A segment takes
//! the short tasks of every run until it holds [`SEGMENT_BYTES`], then the next one
//! opens: creating a file costs more than a short task itself (on this project's ext4,
//! ~180 µs of kernel time per file, most of a one-task run's cost), so neither a task nor
//! a run gets a file of its own, and the cap keeps any one task's read bounded.
//! [`read_task_log`] gives one task's lines back either way, [`read_task_log_range`] a
//! bounded piece of them from a byte offset.
//!
//! A log is bounded ([`TaskLimits`]): a line longer than the cap is cut with a marker,
//! and past the byte budget the log says it was truncated and drops the rest, so a
//! process printing without end costs the host neither memory nor disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::limits::TaskLimits;

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

/// A file several task logs append to, open while any of them is (or, for the segment
/// taking new tasks, until the next one replaces it).
type SharedFile = Arc<Mutex<Shared>>;

struct Shared {
    out: BufWriter<File>,
    /// The file's length once everything written is flushed.
    bytes: u64,
}

impl Shared {
    fn open(path: &Path) -> std::io::Result<SharedFile> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let bytes = file.metadata()?.len();
        Ok(Arc::new(Mutex::new(Shared {
            out: BufWriter::new(file),
            bytes,
        })))
    }
}

/// The shared files currently open, by path.
type OpenShared = std::collections::HashMap<PathBuf, std::sync::Weak<Mutex<Shared>>>;
static SHARED: Mutex<Option<OpenShared>> = Mutex::new(None);

/// A segment stops taking new tasks once it holds this much; their lines already under
/// way still go to it. Bounds what a read of one task's log scans (about what one
/// 20,000-task run's short tasks write).
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// The segment taking new short tasks, by directory.
static SEGMENTS: Mutex<Option<std::collections::HashMap<PathBuf, (PathBuf, SharedFile)>>> =
    Mutex::new(None);

/// Segments this process opened so far: with the time and the process id, it names the
/// next one (two processes sharing a data dir never append to one segment, whose lines
/// are buffered and could interleave).
static SEGMENT_COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// File-name ending of a shared log; lines in it start with `#<task instance id> `.
pub const SHARED_LOG_SUFFIX: &str = ".short.log";

/// What a masked secret looks like in a log.
pub const REDACTED: &str = "******";

/// The shortest line of a multi-line secret that is masked on its own.
const MIN_SECRET_LINE: usize = 6;

struct Inner {
    file: Option<BufWriter<File>>,
    /// A shared file and the task instance id tagging this log's lines in it.
    shared: Option<(SharedFile, u64)>,
    echo: Option<Echo>,
    lines: u64,
    /// Secret values to mask in every line.
    redact: Vec<String>,
    max_line: usize,
    max_bytes: u64,
    /// Bytes written so far, and whether the budget ran out.
    bytes: u64,
    truncated: bool,
    /// Entries the plugin wrote through its `log` interface.
    plugin_entries: u64,
}

/// Host lines (state changes, the final verdict) may go this far past the budget, so a
/// truncated log still says how its task ended.
const HOST_ALLOWANCE: u64 = 1024 * 1024;

impl Inner {
    fn new(file: Option<BufWriter<File>>, shared: Option<(SharedFile, u64)>) -> Self {
        let limits = TaskLimits::default();
        Self {
            file,
            shared,
            echo: None,
            lines: 0,
            redact: Vec::new(),
            max_line: limits.log_line_bytes,
            max_bytes: limits.log_bytes,
            bytes: 0,
            truncated: false,
            plugin_entries: 0,
        }
    }

    fn emit(&mut self, line: &str) {
        if let Some(echo) = &self.echo {
            echo(line);
        }
        if let Some(file) = &mut self.file {
            // Logging must never fail a task; a full disk shows up in the host's own log.
            let _ = writeln!(file, "{line}");
        }
        if let Some((file, tag)) = &self.shared {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            if writeln!(file.out, "#{tag} {line}").is_ok() {
                // `#`, the tag's digits, a space, the line and its break.
                let digits = tag.checked_ilog10().map_or(1, |d| d + 1);
                file.bytes += u64::from(digits) + line.len() as u64 + 3;
            }
        }
        self.lines += 1;
        self.bytes += line.len() as u64 + 1;
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), with a marker saying
/// how much was left out.
pub fn cut_line(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} … [line cut: {} more bytes]",
        &text[..end],
        text.len() - end
    )
    .into()
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
            inner: Arc::new(Mutex::new(Inner::new(Some(BufWriter::new(file)), None))),
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
                    let file = Shared::open(path)?;
                    open.retain(|_, weak| weak.strong_count() > 0);
                    open.insert(path.to_path_buf(), Arc::downgrade(&file));
                    file
                }
            }
        };
        Ok(Self::shared_in(file, path, task_instance_id))
    }

    /// A short task's log in the segment of `dir` now taking new tasks (see the module
    /// docs); [`TaskLog::path`] names the segment, which the task's record keeps.
    pub fn to_segment(dir: &Path, task_instance_id: u64) -> std::io::Result<Self> {
        let mut segments = SEGMENTS.lock().unwrap_or_else(|p| p.into_inner());
        let segments = segments.get_or_insert_with(Default::default);
        // A segment someone removed (a clean-up of old logs) takes no more tasks either:
        // their lines would go to a file nobody can open.
        let open = segments.get(dir).filter(|(path, file)| {
            file.lock().unwrap_or_else(|p| p.into_inner()).bytes < SEGMENT_BYTES && path.exists()
        });
        if let Some((path, file)) = open {
            return Ok(Self::shared_in(file.clone(), path, task_instance_id));
        }
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let n = SEGMENT_COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(
            "{millis}-{}-{n}{SHARED_LOG_SUFFIX}",
            std::process::id()
        ));
        let file = Shared::open(&path)?;
        let log = Self::shared_in(file.clone(), &path, task_instance_id);
        // The one it replaces closes when its last task's log is dropped.
        segments.insert(dir.to_path_buf(), (path, file));
        Ok(log)
    }

    fn shared_in(file: SharedFile, path: &Path, task_instance_id: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::new(None, Some((file, task_instance_id))))),
            path: Some(path.to_path_buf()),
        }
    }

    /// A log that keeps nothing (benchmarks).
    pub fn discard() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::new(None, None))),
            path: None,
        }
    }

    /// Also pass every formatted line to `echo` (e.g. to print it live).
    /// Mask each of `values` (a task's secrets) wherever it appears in a line, before the
    /// line reaches the file or the echo.
    /// A secret spanning lines (a key file, JSON credentials) is also masked line by
    /// line, since output reaches the log a line at a time; lines too short to be
    /// telling (`{`, `}`) are left alone.
    pub fn with_redactions(self, values: impl IntoIterator<Item = String>) -> Self {
        {
            let mut inner = self.lock();
            for value in values.into_iter().filter(|v| !v.is_empty()) {
                if value.contains('\n') {
                    inner.redact.extend(
                        value
                            .lines()
                            .map(str::trim)
                            .filter(|l| l.len() >= MIN_SECRET_LINE)
                            .map(str::to_owned),
                    );
                }
                inner.redact.push(value);
            }
            inner.redact.dedup();
            // Longest first, so a secret containing another is masked whole.
            inner.redact.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
        self
    }

    /// Cap lines at `line_bytes` and the whole log at `total_bytes`.
    pub fn with_limits(self, line_bytes: usize, total_bytes: u64) -> Self {
        {
            let mut inner = self.lock();
            inner.max_line = line_bytes.max(64);
            inner.max_bytes = total_bytes;
        }
        self
    }

    /// Whether lines were dropped because the log reached its byte budget.
    pub fn truncated(&self) -> bool {
        self.lock().truncated
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
        // Masked whole first, so a secret spanning lines of this message goes as one.
        let mut message = std::borrow::Cow::Borrowed(message);
        for secret in &inner.redact {
            if message.contains(secret.as_str()) {
                message = message.replace(secret.as_str(), REDACTED).into();
            }
        }
        let budget = if stream == LogStream::Host {
            inner.max_bytes.saturating_add(HOST_ALLOWANCE)
        } else {
            inner.max_bytes
        };
        for text in message.lines() {
            if inner.bytes >= budget {
                if !inner.truncated {
                    inner.truncated = true;
                    let note = format!(
                        "{stamp} WARN  [host] log truncated: it reached {} bytes (task-limits.log-bytes); further output is dropped",
                        inner.max_bytes
                    );
                    inner.emit(&note);
                }
                continue;
            }
            let text = cut_line(text, inner.max_line);
            let mut line = format!("{stamp} {level} [{}] {text}", stream.tag());
            for secret in &inner.redact {
                if line.contains(secret.as_str()) {
                    line = line.replace(secret.as_str(), REDACTED);
                }
            }
            inner.emit(&line);
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
            let _ = file.lock().unwrap_or_else(|p| p.into_inner()).out.flush();
        }
    }

    /// `text` with this log's secrets masked: for what leaves a task beside its log (its
    /// message, its OUT parameters).
    pub fn redact(&self, text: &str) -> String {
        let inner = self.lock();
        let mut out = std::borrow::Cow::Borrowed(text);
        for secret in &inner.redact {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED).into();
            }
        }
        out.into_owned()
    }

    /// Count one entry of the plugin's own `log` calls; returns the count so far.
    pub fn count_plugin_entry(&self) -> u64 {
        let mut inner = self.lock();
        inner.plugin_entries += 1;
        inner.plugin_entries
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

/// A piece of one task's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub text: String,
    /// Where the next read continues: a byte offset in the log file.
    pub next_offset: u64,
    /// The read reached the end of the file (as it is now).
    pub eof: bool,
}

/// How far past `limit` a read of a shared log may scan for its task's lines before it
/// returns what it has (the caller continues from `next_offset`).
const SHARED_SCAN_FACTOR: u64 = 16;

/// At most `limit` bytes of one task's log, from byte `offset` of its file: whole lines
/// where they fit (a chunk ends at a line break unless one line alone fills it). Reads
/// only what it returns (a shared log: what it scans), never the whole file.
pub fn read_task_log_range(
    path: &Path,
    task_instance_id: u64,
    offset: u64,
    limit: usize,
) -> std::io::Result<LogChunk> {
    use std::io::{BufRead, Read, Seek, SeekFrom};
    let limit = limit.max(1);
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let offset = offset.min(len);
    file.seek(SeekFrom::Start(offset))?;
    let shared = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(SHARED_LOG_SUFFIX));
    if !shared {
        let mut buf = Vec::with_capacity(limit.min(1 << 20));
        (&mut file).take(limit as u64).read_to_end(&mut buf)?;
        let full = buf.len() == limit && offset + (buf.len() as u64) < len;
        if full && let Some(end) = buf.iter().rposition(|b| *b == b'\n') {
            buf.truncate(end + 1);
        }
        let next = offset + buf.len() as u64;
        return Ok(LogChunk {
            text: String::from_utf8_lossy(&buf).into_owned(),
            next_offset: next,
            eof: next >= len,
        });
    }
    let tag = format!("#{task_instance_id} ");
    let mut reader = std::io::BufReader::new(file);
    let mut text = String::new();
    let mut pos = offset;
    let scan_until = offset.saturating_add((limit as u64).saturating_mul(SHARED_SCAN_FACTOR));
    let mut line = Vec::new();
    while pos < len && pos < scan_until {
        line.clear();
        // Lines are the host's own, already cut to the line cap; bound the read anyway.
        let n = (&mut reader).take(1 << 20).read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // a line still being written: read it next time
        }
        let l = String::from_utf8_lossy(&line);
        if let Some(rest) = l.strip_prefix(&tag) {
            if !text.is_empty() && text.len() + rest.len() > limit {
                break;
            }
            text.push_str(rest);
        }
        pos += n as u64;
        if text.len() >= limit {
            break;
        }
    }
    Ok(LogChunk {
        text,
        next_offset: pos,
        eof: pos >= len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_the_log_stops_at_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let log = TaskLog::to_file(&path).unwrap().with_limits(100, 2000);
        log.info(LogStream::ProcessOut, &"x".repeat(10_000));
        for i in 0..1000 {
            log.info(LogStream::ProcessOut, &format!("line {i}"));
        }
        log.info(LogStream::Host, "task failed: the verdict still gets in");
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.contains("[line cut: 9900 more bytes]"), "{first}");
        assert!(first.len() < 200, "{first}");
        assert!(text.len() < 2000 + 400, "{}", text.len());
        assert!(text.contains("log truncated"), "{text}");
        assert_eq!(text.matches("log truncated").count(), 1);
        assert!(text.contains("the verdict still gets in"));
        assert!(log.truncated());
        // A multi-byte character is never split.
        assert!(cut_line(&"é".repeat(100), 11).starts_with(&"é".repeat(5)));
    }

    #[test]
    fn ranges_read_pieces_of_own_and_shared_logs() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("1-1.log");
        let log = TaskLog::to_file(&own).unwrap();
        for i in 0..100 {
            log.info(LogStream::ProcessOut, &format!("own line {i}"));
        }
        log.flush();
        let whole = std::fs::read_to_string(&own).unwrap();
        let (mut offset, mut joined) = (0, String::new());
        loop {
            let c = read_task_log_range(&own, 1, offset, 500).unwrap();
            assert!(c.text.len() <= 500 && (c.eof || c.text.ends_with('\n')));
            joined.push_str(&c.text);
            offset = c.next_offset;
            if c.eof {
                break;
            }
        }
        assert_eq!(joined, whole);

        let shared = dir.path().join(format!("9{SHARED_LOG_SUFFIX}"));
        let a = TaskLog::to_shared(&shared, 5).unwrap();
        let b = TaskLog::to_shared(&shared, 6).unwrap();
        for i in 0..50 {
            a.info(LogStream::Host, &format!("a {i}"));
            b.info(LogStream::Host, &format!("b {i}"));
        }
        a.flush();
        let (mut offset, mut joined) = (0, String::new());
        loop {
            let c = read_task_log_range(&shared, 5, offset, 300).unwrap();
            joined.push_str(&c.text);
            offset = c.next_offset;
            if c.eof {
                break;
            }
        }
        assert_eq!(joined, read_task_log(&shared, 5).unwrap());
        assert_eq!(joined.lines().count(), 50);
    }

    #[test]
    fn multi_line_secrets_are_masked_across_line_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----";
        let log = TaskLog::to_file(&path)
            .unwrap()
            .with_redactions([key.to_owned()]);
        log.info(LogStream::Plugin, &format!("the key: {key}"));
        // A process prints it a line at a time.
        for line in key.lines() {
            log.info(LogStream::ProcessOut, line);
        }
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "{text}");
        assert!(!text.contains("BEGIN KEY"), "{text}");
    }

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
    fn short_tasks_of_many_runs_share_a_segment_until_it_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let segments = dir.path().join("short");
        let a = TaskLog::to_segment(&segments, 11).unwrap();
        let b = TaskLog::to_segment(&segments, 12).unwrap();
        assert_eq!(a.path(), b.path(), "a second task joins the open segment");
        let first = a.path().unwrap().to_path_buf();
        assert!(first.to_str().unwrap().ends_with(SHARED_LOG_SUFFIX));
        // Fill the segment past its cap through one task's log.
        let filler = "x".repeat(4000);
        let a = a.with_limits(8192, u64::MAX);
        for _ in 0..(SEGMENT_BYTES / 4000 + 1) {
            a.info(LogStream::Plugin, &filler);
        }
        let c = TaskLog::to_segment(&segments, 13).unwrap();
        let second = c.path().unwrap().to_path_buf();
        assert_ne!(first, second, "a full segment takes no new task");
        // A task already in the old segment keeps writing there.
        b.info(LogStream::Host, "b ends");
        c.info(LogStream::Host, "c ends");
        for log in [&a, &b, &c] {
            log.flush();
        }
        assert_eq!(read_task_log(&first, 12).unwrap().lines().count(), 1);
        assert!(read_task_log(&first, 12).unwrap().contains("b ends"));
        assert_eq!(read_task_log(&second, 13).unwrap().lines().count(), 1);
        assert!(read_task_log(&second, 11).unwrap().is_empty());
        let written = std::fs::metadata(&first).unwrap().len();
        let counted = SEGMENTS.lock().unwrap().as_ref().unwrap()[&segments]
            .1
            .lock()
            .unwrap()
            .bytes;
        assert_eq!(
            std::fs::metadata(&second).unwrap().len(),
            counted,
            "the count of bytes written matches the file"
        );
        assert!(written > SEGMENT_BYTES);
        // Logs cleaned up under a running host: the next task opens a new segment.
        std::fs::remove_file(&second).unwrap();
        let d = TaskLog::to_segment(&segments, 14).unwrap();
        assert_ne!(d.path().unwrap(), second);
        assert!(d.path().unwrap().exists());
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
