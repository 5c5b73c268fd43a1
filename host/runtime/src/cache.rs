//! Compiled components on disk.
//!
//! Cranelift needs tens of milliseconds per component; loading precompiled code takes a
//! fraction of a millisecond. The key is the component's SHA-256 plus the engine's
//! compatibility hash, so a wasmtime upgrade or a different CPU feature set never loads
//! stale machine code. Entries are written to a temporary file and renamed into place,
//! so a crash mid-write leaves no truncated entry behind; an entry that still fails to
//! load is recompiled and replaced.
//!
//! Loading compiled code is an unchecked native deserialise, so an entry is trusted only
//! when it carries an HMAC-SHA256 under this host's key (`cache.key` beside the cache
//! directory, 0600): a file someone else wrote or changed there is discarded, never loaded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
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

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC that opens every entry.
const MAC_LEN: usize = 32;

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

    /// This host's cache key, created on first use.
    fn key(&self) -> std::io::Result<Vec<u8>> {
        let dir = self.dir.as_ref().ok_or(std::io::ErrorKind::NotFound)?;
        let path = dir.with_extension("key");
        match std::fs::read(&path) {
            Ok(key) if key.len() == 32 => return Ok(key),
            Ok(_) | Err(_) => {}
        }
        let mut key = vec![0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension(format!("key.{}.tmp", std::process::id()));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&key)?;
        }
        // Two processes racing here both write a key; the entries of the loser's key
        // are simply recompiled once.
        std::fs::rename(&tmp, &path)?;
        Ok(key)
    }

    fn mac(key: &[u8], name: &str, bytes: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        mac
    }

    /// The compiled bytes of an entry whose MAC checks out under this host's key.
    fn verified(&self, path: &Path) -> Result<Vec<u8>, String> {
        let key = self.key().map_err(|e| format!("no cache key: {e}"))?;
        let mut bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        if bytes.len() < MAC_LEN {
            return Err("shorter than its MAC".into());
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let code = bytes.split_off(MAC_LEN);
        Self::mac(&key, name, &code)
            .verify_slice(&bytes)
            .map_err(|_| "its MAC does not match this host's key".to_owned())?;
        Ok(code)
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        let key = self.key()?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let mac = Self::mac(&key, name, compiled).finalize().into_bytes();
        let mut entry = Vec::with_capacity(MAC_LEN + compiled.len());
        entry.extend_from_slice(&mac);
        entry.extend_from_slice(compiled);
        write_atomically(path, &entry)
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
            let loaded = self
                .verified(path)
                .map_err(wasmtime::Error::msg)
                // SAFETY: the MAC proves this host wrote these bytes, as produced by
                // `precompile_component` for this engine configuration (the file name
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
            && let Err(err) = self.store(path, &compiled)
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
