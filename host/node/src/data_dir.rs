//! The data directory and what lives in it (store, plugins, compile cache, work dirs,
//! logs, the engine lock).

use std::path::{Path, PathBuf};

/// The data directory and what lives in it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// `--data-dir`, else `$SHOAL_HOME`, else `~/.shoal`.
    pub fn resolve(flag: Option<PathBuf>) -> Self {
        let root = flag
            .or_else(|| std::env::var_os("SHOAL_HOME").map(PathBuf::from))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".shoal")))
            .unwrap_or_else(|| PathBuf::from(".shoal"));
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the data dir (and its parents) private to this user: it holds the store,
    /// the secret key and every task's log. An existing one is narrowed to 0700 too.
    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)?;
        let mode = std::fs::metadata(&self.root)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    pub fn plugins(&self) -> PathBuf {
        self.root.join("plugins")
    }
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn policy(&self) -> PathBuf {
        self.root.join("policy.toml")
    }
}
