//! `ingressoja-stress`: a drop against a running server (see the library's
//! documentation). Prints a table and writes a JSON summary; exits non-zero
//! when the final consistency check fails.

use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ingressoja_stress::watch::Watching;
use ingressoja_stress::{Options, run};

/// Simulates a whole drop against a running IngressoJa server.
#[derive(Parser)]
#[command(name = "ingressoja-stress", version, about)]
struct Args {
    /// The server (host:port), started in development mode with rate limits
    /// off for loopback clients or generous.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Virtual fans.
    #[arg(long, default_value_t = 10_000)]
    fans: u64,
    /// The event (made by an operator through the admin API, with
    /// `require_two_factor: false`).
    #[arg(long, default_value_t = 0)]
    event: u64,
    /// Fans arrive within this many seconds.
    #[arg(long, default_value_t = 10)]
    spike_seconds: u64,
    /// Fans in flight at once.
    #[arg(long, default_value_t = 4_000)]
    concurrency: usize,
    /// Seeds the fans' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Instead of a drop: hold this many streams of `--watch-event` open (a
    /// fan each with the sale's page open) until interrupted, printing how
    /// many are open and the messages received every second.
    #[arg(long)]
    watch: Option<u64>,
    /// The event the watchers watch.
    #[arg(long, default_value_t = 0)]
    watch_event: u64,
    /// Where to write the JSON summary.
    #[arg(long, default_value = "stress-summary.json")]
    summary: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let options = Options {
        addr: args.addr,
        fans: args.fans,
        event: args.event,
        spike_seconds: args.spike_seconds,
        concurrency: args.concurrency,
        seed: args.seed,
    };
    // Each fan holds a connection (two while waiting on its stream).
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("cannot raise the open-files limit: {error}");
    }
    if let Some(streams) = args.watch {
        return watch(&options.addr, args.watch_event, streams);
    }
    let bar = indicatif::ProgressBar::new(options.fans);
    let progress_bar = bar.clone();
    let Ok(tokio) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cannot start the async runtime");
        return std::process::ExitCode::FAILURE;
    };
    let result = tokio.block_on(run(options, move |done| progress_bar.set_position(done)));
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            let text = serde_json::to_string_pretty(&summary.json).unwrap_or_default();
            println!("{text}");
            if let Err(error) = std::fs::write(&args.summary, &text) {
                eprintln!("cannot write {}: {error}", args.summary.display());
            }
            if summary.consistent {
                std::process::ExitCode::SUCCESS
            } else {
                eprintln!("INCONSISTENT: see verification above");
                std::process::ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("ingressoja-stress: {}", error.0);
            std::process::ExitCode::FAILURE
        }
    }
}

fn watch(addr: &str, event: u64, streams: u64) -> std::process::ExitCode {
    let Ok(tokio) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cannot start the async runtime");
        return std::process::ExitCode::FAILURE;
    };
    let watching = Arc::new(Watching::default());
    let task = ingressoja_stress::watch::watch(addr.to_string(), event, streams, watching.clone());
    tokio.block_on(async move {
        let watchers = tokio::spawn(task);
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = every.tick() => println!(
                    "open {} messages {} failures {}",
                    watching.open.load(Ordering::Relaxed),
                    watching.messages.load(Ordering::Relaxed),
                    watching.failures.load(Ordering::Relaxed),
                ),
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        watchers.abort();
    });
    std::process::ExitCode::SUCCESS
}
