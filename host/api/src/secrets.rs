//! Secret values (passwords, API keys) sealed at rest with ChaCha20-Poly1305.
//!
//! The key is 32 random bytes kept outside the database (`<data dir>/secret.key`, or
//! given by config), so a copy of the database alone reveals no secret. Each value is
//! sealed with a fresh nonce and bound to its project and name, so a sealed value
//! copied onto another name does not open.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("secret `{0}` cannot be opened with this server's key")]
    Open(String),
}

/// Seals and opens secret values. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Load the key at `path` (64 hex digits), creating it (mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let err = |message: String| SecretError::KeyFile {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            let mut key = [0u8; 32];
            getrandom::getrandom(&mut key).map_err(|e| err(e.to_string()))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
            }
            write_private(path, &hex::encode(key)).map_err(|e| err(e.to_string()))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|e| err(format!("not hex: {e}")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| err("must hold 32 bytes (64 hex digits)".into()))?;
        Ok(Self::from_key(key))
    }

    /// Seal `value` for `(project, name)`: (nonce hex, ciphertext hex).
    pub fn seal(&self, project: &str, name: &str, value: &str) -> (String, String) {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).expect("the OS random source works");
        let aad = format!("{project}/{name}");
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("sealing cannot fail for in-memory buffers");
        (hex::encode(nonce), hex::encode(sealed))
    }

    pub fn open(
        &self,
        project: &str,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> Result<String, SecretError> {
        let fail = || SecretError::Open(name.to_owned());
        let nonce = hex::decode(nonce).map_err(|_| fail())?;
        let sealed = hex::decode(ciphertext).map_err(|_| fail())?;
        if nonce.len() != 12 {
            return Err(fail());
        }
        let aad = format!("{project}/{name}");
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

impl SecretBox {
    /// An alert channel's config as stored: sealed whole (SMTP passwords, webhook URLs
    /// and header values are credentials), with only its kind in the clear for listings.
    pub fn seal_channel(&self, project: &str, name: &str, config: &serde_json::Value) -> String {
        let (nonce, ciphertext) = self.seal(project, &channel_aad(name), &config.to_string());
        serde_json::json!({
            "kind": config["kind"],
            "sealed": {"nonce": nonce, "ciphertext": ciphertext},
        })
        .to_string()
    }

    /// A stored alert channel's config, opened (one stored before configs were sealed
    /// is returned as it is).
    pub fn open_channel(
        &self,
        project: &str,
        name: &str,
        stored: &str,
    ) -> Result<serde_json::Value, SecretError> {
        let fail = || SecretError::Open(format!("alert channel {name}"));
        let v: serde_json::Value = serde_json::from_str(stored).map_err(|_| fail())?;
        let Some(sealed) = v.get("sealed") else {
            return Ok(v);
        };
        let (Some(nonce), Some(ciphertext)) =
            (sealed["nonce"].as_str(), sealed["ciphertext"].as_str())
        else {
            return Err(fail());
        };
        let plain = self.open(project, &channel_aad(name), nonce, ciphertext)?;
        serde_json::from_str(&plain).map_err(|_| fail())
    }
}

impl SecretBox {
    /// A datasource's password as stored (nonce, ciphertext).
    pub fn seal_datasource_password(
        &self,
        project: &str,
        name: &str,
        password: &str,
    ) -> (String, String) {
        self.seal(project, &datasource_aad(name), password)
    }

    pub fn open_datasource_password(
        &self,
        project: &str,
        name: &str,
        nonce: &str,
        ciphertext: &str,
    ) -> Result<String, SecretError> {
        self.open(project, &datasource_aad(name), nonce, ciphertext)
            .map_err(|_| SecretError::Open(format!("datasource {name}")))
    }
}

/// Datasource passwords are sealed under their own names' space, apart from secrets'.
fn datasource_aad(name: &str) -> String {
    format!("datasource:{name}")
}

/// Channels are sealed under their own names' space, apart from secrets'.
fn channel_aad(name: &str) -> String {
    format!("alert-channel:{name}")
}

/// The engine's view of the sealed secrets: it opens a project's secrets when one of its
/// runs starts, and holds the values in memory only.
pub struct StoreSecrets {
    store: shoal_store::Store,
    sealer: SecretBox,
}

impl StoreSecrets {
    pub fn new(store: shoal_store::Store, sealer: SecretBox) -> Self {
        Self { store, sealer }
    }
}

impl shoal_master::SecretSource for StoreSecrets {
    fn secrets<'a>(&'a self, project: &'a str) -> shoal_master::SecretsFuture<'a> {
        Box::pin(async move {
            let rows = self
                .store
                .secrets(project)
                .await
                .map_err(|e| e.to_string())?;
            let mut out = std::collections::BTreeMap::new();
            for row in rows {
                let value = self
                    .sealer
                    .open(project, &row.name, &row.nonce, &row.ciphertext)
                    .map_err(|e| e.to_string())?;
                out.insert(row.name, value);
            }
            Ok(out)
        })
    }

    fn datasources<'a>(&'a self, project: &'a str) -> shoal_master::DatasourcesFuture<'a> {
        Box::pin(async move {
            let rows = self
                .store
                .datasources(project)
                .await
                .map_err(|e| e.to_string())?;
            rows.into_iter()
                .map(|row| {
                    let spec = serde_json::from_str(&row.spec)
                        .map_err(|e| format!("datasource `{}`: stored spec: {e}", row.name))?;
                    let password = self
                        .sealer
                        .open_datasource_password(project, &row.name, &row.nonce, &row.ciphertext)
                        .map_err(|e| e.to_string())?;
                    Ok(shoal_model::GrantedDatasource {
                        name: row.name,
                        project: project.to_owned(),
                        spec,
                        password,
                    })
                })
                .collect()
        })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_binds_to_name() {
        let dir = tempfile::tempdir().unwrap();
        let b = SecretBox::load_or_create(&dir.path().join("k")).unwrap();
        let (n, c) = b.seal("p", "db", "hunter2");
        assert!(!c.contains(&hex::encode("hunter2")));
        assert_eq!(b.open("p", "db", &n, &c).unwrap(), "hunter2");
        assert!(b.open("p", "other", &n, &c).is_err());
        // The same key file opens it again after a restart.
        let again = SecretBox::load_or_create(&dir.path().join("k")).unwrap();
        assert_eq!(again.open("p", "db", &n, &c).unwrap(), "hunter2");
    }
}
