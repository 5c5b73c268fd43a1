//! Log shipping: a node writes each attempt's log to its own disk and sends it, piece
//! by piece, along the same update stream as the attempt's other updates, so the owning
//! master stores it and any master's API can serve it while the attempt runs and after
//! this node is gone. The last pieces go out before the attempt's end, and the end of
//! the log is marked, so a log without that mark is known to be cut short.
//!
//! Workers ship every attempt's log; a master ships the logs of the logic tasks it runs
//! itself (another master, on another disk, serves them from the store). [`ShipLogs`]
//! puts a [`LogShipper`] in front of a node's sink of task updates.
//!
//! Short tasks write to their instance's shared log, one file for thousands of them,
//! each line tagged with its task. That file is read once for all of them, its lines
//! sorted to their attempts as it goes ([`SharedFile`]): read per attempt, a fan-out
//! would read each stretch of it once for every attempt running beside it.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_protocol::{BoxFuture, KeyedEvent, TaskEventSink, TaskKey, TaskUpdate};

/// How often a running attempt's new log lines are shipped.
pub const SHIP_EVERY: Duration = Duration::from_millis(500);
/// Most bytes of log in one update.
const PIECE: usize = 64 * 1024;
/// Most bytes of a shared log read in one go (the rest is read next time).
const SCAN: u64 = 16 << 20;
/// Log updates are numbered apart from the executor's own (which count from 1), so the
/// outbox acknowledges each by its own key and sequence.
const FIRST_SEQ: u32 = 1 << 31;

type Sender = Arc<dyn Fn(KeyedEvent) -> bool + Send + Sync>;

struct Shipping {
    path: PathBuf,
    /// Where the next piece starts (bytes of the log file).
    at: u64,
    seq: u32,
    host: String,
    /// In a shared log: its lines read but not shipped yet.
    text: String,
    shared: bool,
    send: Sender,
}

impl Shipping {
    fn piece(&mut self, key: TaskKey, next: u64, last: bool) -> KeyedEvent {
        self.seq += 1;
        let event = KeyedEvent {
            key,
            seq: self.seq,
            host: self.host.clone(),
            update: TaskUpdate::Log {
                offset: self.at,
                next_offset: next,
                text: std::mem::take(&mut self.text),
                last,
            },
        };
        self.at = next;
        event
    }
}

/// One shared log being read for the attempts whose lines are in it.
struct SharedFile {
    /// How far it has been read.
    at: u64,
    /// Its attempts, by task instance id (the tag of their lines).
    members: HashMap<u64, TaskKey>,
}

#[derive(Default)]
struct State {
    attempts: HashMap<TaskKey, Shipping>,
    shared: HashMap<PathBuf, SharedFile>,
}

/// The logs being shipped, by attempt. Cheap to clone.
#[derive(Clone)]
pub struct LogShipper {
    state: Arc<Mutex<State>>,
    /// True while the way to the masters is backed up: running attempts' rounds wait
    /// (their lines stay on disk, shipped once it clears); an attempt's end still
    /// ships the rest of its log, which its log budget bounds.
    backed_up: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl Default for LogShipper {
    fn default() -> Self {
        Self::new(|| false)
    }
}

impl LogShipper {
    pub fn new(backed_up: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self {
            state: Arc::default(),
            backed_up: Arc::new(backed_up),
        }
    }

