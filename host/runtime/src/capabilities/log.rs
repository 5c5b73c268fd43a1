//! `shoal:task/log`: plugin log entries go into the task's log, up to a count per task.

use shoal_model::{LogLevel, LogStream, TaskLog};

use crate::bindings::log::{Host, Level};
use crate::capabilities::HostState;

pub struct LogCapability {
    log: TaskLog,
    /// Entries a task may write through this interface, across all its calls.
    max_entries: u64,
}

impl LogCapability {
    pub fn new(log: TaskLog, max_entries: u64) -> Self {
        Self { log, max_entries }
    }
}

impl Host for HostState {
    async fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let n = self.log.log.count_plugin_entry();
        if n > self.log.max_entries {
            if n == self.log.max_entries + 1 {
                self.log.log.write(
                    LogStream::Host,
                    LogLevel::Warn,
                    &format!(
                        "the plugin wrote {} log entries (task-limits.guest-log-entries); further entries are dropped",
                        self.log.max_entries
                    ),
                );
            }
            return Ok(());
        }
        self.log.log.write(LogStream::Plugin, level, &message);
        Ok(())
    }
}
