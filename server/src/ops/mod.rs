//! Operators' tools behind the `ingressoja` subcommands: backups,
//! point-in-time restore, reading the log, administrators and the audit log.
//!
//! - `backup.rs`: `backup create` (online, consistent) and `backup verify`.
//! - `restore.rs`: `restore DIR --data PATH [--until-seq N | --until-time T]`.
//! - `log_tools.rs`: `wal verify` and `wal inspect`.
//! - `security_tools.rs`: `admin create`, `audit verify` and `audit export`.

pub mod backup;
pub mod log_tools;
pub mod restore;
pub mod security_tools;

/// A progress bar on stderr for long work (hidden when not a terminal).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(what.to_string());
    bar
}