    /// Start shipping `key`'s log at `path`; `send` queues one update for its master
    /// (and answers false when the attempt is no longer shipped).
    pub fn start(
        &self,
        key: TaskKey,
        path: PathBuf,
        host: String,
        send: impl Fn(KeyedEvent) -> bool + Send + Sync + 'static,
    ) {
        let shared = path
            .to_str()
            .is_some_and(|p| p.ends_with(shoal_model::log::SHARED_LOG_SUFFIX));
        let mut state = self.lock();
        let mut first_reader = false;
        let at = if shared {
            // Its lines come after what was there before it started.
            let file = state.shared.entry(path.clone()).or_insert_with(|| {
                first_reader = true;
                SharedFile {
                    at: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    members: HashMap::new(),
                }
            });
            file.members.insert(key.task_instance_id, key);
            file.at
        } else {
            0
        };
        state.attempts.insert(
            key,
            Shipping {
                path: path.clone(),
                at,
                seq: FIRST_SEQ,
                host,
                text: String::new(),
                shared,
                send: Arc::new(send),
            },
        );
        drop(state);
        let this = self.clone();
        if !shared {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SHIP_EVERY).await;
                    if (this.backed_up)() {
                        if !this.lock().attempts.contains_key(&key) {
                            return;
                        }
                        continue;
                    }
                    let Some((events, send)) = this.own_pieces(key, false) else {
                        return;
                    };
                    for event in events {
                        if !send(event) {
                            this.lock().attempts.remove(&key);
                            return;
                        }
                    }
                }
            });
        } else if first_reader {
            // One loop per shared file, while it has attempts.
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SHIP_EVERY).await;
                    if (this.backed_up)() {
                        if !this.lock().shared.contains_key(&path) {
                            return;
                        }
                        continue;
                    }
                    let Some(out) = this.shared_round(&path) else {
                        return;
                    };
                    for (key, events, send) in out {
                        for event in events {
                            if !send(event) {
                                this.forget(key);
                                break;
                            }
                        }
                    }
                }
            });
        }
    }

    /// The attempt ended: what is left of its log, the last piece marked as such (an
    /// empty one when nothing is left). It is shipped no more.
    pub fn finish(&self, key: TaskKey) -> Vec<KeyedEvent> {
        let shared = match self.lock().attempts.get(&key) {
            None => return Vec::new(),
            Some(s) => s.shared.then(|| s.path.clone()),
        };
        let events = match shared {
            None => self
                .own_pieces(key, true)
                .map(|(e, _)| e)
                .unwrap_or_default(),
            Some(path) => {
                let mut state = self.lock();
                // All of it, however far behind the reading is.
                let mut end = scan(&mut state, &path);
                loop {
                    let further = scan(&mut state, &path);
                    if further <= end {
                        break;
                    }
                    end = further;
                }
                let mut events = Vec::new();
                if let Some(s) = state.attempts.get_mut(&key) {
                    let next = end.max(s.at);
                    events.push(s.piece(key, next, true));
                }
                events
            }
        };
        self.forget(key);
        events
    }

    /// Forget every attempt (the node's lease was lost).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.attempts.clear();
        state.shared.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, key: TaskKey) {
        let mut state = self.lock();
        if let Some(s) = state.attempts.remove(&key)
            && s.shared
            && let Some(file) = state.shared.get_mut(&s.path)
        {
            file.members.remove(&key.task_instance_id);
            if file.members.is_empty() {
                state.shared.remove(&s.path);
            }
        }
    }

    /// The pieces of an attempt's own log not shipped yet (all of them with `to_end`);
    /// None when the attempt is not shipped (any more).
    fn own_pieces(&self, key: TaskKey, to_end: bool) -> Option<(Vec<KeyedEvent>, Sender)> {
        let mut state = self.lock();
        let shipping = state.attempts.get_mut(&key)?;
        let mut events = Vec::new();
        loop {
            let chunk = shoal_model::log::read_task_log_range(
                &shipping.path,
                key.task_instance_id,
                shipping.at,
                PIECE,
            )
            .ok();
            let (text, next, eof) = match chunk {
                Some(c) => (c.text, c.next_offset, c.eof),
                None => (String::new(), shipping.at, true),
            };
            let last = to_end && eof;
            let moved = next > shipping.at;
            if !text.is_empty() || last {
                shipping.text = text;
                events.push(shipping.piece(key, next, last));
            } else {
                shipping.at = next;
            }
            // A running attempt ships one piece per round; its end ships the rest.
            if eof || !to_end || !moved {
                break;
            }
        }
        Some((events, shipping.send.clone()))
    }

    /// A round of a shared log: read what is new, and ship what each attempt got.
    /// None once the file has no attempts left.
    #[allow(clippy::type_complexity)]
    fn shared_round(&self, path: &Path) -> Option<Vec<(TaskKey, Vec<KeyedEvent>, Sender)>> {
        let mut state = self.lock();
        let end = scan(&mut state, path);
        let State { attempts, shared } = &mut *state;
        let file = shared.get(path)?;
        let mut out = Vec::new();
        for key in file.members.values() {
            if let Some(s) = attempts.get_mut(key)
                && !s.text.is_empty()
            {
                let next = end.max(s.at);
                out.push((*key, vec![s.piece(*key, next, false)], s.send.clone()));
            }
        }
        Some(out)
    }
}

/// A sink of task updates that ships each attempt's log along with them: an attempt
/// that reports running with a log file starts being shipped, and its end is preceded by
/// the rest of its log. Every update, pieces included, goes on to `inner` in the order
/// it arose.
pub struct ShipLogs {
    inner: Arc<dyn TaskEventSink>,
    logs: LogShipper,
}

impl ShipLogs {
    pub fn new(inner: Arc<dyn TaskEventSink>, logs: LogShipper) -> Self {
        Self { inner, logs }
    }
}

