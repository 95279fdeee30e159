//! `ingressoja`: one binary, one subcommand per job: the demo drop that
//! `make run` plays, backups, point-in-time restore and the log tools. The
//! sale server (`serve`), `audit` and `admin` join it in later issues.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ingressoja::{demo, ops};

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
    /// Backups of the data directory.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restores a backup into a new data directory, optionally to a point in time.
    Restore {
        /// The backup directory.
        backup: PathBuf,
        /// The new data directory (must not exist or be empty).
        #[arg(long)]
        data: PathBuf,
        /// Restore up to and including this log sequence number.
        #[arg(long, conflicts_with = "until_time")]
        until_seq: Option<u64>,
        /// Restore up to this instant, in ms since the epoch.
        #[arg(long)]
        until_time: Option<u64>,
    },
    /// Reads the write-ahead log.
    #[command(subcommand)]
    Wal(WalCommand),
    /// Load for the crash tests: runs until killed, logging acknowledgements.
    #[command(hide = true)]
    CrashLoad {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Where acknowledged holds and purchases are appended.
        #[arg(long)]
        acks: PathBuf,
        /// Seeds the fans' choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Writes a consistent backup of a stopped server's data directory.
    Create {
        /// Where to write it (must not exist or be empty).
        dir: PathBuf,
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Checks a backup: the whole hash chain, then a full recovery.
    Verify {
        /// The backup directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum WalCommand {
    /// Walks the whole hash chain and names the first bad batch.
    Verify {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
    },
    /// Prints records readably.
    Inspect {
        /// The data directory.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// The first sequence number to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// How many records to print.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn backup(command: BackupCommand) -> CliResult {
    match command {
        BackupCommand::Create { dir, data } => {
            ops::backup::create_offline_backup(&data, &dir)?;
            let summary = ops::backup::verify_backup(&dir)?;
            println!(
                "backup written to {} (log up to sequence {})",
                dir.display(),
                summary.last_seq
            );
        }
        BackupCommand::Verify { dir } => {
            let s = ops::backup::verify_backup(&dir)?;
            println!(
                "backup OK: {} batches up to sequence {}, {} snapshots, {} events, {} tickets sold",
                s.batches, s.last_seq, s.snapshots, s.events, s.tickets_sold
            );
        }
    }
    Ok(())
}

fn restore(
    backup: PathBuf,
    data: PathBuf,
    until_seq: Option<u64>,
    until_time: Option<u64>,
) -> CliResult {
    let until = match (until_seq, until_time) {
        (Some(seq), _) => ops::restore::Until::Seq(seq),
        (None, Some(at)) => ops::restore::Until::Time(at),
        (None, None) => ops::restore::Until::End,
    };
    let s = ops::restore::restore(&backup, &data, until)?;
    println!(
        "restored {} up to sequence {} (the backup goes to {}): {} events, {} tickets sold",
        data.display(),
        s.restored_seq,
        s.backup_last_seq,
        s.events,
        s.tickets_sold
    );
    Ok(())
}

fn wal(command: WalCommand) -> CliResult {
    match command {
        WalCommand::Verify { data } => {
            let db = ingressoja::runtime::DataDir::create(&data)?.db_path();
            let s = ops::log_tools::verify_log(&db)?;
            println!(
                "log OK: {} batches, {} records, up to sequence {}",
                s.batches, s.records, s.last_seq
            );
        }
        WalCommand::Inspect { data, from, limit } => {
            let db = ingressoja::runtime::DataDir::create(&data)?.db_path();
            ops::log_tools::inspect(&db, from, limit, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr; RUST_LOG-style filtering arrives with the server.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Demo { seed } => demo::run(seed, &mut std::io::stdout().lock()),
        Command::CrashLoad { data, acks, seed } => ingressoja::crash_load::run(&data, &acks, seed),
        Command::Backup(command) => backup(command),
        Command::Restore {
            backup,
            data,
            until_seq,
            until_time,
        } => restore(backup, data, until_seq, until_time),
        Command::Wal(command) => wal(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ingressoja: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
