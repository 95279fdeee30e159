//! `ingressoja`: one binary, one subcommand per job. Today it has the demo
//! drop that `make run` plays; the sale server (`serve`) and the operators'
//! subcommands (backup, restore, wal, audit, admin) join it in later issues.

mod demo;

use clap::{Parser, Subcommand};

/// IngressoJa: ticket sales for high-demand drops.
#[derive(Parser)]
#[command(name = "ingressoja", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play a small drop through the event allocator and print what happens.
    Demo {
        /// Seeds the pre-queue draw and the fans' choices.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { seed } => demo::run(seed, &mut std::io::stdout().lock()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ingressoja: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
