//! The data directory: `db/` is the RocksDB database (column families `wal`
//! for the sale log, `accounts`, `sessions`, `audit` and `settings`),
//! `snapshots/` holds the shard's snapshots.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ingressoja_snapshots::SnapshotDir;
use ingressoja_wal::{RocksStore, open_db};
use rocksdb::DB;

/// Column families of the database; all are opened together.
pub const COLUMN_FAMILIES: &[&str] = &[
    WAL_FAMILY,
    crate::accounts::store::ACCOUNTS,
    crate::accounts::store::SESSIONS,
    crate::audit::AUDIT,
    SETTINGS_FAMILY,
];
/// Column family of server settings (per-event security settings, the
/// proof-of-work key).
pub const SETTINGS_FAMILY: &str = "settings";
/// The column family of the sale log.
pub const WAL_FAMILY: &str = "wal";

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory at `root` (created when missing).
    pub fn create(root: impl Into<PathBuf>) -> io::Result<DataDir> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(DataDir { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the RocksDB database lives.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("db")
    }

    /// Where snapshots live.
    pub fn snapshots_path(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Opens the database.
    pub fn open_db(&self) -> io::Result<Arc<DB>> {
        open_db(&self.db_path(), COLUMN_FAMILIES)
    }

    /// The sale log's store in `db`.
    pub fn wal_store(db: Arc<DB>) -> io::Result<RocksStore> {
        RocksStore::new(db, WAL_FAMILY)
    }

    /// The snapshot directory, keeping the newest `keep`.
    pub fn snapshots(&self, keep: usize) -> io::Result<SnapshotDir> {
        SnapshotDir::open(self.snapshots_path(), keep)
    }
}
