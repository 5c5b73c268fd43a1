//! `shoal plugins list | install | new`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use shoal_runtime::PluginOrigin;

use crate::app::{DataDir, load_policy, open_registry};

#[derive(Debug, Clone, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin version with its WIT version and granted capabilities.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Validate a plugin (directory with shoal-plugin.toml, or the manifest itself) and
    /// add it to the local plugin store.
    Install { path: PathBuf },
    /// Make an installed version the active one (with --server).
    Activate { id: String, version: String },
    /// Go back to the version the last activation replaced (with --server).
    Rollback { id: String },
    /// Create a new plugin project from the template.
    New {
        /// Task type id: lower-case letters, digits, `-`, `_`.
        name: String,
        /// Directory to create [default: ./NAME]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Path of the shoal-sdk crate the project depends on [default: this checkout's sdk/]
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

pub async fn run(
    cmd: PluginsCommand,
    data: &DataDir,
    policy: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginsCommand::List { json } => {
            let registry = open_registry(data, load_policy(data, policy)?)?;
            let listing = registry.list();
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header([
                "id",
                "version",
                "wit",
                "capabilities",
                "source",
                "active",
                "description",
            ]);
            for p in listing {
                let mut caps = p.capabilities.join(", ");
                if !p.http_hosts.is_empty() {
                    caps.push_str(&format!(" ({})", p.http_hosts.join(", ")));
                }
                table.add_row([
                    p.id,
                    p.version.to_string(),
                    p.wit.to_string(),
                    if caps.is_empty() { "-".into() } else { caps },
                    match p.origin {
                        PluginOrigin::Builtin => "built-in".into(),
                        PluginOrigin::Installed(dir) => dir.display().to_string(),
                    },
                    if p.active { "yes".into() } else { "".into() },
                    p.description,
                ]);
            }
            println!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        PluginsCommand::Activate { .. } | PluginsCommand::Rollback { .. } => {
            anyhow::bail!(
                "choosing the active version is a server's job (new tasks there use it): give --server URL"
            )
        }
        PluginsCommand::Install { path } => {
            let registry = open_registry(data, load_policy(data, policy)?)?;
            let plugin = registry.install(&path).await?;
            println!(
                "installed {} {} (shoal:task@{}, {}, capabilities: {})",
                plugin.manifest.id,
                plugin.manifest.version,
                plugin.wit_version,
                plugin.execution_class(),
                {
                    let names = plugin.grant.names();
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                }
            );
            for wanted in &plugin.info.capabilities {
                if !plugin.grant.names().contains(&wanted.as_str()) {
                    eprintln!(
                        "warning: the plugin says it uses `{wanted}`, which it is not granted; tasks that need it will fail with \"capability denied\""
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginsCommand::New { name, dir, sdk } => {
            new_project(&name, dir, sdk)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/plugin/Cargo.toml.tmpl"),
    ),
    (
        "shoal-plugin.toml",
        include_str!("../../templates/plugin/shoal-plugin.toml.tmpl"),
    ),
    (
        "rust-toolchain.toml",
        include_str!("../../templates/plugin/rust-toolchain.toml.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/plugin/gitignore.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../templates/plugin/README.md.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/plugin/src/lib.rs.tmpl"),
    ),
];

fn new_project(name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    anyhow::ensure!(
        valid,
        "plugin name `{name}` must start with a lower-case letter and contain only lower-case letters, digits, `-` and `_`"
    );
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    anyhow::ensure!(
        !dir.exists()
            || dir
                .read_dir()
                .map(|mut d| d.next().is_none())
                .unwrap_or(false),
        "{} already exists and is not empty",
        dir.display()
    );
    let sdk = match sdk {
        Some(p) => p,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"),
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("shoal-sdk not found at {} (pass --sdk PATH)", sdk.display()))?;
    let crate_name = name.replace('_', "-");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{crate_file}}", &crate_name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{wit}}", "0.1.0")
    };
    for (file, text) in TEMPLATE {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, fill(text)).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} in {}", name, dir.display());
    println!(
        "build it:    cd {} && cargo build --release --target wasm32-wasip2",
        dir.display()
    );
    println!("install it:  shoal plugins install {}", dir.display());
    println!("run it:      shoal task run --type {name} --params '{{\"who\":\"world\"}}'");
    Ok(())
}
