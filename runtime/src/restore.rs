//! Point-in-time restore: a backup copied into a new data directory, its log
//! cut after a chosen sequence number or instant, snapshots beyond that point
//! removed, and the result recovered and checked before it is reported good.
//!
//! A cluster member's backup (a Raft log of several voters) may end in
//! records its group never committed: a leader writes its batch before the
//! others have it, and a cut-off or dying leader's tail is never
//! acknowledged and is dropped by the next leader. Restored as it is onto a
//! cluster, that tail would be committed by the restored node when it leads
//! — changes nobody was told were made. So a member's backup is restored to
//! its last *known* commit at most (the commit its log recorded, its purge
//! mark or group snapshot, or what a state applied only once committed
//! says it applied, whichever is furthest); the records after it are left
//! out and counted. The other nodes of the restored cluster start empty and
//! copy the sale from the restored one (docs/REPLICATION.md, "Restoring a
//! whole cluster"). A single node's log (a group of one voter) commits what
//! it flushes: restored whole, as before.

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
    /// A cluster member's backup (restored to its known commit at most).
    pub member: bool,
    /// Records after the member's known commit, left out (none for a single
    /// node's backup).
    pub uncommitted_left_out: u64,
    /// Events in the restored state.
    pub events: usize,
    /// Tickets sold in the restored state.
    pub tickets_sold: u64,
}

/// Restores `backup` into the new data directory `data`.
pub fn restore(backup: &Path, data: &Path, until: Until) -> Result<RestoreSummary, BackupError> {
    restore_with(backup, data, until, 0)
}

/// [`restore`], told that a state kept beside the log in the backup (one
/// applied only once committed: the server's accounts) had applied through
/// record `applied_beside`, which a member's restore then keeps at least.
pub fn restore_with(
    backup: &Path,
    data: &Path,
    until: Until,
    applied_beside: u64,
) -> Result<RestoreSummary, BackupError> {
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
    let known = ingressoja_cluster::wal_log::known_commit(&store)?;
    let (mut wal, opened) =
        Wal::open(store, 0, |_| Ok(())).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let asked = match until {
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
    let member = known.filter(|k| k.voters > 1);
    let (restored_seq, uncommitted_left_out) = match &member {
        None => (asked, 0),
        Some(known) => {
            let committed = known.seq.max(applied_beside).min(opened.last_seq);
            if asked < known.compacted {
                return Err(BackupError::Invalid(format!(
                    "this cluster member's Raft log was compacted through record {}: \
                     it restores to that record or later, not to {asked} \
                     (an older backup goes further back)",
                    known.compacted
                )));
            }
            (asked.min(committed), opened.last_seq - committed)
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
        member: member.is_some(),
        uncommitted_left_out,
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