/// Hand a piece on; its acknowledgement is awaited on the side. A sink takes an update
/// when called, which sets its order, and keeps it until stored (a worker's outbox sends
/// it until acknowledged); one that refuses a piece has stopped, and the stored log then
/// reads as cut short.
fn pass_on(inner: &Arc<dyn TaskEventSink>, piece: KeyedEvent) {
    let acked = inner.deliver(piece);
    tokio::spawn(async move {
        if let Err(e) = acked.await {
            tracing::debug!("a log piece was not taken: {e}");
        }
    });
}

impl TaskEventSink for ShipLogs {
    fn deliver(&self, event: KeyedEvent) -> BoxFuture<'static, Result<(), String>> {
        let key = event.key;
        if matches!(event.update, TaskUpdate::Ended { .. }) {
            // The rest of the log first: the master has all of it by the time it hears
            // the attempt ended.
            for piece in self.logs.finish(key) {
                pass_on(&self.inner, piece);
            }
        }
        let log_path = match &event.update {
            TaskUpdate::Running {
                log_path: Some(path),
                ..
            } => Some(PathBuf::from(path)),
            _ => None,
        };
        let host = event.host.clone();
        let acked = self.inner.deliver(event);
        if let Some(path) = log_path {
            let inner = self.inner.clone();
            self.logs.start(key, path, host, move |piece| {
                pass_on(&inner, piece);
                true
            });
        }
        acked
    }
}

/// Read a shared log's new complete lines (at most [`SCAN`] bytes) into its attempts'
/// pending text; an attempt whose text reaches [`PIECE`] gets it shipped at once.
/// Returns how far the file has been read.
fn scan(state: &mut State, path: &Path) -> u64 {
    let State { attempts, shared } = state;
    let Some(file) = shared.get_mut(path) else {
        return 0;
    };
    let Ok(f) = std::fs::File::open(path) else {
        return file.at;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= file.at {
        return file.at;
    }
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, f);
    if reader.seek(SeekFrom::Start(file.at)).is_err() {
        return file.at;
    }
    let until = file.at.saturating_add(SCAN).min(len);
    let mut line = Vec::new();
    while file.at < until {
        line.clear();
        // Lines are the host's own, already cut to the line cap; bound the read anyway.
        let n = match (&mut reader).take(1 << 20).read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 || line.last() != Some(&b'\n') {
            break; // a line still being written: read it next time
        }
        file.at += n as u64;
        let Some((id, rest)) = tagged(&line) else {
            continue;
        };
        let Some(s) = file.members.get(&id).and_then(|k| attempts.get_mut(k)) else {
            continue;
        };
        s.text.push_str(&String::from_utf8_lossy(rest));
        if s.text.len() >= PIECE {
            let key = *file.members.get(&id).expect("looked up above");
            let event = s.piece(key, file.at, false);
            (s.send)(event);
        }
    }
    file.at
}

