//! WASI 0.2 without ambient authority.
//!
//! The guest gets no environment variables, no arguments, no sockets, and exactly one
//! directory: the task's work dir, preopened read-write at [`GUEST_WORK_DIR`] when the
//! grant includes `work-dir`. Its stdout and stderr are split into lines and written to
//! the task log.

use std::pin::Pin;
use std::task::{Context, Poll};

use shoal_model::{Grant, LogLevel, LogStream, TaskLog};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::invoke::TaskEnv;

/// Where the work dir appears inside the sandbox.
pub const GUEST_WORK_DIR: &str = "/work";

pub fn build(grant: &Grant, env: &TaskEnv) -> Result<WasiCtx, String> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(LogOutput::new(env.log.clone(), LogStream::Stdout))
        .stderr(LogOutput::new(env.log.clone(), LogStream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if grant.work_dir {
        builder
            .preopened_dir(&env.work_dir, GUEST_WORK_DIR, FsPerms::ReadWrite)
            .map_err(|e| format!("cannot open work dir {}: {e}", env.work_dir.display()))?;
    }
    Ok(builder.build())
}

/// A guest output stream that becomes task-log lines.
#[derive(Clone)]
pub struct LogOutput {
    log: TaskLog,
    stream: LogStream,
}

impl LogOutput {
    pub fn new(log: TaskLog, stream: LogStream) -> Self {
        Self { log, stream }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            out: self.clone(),
            pending: Vec::new(),
        })
    }
}

/// Buffers a partial line until its newline arrives (or the stream is dropped).
struct LineWriter {
    out: LogOutput,
    pending: Vec<u8>,
}

/// A guest that never prints a newline must not grow the host's memory without bound.
const MAX_LINE: usize = 64 * 1024;

impl LineWriter {
    fn emit(&mut self, upto: usize) {
        let line: Vec<u8> = self.pending.drain(..upto).collect();
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let level = if self.out.stream == LogStream::Stderr {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        self.out.log.write(self.out.stream, level, text);
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            self.emit(pos + 1);
        }
        if self.pending.len() > MAX_LINE {
            let len = self.pending.len();
            self.emit(len);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let len = self.pending.len();
            self.emit(len);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let len = self.pending.len();
            self.emit(len);
        }
    }
}
