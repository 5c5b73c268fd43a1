//! Server configuration: a TOML file, then environment variables, then flags, each
//! overriding the one before.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

/// `shoal server` flags. Each also reads an environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TOML config file [default: <data dir>/server.toml if present]
    #[arg(long, env = "SHOAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "SHOAL_BIND")]
    pub bind: Option<IpAddr>,
    /// Port to listen on; 0 picks a free one [default: 8470]
    #[arg(long, env = "SHOAL_PORT")]
    pub port: Option<u16>,
    /// The first admin's API token, instead of a generated one (used only when the store
    /// has no users yet)
    #[arg(long, env = "SHOAL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Serve the web UI from this directory (a development build of `ui/`) instead of
    /// the copy embedded in the binary
    #[arg(long, env = "SHOAL_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
    /// Print every task's log lines as they are written.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Flags of a cluster node (`shoal master`, `shoal worker`).
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// Where this node's RPC listens, `IP:PORT`; port 0 picks a free one
    /// [default: 127.0.0.1:8471 for a master, 127.0.0.1:8472 for a worker]
    #[arg(long, env = "SHOAL_RPC_LISTEN")]
    pub rpc_listen: Option<SocketAddr>,
    /// This node's name in the registry; keep it across restarts
    /// [default: <role>-<host>-<rpc port>]
    #[arg(long, env = "SHOAL_NODE_ID")]
    pub node_id: Option<String>,
}

/// `shoal worker` flags.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// TOML config file [default: <data dir>/server.toml if present]
    #[arg(long, env = "SHOAL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// A worker group whose tasks this worker takes; repeat for several
    /// [default: default]
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Task attempts this worker runs at once [default: 16]
    #[arg(long)]
    pub slots: Option<usize>,
}

/// `shoal master` flags: a server's, and the node's.
#[derive(Debug, Clone, Args)]
pub struct MasterArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `[cluster]` in server.toml: shared by every node of a cluster.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub rpc_listen: Option<SocketAddr>,
    pub node_id: Option<String>,
    /// The cluster secret itself (prefer `secret_file` or $SHOAL_CLUSTER_SECRET).
    pub secret: Option<String>,
    /// A file holding the cluster secret.
    pub secret_file: Option<PathBuf>,
    pub heartbeat_ms: Option<u64>,
    pub lease_ms: Option<u64>,
    pub rpc_timeout_ms: Option<u64>,
}

/// `[worker]` in server.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerFile {
    pub groups: Option<Vec<String>>,
    pub slots: Option<usize>,
}

/// The file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub database: Option<String>,
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub admin_token: Option<String>,
    /// Where the secret-sealing key lives [default: <data dir>/secret.key].
    pub secret_key_file: Option<PathBuf>,
    /// Largest JSON/YAML request body, bytes.
    pub max_body_bytes: Option<usize>,
    /// Largest plugin upload, bytes.
    pub max_plugin_bytes: Option<usize>,
    /// A fire found later than this many seconds counts as missed.
    pub misfire_threshold_s: Option<u64>,
    /// How long shutdown waits for running instances to settle, seconds.
    pub shutdown_grace_s: Option<u64>,
    /// Task group slots, `{ etl = 2 }`.
    #[serde(default)]
    pub task_groups: std::collections::BTreeMap<String, usize>,
    #[serde(default)]
    pub alerts: AlertConfig,
    #[serde(default)]
    pub cluster: ClusterFile,
    #[serde(default)]
    pub worker: WorkerFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    pub attempts: Option<u32>,
    pub first_backoff_ms: Option<u64>,
    pub timeout_s: Option<u64>,
    /// Non-public addresses (loopback, private, link-local) webhook and Slack channels may
    /// reach, as IP literals or CIDR blocks; public addresses need no entry.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
}

/// The settled configuration.
#[derive(Debug)]
pub struct ServerConfig {
    pub database: Option<String>,
    pub bind: IpAddr,
    pub port: u16,
    pub admin_token: Option<String>,
    pub secret_key_file: PathBuf,
    pub max_body_bytes: usize,
    pub max_plugin_bytes: usize,
    pub misfire_threshold_s: u64,
    pub shutdown_grace_s: u64,
    pub task_groups: std::collections::BTreeMap<String, usize>,
    pub alerts: AlertConfig,
    /// `alerts.allow_hosts`, parsed.
    pub alert_hosts: shoal_alert::WebhookHosts,
    /// `--ui-dir`: serve the UI from here instead of the embedded copy.
    pub ui_dir: Option<PathBuf>,
    pub verbose: bool,
    /// `shoal master`: this server is one master of a cluster.
    pub cluster: Option<shoal_node::cluster::ClusterConfig>,
}

