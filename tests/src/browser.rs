//! What the browser tests need: node, Debian's Chromium and ui/'s playwright-core
//! (`npm ci` in ui/; tests/run.sh provides all three, installing Chromium under CI).
//! Missing, they are skipped loudly, and under `CI=true` that is a failure.

use std::path::PathBuf;

pub struct Tools {
    pub node: PathBuf,
    pub chromium: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Node, Chromium and playwright-core, or None (after saying loudly what is missing).
pub fn tools() -> Option<Tools> {
    let root = crate::repo_root();
    let node = on_path("node");
    let chromium = std::env::var_os("SHOAL_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| on_path("chromium"))
        .filter(|p| p.is_file());
    let playwright = root.join("ui/node_modules/playwright-core/package.json");
    let missing: Vec<&str> = [
        (node.is_none(), "node"),
        (
            chromium.is_none(),
            "chromium (set SHOAL_CHROMIUM or install Debian's chromium)",
        ),
        (
            !playwright.is_file(),
            "ui/node_modules (run `npm ci` in ui/)",
        ),
    ]
    .into_iter()
    .filter_map(|(gone, what)| gone.then_some(what))
    .collect();
    if missing.is_empty() {
        return Some(Tools {
            node: node.unwrap(),
            chromium: chromium.unwrap(),
        });
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the browser tests lack {} (tests/run.sh installs them)",
            missing.join(", ")
        );
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! SKIPPED: web UI browser tests: missing {}\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
        missing.join(", ")
    );
    None
}

/// Run `ui/tests/<script>` with node against `url`, signed in with `token`; its stdout,
/// after asserting it passed (with `context` in the failure message).
pub fn run(
    tools: &Tools,
    script: &str,
    url: &str,
    token: &str,
    extra: &[(&str, String)],
    context: impl Fn() -> String,
) -> String {
    let root = crate::repo_root();
    let out = std::process::Command::new(&tools.node)
        .arg(root.join("ui/tests").join(script))
        .current_dir(root.join("ui"))
        .env("SHOAL_URL", url)
        .env("SHOAL_TOKEN", token)
        .env("SHOAL_CHROMIUM", &tools.chromium)
        .env("SHOAL_SCREENSHOTS", root.join("target/ui-screenshots"))
        .env("SHOAL_REPO", &root)
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all browser checks passed"),
        "the browser run ({script}) failed:\n{stdout}\n{stderr}\n{}",
        context()
    );
    stdout
}
