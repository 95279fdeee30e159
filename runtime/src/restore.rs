//! Point-in-time restore: a backup copied into a new data directory, its log
//! cut after a chosen sequence number or instant, snapshots beyond that point
//! removed, and the result recovered and checked before it is reported good.

use std::fs;
use std::io;
use std::path::Path;

use ingressoja_snapshots::durable::{copy_durably, create_dir_durably, sync_dir};
use ingressoja_wal::Wal;

use crate::{DataDir, recovery};

use super::backup::BackupError;

/// How much of the backup to restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Everything in the backup.
    End,
    /// Up to and including this log sequence number.
    Seq(u64),
    /// Up to and including the last record stamped at or before this instant
    /// (ms since the epoch).
    Time(u64),
}

/// What a restore produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The last sequence number in the backup.
    pub backup_last_seq: u64,
    /// The last sequence number restored.
    pub restored_seq: u64,
    /// Events in the restored state.
    pub events: usize,
    /// Tickets sold in the restored state.
    pub tickets_sold: u64,
}

/// Restores `backup` into the new data directory `data`.
pub fn restore(backup: &Path, data: &Path, until: Until) -> Result<RestoreSummary, BackupError> {
    if data.exists() && fs::read_dir(data)?.next().is_some() {
        return Err(BackupError::TargetNotEmpty(data.display().to_string()));
    }
    let target = DataDir::create(data)?;
    let files = count_files(&backup.join("db"))? + count_files(&backup.join("snapshots"))?;
    let bar = crate::progress::bar(files, "copying the backup");
    copy_dir(&backup.join("db"), &target.db_path(), &bar)?;
    copy_dir(&backup.join("snapshots"), &target.snapshots_path(), &bar)?;
    bar.finish_and_clear();

    let store = DataDir::wal_store(target.open_db(&[])?)?;
    let (mut wal, opened) =
        Wal::open(store, 0, |_| Ok(())).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let restored_seq = match until {
        Until::End => opened.last_seq,
        Until::Seq(seq) => seq.min(opened.last_seq),
        Until::Time(at_ms) => {
            let mut last = 0;
            for record in wal.read_from(1) {
                let record = record.map_err(|e| BackupError::Invalid(e.to_string()))?;
                if record.timestamp_ms > at_ms {
                    break;
                }
                last = record.seq;
            }
            last
        }
    };
    if restored_seq < opened.last_seq {
        wal.truncate_after(restored_seq)
            .map_err(|e| BackupError::Invalid(e.to_string()))?;
    }
    drop(wal);
    let snapshots = target.snapshots(usize::MAX)?;
    snapshots.remove_after(restored_seq)?;

    let store = DataDir::wal_store(target.open_db(&[])?)?;
    let (state, report) = recovery::replay_whole_log(store, &snapshots)
        .map_err(|e| BackupError::Invalid(e.to_string()))?;
    Ok(RestoreSummary {
        backup_last_seq: opened.last_seq,
        restored_seq: report.last_seq,
        events: state.events.len(),
        tickets_sold: state
            .check_invariants()
            .map_err(|broken| BackupError::Invalid(broken.to_string()))?,
    })
}

/// Copies directory `from` to `to`, every file and name synced.
fn copy_dir(from: &Path, to: &Path, bar: &indicatif::ProgressBar) -> io::Result<()> {
    create_dir_durably(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()), bar)?;
        } else {
            copy_durably(&path, &to.join(entry.file_name()))?;
            bar.inc(1);
        }
    }
    sync_dir(to)
}

fn count_files(dir: &Path) -> io::Result<u64> {
    let mut count = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        count += if entry.file_type()?.is_dir() {
            count_files(&entry.path())?
        } else {
            1
        };
    }
    Ok(count)
}
