//! `shoal proxy`: parse, hand the config to `shoal-proxy`, print where it listens.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use shoal_proxy::Proxy;
use shoal_proxy::config::ProxyConfig;

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// The proxy's config: clusters, routes, store (see the README's "Many clusters").
    #[arg(long, default_value = "proxy.toml", global = true)]
    pub config: PathBuf,
    /// Serve the web UI from this directory (a development build of `ui/`) instead of
    /// the copy embedded in the binary
    #[arg(long, env = "SHOAL_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Option<ProxyAction>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProxyAction {
    /// Seal a cluster's API token (read from stdin) with this proxy's key, for the
    /// cluster's `token` in proxy.toml.
    SealToken {
        #[arg(long)]
        cluster: String,
    },
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    if let Some(ProxyAction::SealToken { cluster }) = &args.action {
        let data_dir = data_dir_of(&args.config)?;
        let mut token = String::new();
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut token)
            .context("reading the token from stdin")?;
        let token = token.trim();
        anyhow::ensure!(!token.is_empty(), "give the cluster's token on stdin");
        println!("{}", shoal_proxy::seal_token(&data_dir, cluster, token)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (config, data_dir) = ProxyConfig::load(&args.config)?;
    let (bind, port) = (config.bind, config.port);
    let proxy = Proxy::open(config, data_dir).await?;
    proxy.bootstrap_admin().await?;
    let listener = tokio::net::TcpListener::bind((bind, port))
        .await
        .with_context(|| format!("listening on {bind}:{port}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("shoal proxy listening on {url}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let extra = crate::server::mcp_router(&url).merge(shoal_ui::router(args.ui_dir.clone()));
    proxy
        .serve(listener, extra, crate::server::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// The data dir a config names (or its default), without reading the rest of it: a
/// token can be sealed before the config is complete.
fn data_dir_of(config: &std::path::Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(config).unwrap_or_default();
    let table: toml::Table = toml::from_str(&text).unwrap_or_default();
    let base = config.parent().unwrap_or(std::path::Path::new("."));
    Ok(match table.get("data-dir").and_then(|v| v.as_str()) {
        Some(d) if std::path::Path::new(d).is_absolute() => PathBuf::from(d),
        Some(d) => base.join(d),
        None => base.join("proxy-data"),
    })
}