pub const DEFAULT_PORT: u16 = 8470;
pub const DEFAULT_MASTER_RPC: u16 = 8471;
pub const DEFAULT_WORKER_RPC: u16 = 8472;

/// Read the config file: `flag`, else `<data dir>/server.toml` if present.
fn read_file(
    data_root: &Path,
    flag: Option<&Path>,
) -> anyhow::Result<(Option<PathBuf>, ConfigFile)> {
    let path = flag.map(Path::to_path_buf).or_else(|| {
        let p = data_root.join("server.toml");
        p.is_file().then_some(p)
    });
    let file: ConfigFile = match &path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading the config file {}", p.display()))?;
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", p.display(), e.to_string().trim_end()))?
        }
        None => ConfigFile::default(),
    };
    Ok((path, file))
}

/// The cluster settings of a node: file, then environment and flags. `db` is the global
/// `--db`, which a cluster node needs (a postgres:// URL).
pub fn cluster_config(
    origin: Option<&Path>,
    file: &ClusterFile,
    database: Option<String>,
    args: &ClusterArgs,
    default_port: u16,
) -> anyhow::Result<shoal_node::cluster::ClusterConfig> {
    let named = |key: &str| match origin {
        Some(p) => format!("{}: [cluster] {key}", p.display()),
        None => format!("[cluster] {key}"),
    };
    let database = database.ok_or_else(|| {
        anyhow::anyhow!(
            "a cluster node needs the shared PostgreSQL store: pass --db postgres://... (or $SHOAL_DB, or `database` in server.toml)"
        )
    })?;
    let secret = match (
        std::env::var("SHOAL_CLUSTER_SECRET").ok(),
        &file.secret,
        &file.secret_file,
    ) {
        (Some(s), _, _) if !s.is_empty() => s,
        (_, Some(s), _) => s.clone(),
        (_, None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("{}: reading {}", named("secret_file"), path.display()))?
            .trim()
            .to_owned(),
        _ => anyhow::bail!(
            "a cluster node needs the cluster secret: set $SHOAL_CLUSTER_SECRET, or `secret` / `secret_file` under [cluster] in server.toml (the same on every node)"
        ),
    };
    let mut registry = shoal_registry::RegistryConfig::default();
    if let Some(ms) = file.heartbeat_ms {
        registry.heartbeat = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = file.lease_ms {
        registry.lease = std::time::Duration::from_millis(ms);
    }
    if registry.heartbeat.is_zero() || registry.heartbeat * 2 > registry.lease {
        anyhow::bail!(
            "{}: the heartbeat ({} ms) must be non-zero and at most half the lease ({} ms)",
            named("heartbeat_ms"),
            registry.heartbeat.as_millis(),
            registry.lease.as_millis()
        );
    }
    Ok(shoal_node::cluster::ClusterConfig {
        database,
        rpc_listen: args
            .rpc_listen
            .or(file.rpc_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port))),
        node_id: args.node_id.clone().or_else(|| file.node_id.clone()),
        secret,
        registry,
        rpc_timeout: std::time::Duration::from_millis(file.rpc_timeout_ms.unwrap_or(10_000)),
    })
}

/// `shoal worker`'s settled configuration.
#[derive(Debug)]
pub struct WorkerNodeConfig {
    pub cluster: shoal_node::cluster::ClusterConfig,
    pub worker: shoal_node::cluster::WorkerConfig,
}

impl WorkerNodeConfig {
    pub fn resolve(data_root: &Path, args: &WorkerArgs, db: Option<&str>) -> anyhow::Result<Self> {
        let (path, file) = read_file(data_root, args.config.as_deref())?;
        let cluster = cluster_config(
            path.as_deref(),
            &file.cluster,
            db.map(str::to_owned).or(file.database.clone()),
            &args.cluster,
            DEFAULT_WORKER_RPC,
        )?;
        let mut worker = shoal_node::cluster::WorkerConfig::default();
        if !args.groups.is_empty() {
            worker.groups = args.groups.clone();
        } else if let Some(groups) = &file.worker.groups {
            worker.groups = groups.clone();
        }
        if let Some(slots) = args.slots.or(file.worker.slots) {
            worker.slots = slots;
        }
        worker.task_groups = file.task_groups;
        Ok(Self { cluster, worker })
    }
}