/// `#<task instance id> <text>` → (id, text).
fn tagged(line: &[u8]) -> Option<(u64, &[u8])> {
    let rest = line.strip_prefix(b"#")?;
    let space = rest.iter().position(|b| *b == b' ')?;
    let id = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
    Some((id, &rest[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn key(id: u64) -> TaskKey {
        TaskKey {
            workflow_instance_id: 1,
            task_instance_id: id,
            attempt: 1,
        }
    }

    fn texts(events: &[KeyedEvent]) -> Vec<(u64, u64, String, bool)> {
        events
            .iter()
            .map(|e| match &e.update {
                TaskUpdate::Log {
                    offset,
                    next_offset,
                    text,
                    last,
                } => (*offset, *next_offset, text.clone(), *last),
                other => panic!("not a log piece: {other:?}"),
            })
            .collect()
    }

    /// Attempts sharing a log each get their own lines, read once for all, the last
    /// piece marked; lines before an attempt started and other tasks' lines are not
    /// theirs.
    #[tokio::test]
    async fn a_shared_log_is_sorted_to_its_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join(format!("1{}", shoal_model::log::SHARED_LOG_SUFFIX));
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "#7 before anyone started").unwrap();
        let logs = LogShipper::default();
        let sent = Arc::new(Mutex::new(Vec::new()));
        for id in [7, 8] {
            let sent = sent.clone();
            logs.start(key(id), path.clone(), "w1".into(), move |e| {
                sent.lock().unwrap().push(e);
                true
            });
        }
        let start = std::fs::metadata(&path).unwrap().len();
        writeln!(f, "#7 one").unwrap();
        writeln!(f, "#9 not shipped here").unwrap();
        writeln!(f, "#8 eight").unwrap();
        writeln!(f, "#7 two").unwrap();
        f.flush().unwrap();
        let end = std::fs::metadata(&path).unwrap().len();
        let seven = logs.finish(key(7));
        assert_eq!(texts(&seven), vec![(start, end, "one\ntwo\n".into(), true)]);
        write!(f, "#8 half a line").unwrap();
        f.flush().unwrap();
        let eight = logs.finish(key(8));
        assert_eq!(texts(&eight), vec![(start, end, "eight\n".into(), true)]);
        assert!(logs.lock().shared.is_empty() && logs.lock().attempts.is_empty());
        assert!(
            sent.lock().unwrap().is_empty(),
            "nothing was due before the end"
        );
        assert!(logs.finish(key(8)).is_empty(), "shipped no more");
    }

    /// While the outbox is backed up, a running attempt's rounds ship nothing and its
    /// lines wait on disk; once it clears they go out, and its end ships the rest. On the
    /// real clock (tokio's `test-util` would change tokio's features for the test build
    /// only, recompiling everything above it): three seconds.
    #[tokio::test]
    async fn rounds_wait_while_the_outbox_is_backed_up() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("own.log");
        let mut f = std::fs::File::create(&path).unwrap();
        let jammed = Arc::new(AtomicBool::new(true));
        let logs = LogShipper::new({
            let jammed = jammed.clone();
            move || jammed.load(Ordering::SeqCst)
        });
        let sent = Arc::new(Mutex::new(Vec::new()));
        {
            let sent = sent.clone();
            logs.start(key(5), path.clone(), "w1".into(), move |e| {
                sent.lock().unwrap().push(e);
                true
            });
        }
        writeln!(f, "first").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(SHIP_EVERY * 4).await;
        assert!(
            sent.lock().unwrap().is_empty(),
            "nothing shipped while backed up"
        );
        jammed.store(false, Ordering::SeqCst);
        tokio::time::sleep(SHIP_EVERY * 2).await;
        let shipped = texts(&sent.lock().unwrap());
        assert_eq!(shipped.len(), 1, "{shipped:?}");
        assert_eq!((shipped[0].2.as_str(), shipped[0].3), ("first\n", false));
        jammed.store(true, Ordering::SeqCst);
        writeln!(f, "second").unwrap();
        f.flush().unwrap();
        let rest = texts(&logs.finish(key(5)));
        assert_eq!(
            rest.last().map(|r| (r.2.as_str(), r.3)),
            Some(("second\n", true))
        );
    }

    /// Records what reaches it, in order.
    struct Recording(Mutex<Vec<KeyedEvent>>);

    impl TaskEventSink for Recording {
        fn deliver(&self, event: KeyedEvent) -> BoxFuture<'static, Result<(), String>> {
            self.0.lock().unwrap().push(event);
            Box::pin(async { Ok(()) })
        }
    }

    /// In front of a sink, an attempt's log follows its start, and the rest of it
    /// reaches the sink before the attempt's end.
    #[tokio::test]
    async fn ship_logs_puts_the_rest_of_a_log_before_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("own.log");
        std::fs::write(&path, "").unwrap();
        let recording = Arc::new(Recording(Mutex::new(Vec::new())));
        let sink = ShipLogs::new(recording.clone(), LogShipper::default());
        let event = |seq: u32, update: TaskUpdate| KeyedEvent {
            key: key(3),
            seq,
            host: "m1".into(),
            update,
        };
        sink.deliver(event(
            1,
            TaskUpdate::Running {
                plugin_version: None,
                log_path: Some(path.display().to_string()),
            },
        ))
        .await
        .unwrap();
        std::fs::write(&path, "all of it\n").unwrap();
        let report = shoal_protocol::TaskReport {
            state: shoal_model::TaskState::Succeeded,
            message: String::new(),
            out_params: Vec::new(),
            log_path: path.clone(),
            work_dir: dir.path().to_path_buf(),
            plugin_version: None,
            handle: None,
            elapsed: Duration::ZERO,
        };
        sink.deliver(event(
            2,
            TaskUpdate::Ended {
                report: Box::new(report),
            },
        ))
        .await
        .unwrap();
        let got = recording.0.lock().unwrap();
        let kinds: Vec<&str> = got
            .iter()
            .map(|e| match &e.update {
                TaskUpdate::Running { .. } => "running",
                TaskUpdate::Log {
                    text, last: true, ..
                } if text == "all of it\n" => "log",
                TaskUpdate::Ended { .. } => "ended",
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["running", "log", "ended"]);
    }

    #[test]
    fn tags_are_read_strictly() {
        assert_eq!(tagged(b"#12 hello\n"), Some((12, &b"hello\n"[..])));
        assert_eq!(tagged(b"12 hello\n"), None);
        assert_eq!(tagged(b"#x hello\n"), None);
        assert_eq!(tagged(b"#12\n"), None);
    }
}
