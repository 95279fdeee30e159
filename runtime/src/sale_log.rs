//! Reading the sale log while the sale runs: a read-only view of its
//! column family, so that nothing outside the writer can append to (or cut)
//! the log it reads.

use std::io;
use std::sync::Arc;

use ingressoja_wal::{LogStore, RocksStore};

use crate::data_dir::DataDir;

/// See the module documentation. It reads what is written (durable or
/// about to be: a reader of batches may see the group commit in flight).
pub struct SaleLog(RocksStore);

impl SaleLog {
    /// The sale log of `db` (opened with [`DataDir::open_db`]).
    pub fn open(db: Arc<rocksdb::DB>) -> io::Result<SaleLog> {
        DataDir::wal_store(db).map(SaleLog)
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the sale log is read-only here",
    )
}

impl LogStore for SaleLog {
    fn write_synced(
        &mut self,
        _batch: Option<(u64, &[u8])>,
        _side: &[ingressoja_wal::SideWrite],
    ) -> io::Result<()> {
        Err(read_only())
    }

    fn side_get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.0.side_get(key)
    }

    fn side_range(&self, from: &[u8], to: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.side_range(from, to)
    }

    fn side_last(&self, from: &[u8], to: &[u8]) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.0.side_last(from, to)
    }

    fn delete_from(&mut self, _from: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn reset_synced(&mut self, _side: &[ingressoja_wal::SideWrite]) -> io::Result<()> {
        Err(read_only())
    }

    fn at_or_before(&self, key: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        self.0.at_or_before(key)
    }

    fn scan_from(&self, from: u64) -> Box<dyn Iterator<Item = io::Result<(u64, Vec<u8>)>> + '_> {
        self.0.scan_from(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sale_log_cannot_be_written_through_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let db = DataDir::create(dir.path()).unwrap().open_db(&[]).unwrap();
        let mut log = SaleLog::open(db).unwrap();
        assert_eq!(
            log.put_synced(1, b"x").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert_eq!(
            log.delete_from(0).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(log.at_or_before(u64::MAX).unwrap().is_none());
    }
}
