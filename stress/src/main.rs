//! `ingressoja-stress`: a drop against a running server (see the library's
//! documentation). Prints a table and writes a JSON summary; exits non-zero
//! when the final consistency check fails.

use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ingressoja_stress::fairness::{Arrival, Behaviour, FairnessOptions, Population};
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
    /// Instead of a drop: measure who gets the tickets of `--event` (one
    /// ticket type, no two-factor, made for the run) when `--fast` fans,
    /// `--slow` fans `--slow-rtt-ms` away and `--bots` accounts behind one
    /// address arrive in the pre-queue (`prequeue`) or in the first second
    /// after opening (`after-opening`). Each fan connects from an address
    /// of its own in 127.0.0.0/8. Prints the report (shares with 95%
    /// intervals, median place, time to learn the turn).
    #[arg(long, value_parser = ["prequeue", "after-opening"])]
    fairness: Option<String>,
    /// Fans next to the server (fairness).
    #[arg(long, default_value_t = 300)]
    fast: u32,
    /// Fans far from it (fairness).
    #[arg(long, default_value_t = 300)]
    slow: u32,
    /// The far fans' round trip, in milliseconds (fairness).
    #[arg(long, default_value_t = 155)]
    slow_rtt_ms: u64,
    /// Bot accounts behind one address (fairness).
    #[arg(long, default_value_t = 0)]
    bots: u32,
    /// How often a bot polls its place, in milliseconds (fairness).
    #[arg(long, default_value_t = 50)]
    bot_poll_ms: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let options = Options {
        addr: args.addr.clone(),
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
    if let Some(arrival) = &args.fairness {
        return fairness(&args, arrival);
    }
    let bar = indicatif::ProgressBar::new(options.fans);
    let progress_bar = bar.clone();
    let Some(tokio) = async_runtime() else {
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
    let Some(tokio) = async_runtime() else {
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

fn fairness(args: &Args, arrival: &str) -> std::process::ExitCode {
    let fans = |name: &str, accounts, rtt_ms| Population {
        name: name.into(),
        accounts,
        rtt: std::time::Duration::from_millis(rtt_ms),
        behaviour: Behaviour::Fan,
    };
    let mut populations = vec![
        fans("fast", args.fast, 0),
        fans("slow", args.slow, args.slow_rtt_ms),
    ];
    if args.bots > 0 {
        populations.push(Population {
            name: "bots".into(),
            accounts: args.bots,
            rtt: std::time::Duration::ZERO,
            behaviour: Behaviour::Bot {
                poll_ms: args.bot_poll_ms,
            },
        });
    }
    let options = FairnessOptions {
        addr: args.addr.clone(),
        event: args.event,
        populations,
        arrival: if arrival == "prequeue" {
            Arrival::PreQueue
        } else {
            Arrival::AfterOpening { within_ms: 1_000 }
        },
        seed: args.seed,
        deadline: std::time::Duration::from_secs(600),
    };
    let Some(tokio) = async_runtime() else {
        return std::process::ExitCode::FAILURE;
    };
    match tokio.block_on(ingressoja_stress::fairness::run(options)) {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report.json).unwrap_or_default();
            println!("{text}");
            if let Err(error) = std::fs::write(&args.summary, &text) {
                eprintln!("cannot write {}: {error}", args.summary.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ingressoja-stress: {}", error.0);
            std::process::ExitCode::FAILURE
        }
    }
}

/// The multi-threaded async runtime every mode runs on (`None`, said on
/// stderr, when it cannot start).
fn async_runtime() -> Option<tokio::runtime::Runtime> {
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    if let Err(error) = &built {
        eprintln!("cannot start the async runtime: {error}");
    }
    built.ok()
}
