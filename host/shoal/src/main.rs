//! `shoal`: the command-line entry point. Everything here is wiring and presentation;
//! the work happens in the library crates under `host/`.

mod app;
mod bench;
mod bench_cluster;
mod bench_engine;
mod bench_flink;
mod bench_peers;
mod bench_proxy;
mod bench_server;
mod bench_subworkflow;
mod cli;
mod client;
mod server;

use clap::Parser;

/// glibc's malloc took a fifth of a busy master's CPU (its free-list upkeep above all);
/// mimalloc's per-thread heaps serve the engine's many small, short-lived allocations
/// (JSON values, strings, futures) for much less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
