//! The web UI in a real browser: `ui/tests/browser.mjs` drives Debian's Chromium
//! (headless, through playwright-core from ui/'s lockfile) against a real `shoal server`
//! on 127.0.0.1 started here. Screenshots of every page land in `target/ui-screenshots/`.
//!
//! Needs node, `ui/node_modules` and Chromium (see `shoal_tests::browser`).

use shoal_tests::browser::tools;
use shoal_tests::server::Server;

const ADMIN: &str = "shoal_ui-test-admin-token";

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

    // This run's pages (the proxy's browser test keeps its own under proxy/).
    let screenshots = root.join("target/ui-screenshots");
    for e in std::fs::read_dir(&screenshots)
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "png") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    shoal_tests::browser::run(
        &tools,
        "browser.mjs",
        &server.url,
        ADMIN,
        &[("SHOAL_PLUGIN_DIR", plugins.display().to_string())],
        || format!("--- server log ---\n{}", server.log()),
    );
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
