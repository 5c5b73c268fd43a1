//! Log shipping: a worker writes each attempt's log to its own disk and sends it, piece
//! by piece, through the same outbox as the attempt's other updates, so the owning
//! master stores it and the API can serve it while the attempt runs and after this
//! worker is gone. The last pieces go out before the attempt's end, and the end of
//! the log is marked, so a log without that mark is known to be cut short.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_protocol::{KeyedEvent, TaskKey, TaskUpdate};

/// How often a running attempt's new log lines are shipped.
pub const SHIP_EVERY: Duration = Duration::from_millis(500);
/// Most bytes of log in one update.
const PIECE: usize = 64 * 1024;
/// Log updates are numbered apart from the executor's own (which count from 1), so the
/// outbox acknowledges each by its own key and sequence.
const FIRST_SEQ: u32 = 1 << 31;

struct Shipping {
    path: PathBuf,
    /// Where the next piece starts (bytes of the log file).
    at: u64,
    seq: u32,
}

/// The logs being shipped, by attempt. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogShipper {
    attempts: Arc<Mutex<HashMap<TaskKey, Shipping>>>,
}

impl LogShipper {
    /// Start shipping `key`'s log at `path`; `send` queues one update for its master
    /// (and is called with nothing when the attempt is no longer shipped).
    pub fn start(
        &self,
        key: TaskKey,
        path: PathBuf,
        host: String,
        send: impl Fn(KeyedEvent) -> bool + Send + 'static,
    ) {
        // A short task's lines go to the instance's shared log, among thousands of
        // others: its own start after the file's present end, and reading from the top
        // for each task would cost the square of a fan-out.
        let shared = path
            .to_str()
            .is_some_and(|p| p.ends_with(shoal_model::log::SHARED_LOG_SUFFIX));
        let at = if shared {
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        self.lock().insert(
            key,
            Shipping {
                path,
                at,
                seq: FIRST_SEQ,
            },
        );
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SHIP_EVERY).await;
                match this.pieces(key, &host, false) {
                    Some(events) => {
                        for event in events {
                            if !send(event) {
                                return;
                            }
                        }
                    }
                    None => return,
                }
            }
        });
    }

    /// The attempt ended: what is left of its log, the last piece marked as such (an
    /// empty one when nothing is left). It is shipped no more.
    pub fn finish(&self, key: TaskKey, host: &str) -> Vec<KeyedEvent> {
        let events = self.pieces(key, host, true).unwrap_or_default();
        self.lock().remove(&key);
        events
    }

    /// Forget every attempt (the node's lease was lost).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskKey, Shipping>> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pieces of `key`'s log not shipped yet (all of them with `to_end`); None when
    /// the attempt is not shipped (any more).
    fn pieces(&self, key: TaskKey, host: &str, to_end: bool) -> Option<Vec<KeyedEvent>> {
        let mut attempts = self.lock();
        let shipping = attempts.get_mut(&key)?;
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
            if !text.is_empty() || last {
                shipping.seq += 1;
                events.push(KeyedEvent {
                    key,
                    seq: shipping.seq,
                    host: host.to_owned(),
                    update: TaskUpdate::Log {
                        offset: shipping.at,
                        next_offset: next,
                        text,
                        last,
                    },
                });
            }
            let moved = next > shipping.at;
            shipping.at = next;
            // A running attempt ships one piece per round; its end ships the rest.
            if eof || !to_end || !moved {
                break;
            }
        }
        Some(events)
    }
}
