//! WASI 0.2 without ambient authority.
//!
//! The guest gets no environment variables, no arguments, no sockets, and only the
//! directories its grant names: the task's work dir, preopened read-write at
//! [`GUEST_WORK_DIR`] when the grant includes `work-dir`, and for `flink` the operator's
//! Flink resource dir and CDC jar folder, read-only. Its stdout and stderr are split into lines and written to
//! the task log.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use shoal_model::{Grant, LogLevel, LogStream, TaskLog};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::invoke::TaskEnv;

/// Where the work dir appears inside the sandbox.
pub const GUEST_WORK_DIR: &str = "/work";

/// The guest's stdout and stderr, kept by [`HostState`](super::HostState) so that a
/// final partial line can be logged when the call ends.
pub struct GuestOutput {
    pub stdout: LogOutput,
    pub stderr: LogOutput,
}

impl GuestOutput {
    pub fn finish(&self) {
        self.stdout.finish();
        self.stderr.finish();
    }
}

pub fn build(grant: &Grant, env: &TaskEnv) -> Result<(WasiCtx, GuestOutput), String> {
    let output = GuestOutput {
        stdout: LogOutput::new(env.log.clone(), LogStream::Stdout),
        stderr: LogOutput::new(env.log.clone(), LogStream::Stderr),
    };
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if grant.work_dir {
        builder
            .preopened_dir(&env.work_dir, GUEST_WORK_DIR, FsPerms::ReadWrite)
            .map_err(|e| format!("cannot open work dir {}: {e}", env.work_dir.display()))?;
    }
    // The operator's Flink resources, read-only: jars a task may submit.
    if let Some(flink) = &grant.flink {
        use shoal_model::flink::{GUEST_CDC_DIR, GUEST_RESOURCES};
        if let Some(dir) = &flink.resource_dir {
            builder
                .preopened_dir(dir, GUEST_RESOURCES, FsPerms::ReadOnly)
                .map_err(|e| format!("cannot open Flink resource dir {}: {e}", dir.display()))?;
        }
        if let Some(dir) = flink.cdc_dist_jar.as_ref().and_then(|j| j.parent()) {
            builder
                .preopened_dir(dir, GUEST_CDC_DIR, FsPerms::ReadOnly)
                .map_err(|e| {
                    format!(
                        "cannot open the Flink CDC jar's folder {}: {e}",
                        dir.display()
                    )
                })?;
        }
    }
    Ok((builder.build(), output))
}

/// A guest output stream that becomes task-log lines. Writers handed to WASI share one
/// buffer for the partial line, which [`LogOutput::finish`] logs when the call ends.
#[derive(Clone)]
pub struct LogOutput {
    log: TaskLog,
    stream: LogStream,
    pending: Arc<Mutex<Vec<u8>>>,
}

/// A guest that never prints a newline must not grow the host's memory without bound.
const MAX_LINE: usize = 64 * 1024;

impl LogOutput {
    pub fn new(log: TaskLog, stream: LogStream) -> Self {
        Self {
            log,
            stream,
            pending: Arc::default(),
        }
    }

    fn emit(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches(['\n', '\r']);
        let level = if self.stream == LogStream::Stderr {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        self.log.write(self.stream, level, text);
    }

    fn write(&self, buf: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend_from_slice(buf);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            self.emit(&line);
        }
        if pending.len() > MAX_LINE {
            let line = std::mem::take(&mut *pending);
            self.emit(&line);
        }
    }

    /// Log what is left of an unterminated last line.
    pub fn finish(&self) {
        let line = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if !line.is_empty() {
            self.emit(&line);
        }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
