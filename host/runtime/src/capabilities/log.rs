//! `shoal:task/log`: plugin log entries go into the task's log.

use shoal_model::{LogLevel, LogStream, TaskLog};

use crate::bindings::log::{Host, Level};
use crate::capabilities::HostState;

pub struct LogCapability {
    log: TaskLog,
}

impl LogCapability {
    pub fn new(log: TaskLog) -> Self {
        Self { log }
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
        self.log.log.write(LogStream::Plugin, level, &message);
        Ok(())
    }
}
