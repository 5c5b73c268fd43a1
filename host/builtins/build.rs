//! Builds the built-in task types (`plugins/*`) for `wasm32-wasip2` and generates
//! `builtins.rs`, which embeds each component and its manifest in the binary, so a
//! built `shoal` is all a user needs.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let plugins_dir = root.join("plugins");
    for watched in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let mut names: Vec<String> = std::fs::read_dir(&plugins_dir)
        .expect("plugins/ exists")
        .flatten()
        .filter(|e| e.path().join("shoal-plugin.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();

    ensure_wasm_target();
    // A target dir of its own: the outer cargo holds the lock on the main one.
    let target_dir = root.join("target").join("wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&plugins_dir)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .stdout(Stdio::null());
    for name in &names {
        build.args(["-p", name]);
    }
    // Flags and wrappers meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("running cargo for the built-in plugins");
    assert!(
        status.success(),
        "building the built-in plugins for {TARGET} failed"
    );

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let mut code =
        String::from("/// (manifest TOML, component bytes) of every built-in task type.\n");
    code.push_str("pub const BUILTIN_PLUGINS: &[(&str, &[u8])] = &[\n");
    for name in &names {
        let wasm = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let embedded = out.join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &embedded)
            .unwrap_or_else(|e| panic!("copying {}: {e}", wasm.display()));
        let manifest = plugins_dir.join(name).join("shoal-plugin.toml");
        writeln!(
            code,
            "    (include_str!({:?}), include_bytes!({:?})),",
            manifest.display().to_string(),
            embedded.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("builtins.rs"), code).unwrap();
}

/// rustup installs a toolchain's targets only when it installs the toolchain; a
/// machine that already had 1.95 needs the wasm target added once.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_deref().is_some_and(Path::is_dir) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!(
            "cargo:warning=the {TARGET} target is missing and `rustup target add {TARGET}` failed"
        );
    }
}
