//! The data directory: `db/` is the RocksDB database (column family `wal`
//! for the sale log, and those its callers keep beside it: the server's
//! accounts, sessions, audit log and settings), `snapshots/` holds the
//! shard's snapshots.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ingressoja_snapshots::SnapshotDir;
use ingressoja_snapshots::durable::create_dir_durably;
use ingressoja_wal::{RocksStore, open_db};
use rocksdb::DB;

/// The column family of the sale log.
pub const WAL_FAMILY: &str = "wal";

/// The column family where the Raft log keeps what it says about the sale
/// log's records (the wal's side keyspace: entries' terms, the vote).
pub const RAFT_FAMILY: &str = "raft";

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory at `root` (created when missing, durably: its
    /// name survives a power cut, see `ingressoja_snapshots::durable`).
    pub fn create(root: impl Into<PathBuf>) -> io::Result<DataDir> {
        let root = root.into();
        create_dir_durably(&root)?;
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

    /// Opens the database with the sale log's column family, the caller's
    /// `families` beside it, and every family it already has (RocksDB
    /// opens a database for writing only with all of them).
    pub fn open_db(&self, families: &[&str]) -> io::Result<Arc<DB>> {
        let mut all = vec![WAL_FAMILY, RAFT_FAMILY];
        all.extend(
            families
                .iter()
                .copied()
                .filter(|f| *f != WAL_FAMILY && *f != RAFT_FAMILY),
        );
        // RocksDB syncs the names inside its directory, not the
        // directory's own name in ours.
        create_dir_durably(&self.db_path())?;
        open_db(&self.db_path(), &all)
    }

    /// The sale log's store in `db`.
    pub fn wal_store(db: Arc<DB>) -> io::Result<RocksStore> {
        RocksStore::with_side(db, WAL_FAMILY, RAFT_FAMILY)
    }

    /// The snapshot directory, keeping the newest `keep`.
    pub fn snapshots(&self, keep: usize) -> io::Result<SnapshotDir> {
        SnapshotDir::open(self.snapshots_path(), keep)
    }
}
