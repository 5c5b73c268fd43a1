//! Client profiles: `<data dir>/client.toml` names servers, tokens and default projects,
//! so scripts do not repeat them.
//!
//! ```toml
//! default = "local"
//! [profiles.local]
//! server = "http://127.0.0.1:8470"
//! token = "shoal_..."
//! project = "demo"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

pub fn path(data_root: &Path) -> PathBuf {
    data_root.join("client.toml")
}

impl Profiles {
    pub fn load(file: &Path) -> anyhow::Result<Self> {
        if !file.exists() {
            return Ok(Self::default());
        }
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.to_string().trim_end()))
    }

    /// Save, readable by the owner only: it holds tokens.
    pub fn save(&self, file: &Path) -> anyhow::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string(self)?;
        let tmp = file.with_extension("toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(&tmp, file)?;
        Ok(())
    }

    /// The profile `name`, or the default one.
    pub fn pick(&self, name: Option<&str>) -> anyhow::Result<Option<&Profile>> {
        match name.or(self.default.as_deref()) {
            None => Ok(None),
            Some(n) => self.profiles.get(n).map(Some).ok_or_else(|| {
                anyhow::anyhow!("no client profile `{n}`; create it with `shoal login`")
            }),
        }
    }
}
