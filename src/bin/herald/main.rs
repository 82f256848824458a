//! The `herald` binary: command line → logging → config → command. The only place `anyhow` is
//! used; errors print as one line (`error: …`) and exit 1, never as a backtrace.

#[cfg(feature = "bench")]
mod bench;
mod cli;

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: per-event buffers are small and short-lived, and glibc's
/// malloc/free were a quarter of herald's instructions per W1 event (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = cli::Args::parse();
    init_logging();
    let runtime = match runtime().and_then(|mut b| b.build().map_err(|e| e.to_string())) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    // Do not wait for stray blocking tasks (a pending stdin read, a slow DNS lookup).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

/// One thread by default: herald's work is short steps between Redis round trips, and on a
/// current-thread runtime a worker's wake-up never crosses threads (W1, callgrind: 26.4k -> 25.7k
/// instructions per event, and no cross-thread wake-ups). Scale out with processes;
/// `HERALD_THREADS=N` (N > 1) runs a multi-thread runtime with N worker threads instead.
fn runtime() -> Result<tokio::runtime::Builder, String> {
    let threads = match std::env::var("HERALD_THREADS") {
        Err(_) => 1,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "HERALD_THREADS: expected a positive integer, got {v:?}"
                ));
            }
        },
    };
    let mut builder = if threads > 1 {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all();
    Ok(builder)
}

/// `RUST_LOG` filters (default `info`); `HERALD_LOG_FORMAT=json|pretty`, json when stderr is not
/// a terminal.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("HERALD_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}
