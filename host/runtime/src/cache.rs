//! Compiled components on disk.
//!
//! Cranelift needs tens of milliseconds per component; loading precompiled code takes a
//! fraction of a millisecond. The key is the component's SHA-256 plus the engine's
//! compatibility hash, so a wasmtime upgrade or a different CPU feature set never loads
//! stale machine code. Entries are written to a temporary file and renamed into place,
//! so a crash mid-write leaves no truncated entry behind; an entry that still fails to
//! load is recompiled and replaced.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::PluginEngine;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    /// True when the compiled code came from the cache.
    pub cache_hit: bool,
    /// Time to compile or to load from the cache.
    pub elapsed: Duration,
}

/// A directory of precompiled components (or none: always compile).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// Hex SHA-256 of a component's bytes: its identity in caches and plugin stores.
pub fn content_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    pub fn disabled() -> Self {
        Self { dir: None }
    }

    fn entry(&self, engine: &PluginEngine, hash: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{hash}-{}.cwasm", engine.compatibility_key())))
    }

    /// Compile `wasm`, or load its compiled form from the cache.
    pub fn load(
        &self,
        engine: &PluginEngine,
        wasm: &[u8],
        hash: &str,
    ) -> Result<(Component, LoadReport), wasmtime::Error> {
        let started = Instant::now();
        let entry = self.entry(engine, hash);
        if let Some(path) = entry.as_deref().filter(|p| p.exists()) {
            // Read into memory rather than mmap the file: an entry truncated or rewritten
            // in place by someone else must not be able to fault the host later.
            let loaded = std::fs::read(path)
                .map_err(wasmtime::Error::from)
                // SAFETY: the cache directory belongs to this host and holds only what
                // `precompile_component` wrote for this engine configuration (the key
                // includes its compatibility hash); wasmtime still checks the header.
                .and_then(|bytes| unsafe { Component::deserialize(engine.engine(), &bytes) });
            match loaded {
                Ok(component) => {
                    return Ok((
                        component,
                        LoadReport {
                            cache_hit: true,
                            elapsed: started.elapsed(),
                        },
                    ));
                }
                Err(err) => {
                    tracing::warn!("discarding unusable compile cache entry {path:?}: {err}");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let compiled = engine.engine().precompile_component(wasm)?;
        if let Some(path) = &entry
            && let Err(err) = write_atomically(path, &compiled)
        {
            // The cache is an optimisation; a read-only disk must not stop the task.
            tracing::warn!("cannot write compile cache entry {path:?}: {err}");
        }
        // SAFETY: these bytes were produced by `precompile_component` on this engine
        // just above.
        let component = unsafe { Component::deserialize(engine.engine(), &compiled)? };
        Ok((
            component,
            LoadReport {
                cache_hit: false,
                elapsed: started.elapsed(),
            },
        ))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
