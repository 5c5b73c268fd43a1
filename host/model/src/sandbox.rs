//! How the processes a plugin starts are confined: the operator's sandbox policy.
//!
//! ```toml
//! sandbox = "bubblewrap"        # the default; "none" must be written out (and is warned about)
//! tenant = "shoal-tenant"       # OS user task processes run as when the host runs as root
//! [process-limits]              # per task process tree
//! cpu-seconds = 3600
//! address-space-mb = 4096
//! open-files = 1024
//! processes = 256
//! file-size-mb = 1024
//! network = true                # false: the sandbox gets a loopback of its own only
//! ```
//!
//! DolphinScheduler runs each task as its tenant's OS user; Shoal does the same and also
//! hides the host from the process: a bubblewrap sandbox shows it the system's read-only
//! directories and its own work dir, and nothing of the data dir.

use serde::{Deserialize, Serialize};

/// Which confinement task processes get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxKind {
    /// bubblewrap (`bwrap`): own mount, PID and IPC namespaces.
    #[default]
    Bubblewrap,
    /// No namespaces: the process sees the host as the tenant user does. Only on an
    /// operator's explicit word; the server warns at start-up.
    None,
}

/// Resource limits for one task's processes (`setrlimit`, plus a pids cgroup when the
/// host may create one, so a fork bomb fails its own task only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ProcessLimits {
    pub cpu_seconds: u64,
    pub address_space_mb: u64,
    pub open_files: u64,
    pub processes: u64,
    pub file_size_mb: u64,
    /// Whether the processes may use the host's network (Shell tasks often run clients).
    pub network: bool,
}

impl Default for ProcessLimits {
    fn default() -> Self {
        Self {
            cpu_seconds: 3600,
            address_space_mb: 8192,
            open_files: 1024,
            processes: 256,
            file_size_mb: 4096,
            network: true,
        }
    }
}

/// The default tenant: the OS user task processes run as when the host is root and the
/// project names none.
pub const DEFAULT_TENANT: &str = "shoal-tenant";

/// The whole sandbox policy for task processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxPolicy {
    pub kind: SandboxKind,
    pub default_tenant: String,
    pub limits: ProcessLimits,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            kind: SandboxKind::Bubblewrap,
            default_tenant: DEFAULT_TENANT.to_owned(),
            limits: ProcessLimits::default(),
        }
    }
}

/// Whether `name` can be an OS user name (what `useradd` accepts, conservatively).
pub fn valid_tenant_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_plain_user_names() {
        assert!(valid_tenant_name("shoal-tenant"));
        assert!(valid_tenant_name("etl_team1"));
        for bad in ["", "Root", "a b", "../x", "-x", "x:y", &"a".repeat(33)] {
            assert!(!valid_tenant_name(bad), "{bad}");
        }
    }
}
