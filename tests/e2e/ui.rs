//! The web UI in a real browser: `ui/tests/browser.mjs` drives Debian's Chromium
//! (headless, through playwright-core from ui/'s lockfile) against a real `shoal server`
//! on 127.0.0.1 started here. Screenshots of every page land in `target/ui-screenshots/`.
//!
//! Needs node, `ui/node_modules` (`npm ci` in ui/) and Chromium; tests/run.sh provides
//! all three (installing Chromium under CI). Without them the test is skipped loudly, and
//! under `CI=true` it fails instead.

use std::path::PathBuf;
use std::process::Command;

use shoal_tests::server::Server;

const ADMIN: &str = "shoal_ui-test-admin-token";

struct Tools {
    node: PathBuf,
    chromium: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Node, Chromium and playwright-core, or None (skipped loudly; a failure under CI).
fn tools() -> Option<Tools> {
    let root = shoal_tests::repo_root();
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
         !! SKIPPED: the web UI browser tests: missing {}\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
        missing.join(", ")
    );
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_works_in_a_real_browser() {
    let Some(tools) = tools() else { return };
    let root = shoal_tests::repo_root();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), None, ADMIN).await;

    // Two versions of the testkit plugin to upload through the page.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let wasm = std::fs::read(shoal_tests::testkit_wasm()).unwrap();
    for (version, bytes) in [
        ("9.1.0", wasm.clone()),
        ("9.2.0", shoal_tests::with_custom_section(&wasm, "9.2.0")),
    ] {
        std::fs::write(
            plugins.join(format!("testkit-{version}.toml")),
            format!(
                "id = \"testkit\"\nversion = \"{version}\"\nwit = \"0.1.0\"\ncomponent = \"testkit.wasm\"\n\n[capabilities]\nprocess = true\nwork-dir = true\n"
            ),
        )
        .unwrap();
        std::fs::write(plugins.join(format!("testkit-{version}.wasm")), bytes).unwrap();
    }

    let screenshots = root.join("target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    let out = Command::new(&tools.node)
        .arg(root.join("ui/tests/browser.mjs"))
        .current_dir(root.join("ui"))
        .env("SHOAL_URL", &server.url)
        .env("SHOAL_TOKEN", ADMIN)
        .env("SHOAL_CHROMIUM", &tools.chromium)
        .env("SHOAL_SCREENSHOTS", &screenshots)
        .env("SHOAL_REPO", &root)
        .env("SHOAL_PLUGIN_DIR", &plugins)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        server.log()
    );
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
    for page in [
        "01-sign-in",
        "04-workflow-dag",
        "06-instance-dag",
        "07-task-log",
        "11-instances",
        "12-schedules",
        "14-plugins",
        "15-nodes",
    ] {
        let shot = screenshots.join(format!("{page}.png"));
        let bytes = std::fs::read(&shot).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "no screenshot at {}",
            shot.display()
        );
    }
}
