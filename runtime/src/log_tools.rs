//! `ingressoja wal verify` walks the whole hash chain and names the first
//! bad batch; `ingressoja wal inspect` prints records readably.

use std::io::Write;
use std::path::Path;

use ingressoja_wal::format::decode_batch;
use ingressoja_wal::{
    ChainSummary, LogStore, RocksStore, VerifyError, open_db_read_only, read_from, verify,
};

use crate::LogEntry;
use crate::data_dir::WAL_FAMILY;

/// Opens the log of a database directory without changing it.
pub fn open_read_only(db_path: &Path) -> std::io::Result<RocksStore> {
    // Read-only, RocksDB opens the families asked for and no others.
    RocksStore::new(open_db_read_only(db_path, &[WAL_FAMILY])?, WAL_FAMILY)
}

/// Why a log tool failed.
#[derive(Debug, thiserror::Error)]
pub enum LogToolError {
    /// The database or the output could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The log is damaged or its chain broken (the first bad batch named).
    #[error(transparent)]
    Broken(#[from] VerifyError),
}

/// Verifies the whole chain of the log in `db_path`, with a progress bar.
pub fn verify_log(db_path: &Path) -> Result<ChainSummary, LogToolError> {
    let store = open_read_only(db_path)?;
    let bar = crate::progress::bar(last_seq(&store)?.max(1), "verifying the log");
    let summary = verify(&store, |seq| bar.set_position(seq));
    bar.finish_and_clear();
    Ok(summary?)
}

/// The last sequence number in a log (0 if empty or unreadable at the tail).
pub fn last_seq(store: &RocksStore) -> std::io::Result<u64> {
    let last = store.at_or_before(u64::MAX)?;
    Ok(last
        .and_then(|(_, bytes)| decode_batch(&bytes).ok())
        .map_or(0, |(body, _)| body.last_seq()))
}

/// Prints up to `limit` records from `from` on.
pub fn inspect(
    db_path: &Path,
    from: u64,
    limit: u64,
    out: &mut dyn Write,
) -> Result<(), LogToolError> {
    let store = open_read_only(db_path)?;
    for record in read_from(&store, from).take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        let record = record?;
        let entry = match LogEntry::decode(&record.payload) {
            Ok(LogEntry::EventCreated { event, config }) => {
                format!(
                    "event {} created: {:?} at {:?}",
                    event.0, config.name, config.venue
                )
            }
            Ok(LogEntry::Transition { event, transition }) => {
                format!("event {} {:?}", event.0, transition)
            }
            Ok(LogEntry::RequestedTransition {
                event,
                transition,
                from,
            }) => format!("event {} {:?} from {from}", event.0, transition),
            Ok(LogEntry::PaymentStarted { payment, .. }) => {
                format!("event {} payment started: {payment:?}", payment.event.0)
            }
            Ok(LogEntry::PaymentSettled {
                payment,
                settlement,
            }) => format!(
                "event {} payment {} settled: {settlement:?}",
                payment.event.0, payment.payment_ref
            ),
            Ok(LogEntry::Attached(bytes)) => {
                format!("shared state change ({} bytes)", bytes.len())
            }
            Err(error) => format!("(undecodable payload: {error})"),
        };
        writeln!(
            out,
            "{:>10}  {}  {entry}",
            record.seq,
            format_time(record.timestamp_ms)
        )?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC, without a date library.
pub fn format_time(ms: u64) -> String {
    let days = ms / 86_400_000;
    let in_day = ms % 86_400_000;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_time(1_796_155_200_123), "2026-12-01 20:00:00.123");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00.000");
    }
}