impl ServerConfig {
    /// Merge file, environment (through clap) and flags. `db` is the global `--db`.
    #[cfg(test)]
    pub fn resolve(data_root: &Path, args: &ServerArgs, db: Option<&str>) -> anyhow::Result<Self> {
        Self::resolve_node(data_root, args, db, None)
    }

    /// As [`ServerConfig::resolve`]; `cluster` makes it a master node's (`shoal master`).
    pub fn resolve_node(
        data_root: &Path,
        args: &ServerArgs,
        db: Option<&str>,
        cluster: Option<&ClusterArgs>,
    ) -> anyhow::Result<Self> {
        let (path, file) = read_file(data_root, args.config.as_deref())?;
        let cluster = match cluster {
            Some(flags) => Some(cluster_config(
                path.as_deref(),
                &file.cluster,
                db.map(str::to_owned).or(file.database.clone()),
                flags,
                DEFAULT_MASTER_RPC,
            )?),
            None => None,
        };
        let alert_hosts =
            shoal_alert::WebhookHosts::parse(&file.alerts.allow_hosts).map_err(|e| {
                let origin = path.as_ref().map_or_else(
                    || "the server config".to_owned(),
                    |p| p.display().to_string(),
                );
                anyhow::anyhow!("{origin}: [alerts] {e}")
            })?;
        Ok(Self {
            database: db.map(str::to_owned).or(file.database),
            bind: args
                .bind
                .or(file.bind)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            port: args.port.or(file.port).unwrap_or(DEFAULT_PORT),
            admin_token: args.admin_token.clone().or(file.admin_token),
            secret_key_file: file
                .secret_key_file
                .unwrap_or_else(|| data_root.join("secret.key")),
            max_body_bytes: file.max_body_bytes.unwrap_or(1 << 20),
            max_plugin_bytes: file.max_plugin_bytes.unwrap_or(64 << 20),
            misfire_threshold_s: file.misfire_threshold_s.unwrap_or(60),
            shutdown_grace_s: file.shutdown_grace_s.unwrap_or(30),
            task_groups: file.task_groups,
            alerts: file.alerts,
            alert_hosts,
            ui_dir: args.ui_dir.clone(),
            verbose: args.verbose,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs {
            config: None,
            bind: None,
            port: None,
            admin_token: None,
            ui_dir: None,
            verbose: false,
        }
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("server.toml"),
            "port = 9000\nbind = \"127.0.0.1\"\nmax_body_bytes = 10\n",
        )
        .unwrap();
        let c = ServerConfig::resolve(dir.path(), &args(), None).unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.max_body_bytes, 10);
        let mut a = args();
        a.port = Some(9001);
        let c = ServerConfig::resolve(dir.path(), &a, Some("sqlite://x")).unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.database.as_deref(), Some("sqlite://x"));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.toml"), "prot = 1\n").unwrap();
        let err = ServerConfig::resolve(dir.path(), &args(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.toml") && err.contains("prot"), "{err}");
    }
}

#[cfg(test)]
mod alert_host_tests {
    use super::*;

    #[test]
    fn alert_allow_hosts_take_addresses_and_name_a_bad_entry() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServerArgs {
            config: None,
            bind: None,
            port: None,
            admin_token: None,
            ui_dir: None,
            verbose: false,
        };
        std::fs::write(
            dir.path().join("server.toml"),
            "[alerts]\nallow_hosts = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
        )
        .unwrap();
        ServerConfig::resolve(dir.path(), &args, None).unwrap();
        std::fs::write(
            dir.path().join("server.toml"),
            "[alerts]\nallow_hosts = [\"hooks.internal\"]\n",
        )
        .unwrap();
        let err = ServerConfig::resolve(dir.path(), &args, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.toml") && err.contains("allow-hosts[0]: `hooks.internal`"),
            "{err}"
        );
    }
}
