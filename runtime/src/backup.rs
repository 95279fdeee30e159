//! Backups: a directory holding a RocksDB checkpoint of the database (the
//! log) and copies of the snapshots, taken while the sale runs.
//!
//! Consistency comes from the order: snapshot files are copied first, then
//! the checkpoint is taken. A snapshot is only ever written once the log is
//! durable past it, so every copied snapshot is covered by the checkpoint's
//! log, and restoring replays the log from the snapshot on.

use std::fs;
use std::io;
use std::path::Path;

use ingressoja_snapshots::SnapshotDir;
use ingressoja_snapshots::durable::{copy_durably, create_dir_durably, sync_dir};
use rocksdb::DB;
use rocksdb::checkpoint::Checkpoint;

use crate::DataDir;
use crate::recovery::{self, ShardState};

use super::log_tools::{open_read_only, verify_log};

/// What a backup holds, as checked by [`verify_backup`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupSummary {
    /// The last log sequence number in the backup.
    pub last_seq: u64,
    /// Batches in the backup's log.
    pub batches: u64,
    /// Snapshots in the backup.
    pub snapshots: usize,
    /// Events recovered from it.
    pub events: usize,
    /// Tickets sold across those events.
    pub tickets_sold: u64,
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file system failed.
    #[error("backup I/O: {0}")]
    Io(#[from] io::Error),
    /// RocksDB refused the checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The target exists and is not empty.
    #[error("{0} exists and is not empty: choose a new directory")]
    TargetNotEmpty(String),
    /// The backup does not check out.
    #[error("the backup is not valid: {0}")]
    Invalid(String),
}

/// Creates a backup of a live database `db` and its snapshots in `target`.
pub fn create_backup(db: &DB, snapshots: &Path, target: &Path) -> Result<(), BackupError> {
    if target.exists() && fs::read_dir(target)?.next().is_some() {
        return Err(BackupError::TargetNotEmpty(target.display().to_string()));
    }
    // A backup said done survives a power cut: its directories, its copies
    // and the checkpoint's name are all synced.
    create_dir_durably(&target.join("snapshots"))?;
    for entry in fs::read_dir(snapshots)? {
        let path = entry?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        if name.to_string_lossy().starts_with('.') {
            continue; // a snapshot being written
        }
        match copy_durably(&path, &target.join("snapshots").join(name)) {
            Ok(_) => {}
            // Pruned while we copied: the newer ones are there.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
    }
    let checkpoint = Checkpoint::new(db).map_err(|e| BackupError::Checkpoint(e.into_string()))?;
    sync_dir(&target.join("snapshots"))?;
    checkpoint
        .create_checkpoint(target.join("db"))
        .map_err(|e| BackupError::Checkpoint(e.into_string()))?;
    // RocksDB syncs the checkpoint's files, not its name in `target`.
    sync_dir(target)?;
    Ok(())
}

/// Creates a backup of a stopped server's data directory.
pub fn create_offline_backup(data: &Path, target: &Path) -> Result<(), BackupError> {
    let data = DataDir::create(data)?;
    let db = data.open_db(&[])?;
    create_backup(&db, &data.snapshots_path(), target)
}

/// Checks a backup without changing it: the whole hash chain, then a full
/// recovery (newest valid snapshot plus log) with every invariant checked.
pub fn verify_backup(backup: &Path) -> Result<BackupSummary, BackupError> {
    let db_path = backup.join("db");
    let chain = verify_log(&db_path).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let snapshots = SnapshotDir::open(backup.join("snapshots"), usize::MAX)?;
    let snapshot_count = snapshots.list()?.len();
    let store = open_read_only(&db_path)?;
    let (state, report) = recover_read_only(store, &snapshots)?;
    Ok(BackupSummary {
        last_seq: report.last_seq,
        batches: chain.batches,
        snapshots: snapshot_count,
        events: state.events.len(),
        tickets_sold: state
            .check_invariants()
            .map_err(|broken| BackupError::Invalid(broken.to_string()))?,
    })
}

/// Recovery that never writes (a torn tail in a read-only backup is an
/// error here, since cutting it would mean writing).
fn recover_read_only(
    store: ingressoja_wal::RocksStore,
    snapshots: &SnapshotDir,
) -> Result<(ShardState, recovery::RecoveryReport), BackupError> {
    recovery::replay_whole_log(store, snapshots).map_err(|e| BackupError::Invalid(e.to_string()))
}
