//! `ingressoja-stress`: a drop against a running server (see the library's
//! documentation). Prints a table and writes a JSON summary; exits non-zero
//! when the final consistency check fails.

use clap::Parser;
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
    /// Tickets on sale.
    #[arg(long, default_value_t = 5_000)]
    tickets: u32,
    /// Fans arrive within this many seconds.
    #[arg(long, default_value_t = 10)]
    spike_seconds: u64,
    /// Fans in flight at once.
    #[arg(long, default_value_t = 4_000)]
    concurrency: usize,
    /// The event's max active shoppers.
    #[arg(long, default_value_t = 2_000)]
    max_active: u32,
    /// The event's admissions per second.
    #[arg(long, default_value_t = 1_000)]
    admit_per_second: u32,
    /// Seeds the fans' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the JSON summary.
    #[arg(long, default_value = "stress-summary.json")]
    summary: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let options = Options {
        addr: args.addr,
        fans: args.fans,
        tickets: args.tickets,
        spike_seconds: args.spike_seconds,
        concurrency: args.concurrency,
        max_active: args.max_active,
        admit_per_second: args.admit_per_second,
        seed: args.seed,
    };
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
