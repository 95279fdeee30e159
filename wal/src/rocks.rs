//! The RocksDB store: one column family per log in a database shared with the
//! rest of the process's data (accounts, sessions and audit records get their
//! own column families later). Every batch is a single `put` with `sync`
//! on, so it is one memtable insert and one write-ahead-log append + fsync in
//! RocksDB: the group commit happens above, in the log writer.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::format::{key, seq_of_key};
use crate::store::LogStore;

/// Opens (creating if needed) the database at `path` with these column
/// families. Writes that say `sync` are fsynced through RocksDB's own
/// write-ahead log; after a crash it recovers to the last synced write.
pub fn open_db(path: &Path, column_families: &[&str]) -> io::Result<Arc<DB>> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // RocksDB opens a database for writing only with every family it has:
    // those asked for, plus any already there (a tool that knows only the
    // log can still open a database that also keeps other things).
    let mut families: Vec<String> = DB::list_cf(&options, path).unwrap_or_default();
    for family in column_families {
        if !families.iter().any(|f| f == family) {
            families.push((*family).to_string());
        }
    }
    let db = DB::open_cf(&options, path, &families).map_err(to_io)?;
    Ok(Arc::new(db))
}

/// Opens the database at `path` read-only (for verifying a backup or a
/// stopped server's data without changing a byte).
pub fn open_db_read_only(path: &Path, column_families: &[&str]) -> io::Result<Arc<DB>> {
    let options = Options::default();
    let db = DB::open_cf_for_read_only(&options, path, column_families, false).map_err(to_io)?;
    Ok(Arc::new(db))
}

/// A log kept in one column family of a RocksDB database.
pub struct RocksStore {
    db: Arc<DB>,
    column_family: String,
    synced: WriteOptions,
}

impl RocksStore {
    /// The log in `column_family` of `db`, which must have been opened with
    /// that column family.
    pub fn new(db: Arc<DB>, column_family: &str) -> io::Result<RocksStore> {
        if db.cf_handle(column_family).is_none() {
            return Err(io::Error::other(format!(
                "no column family {column_family}"
            )));
        }
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        Ok(RocksStore {
            db,
            column_family: column_family.to_string(),
            synced,
        })
    }

    fn cf(&self) -> io::Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(&self.column_family)
            .ok_or_else(|| io::Error::other(format!("no column family {}", self.column_family)))
    }
}

fn to_io(error: rocksdb::Error) -> io::Error {
    io::Error::other(error.into_string())
}

/// What a RocksDB iterator yields: a key and a value, or an error.
type RawEntry = Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>;

fn entry(item: RawEntry) -> io::Result<(u64, Vec<u8>)> {
    let (k, v) = item.map_err(to_io)?;
    let seq = seq_of_key(&k).ok_or_else(|| io::Error::other("a log key is not 8 bytes"))?;
    Ok((seq, v.into_vec()))
}

impl LogStore for RocksStore {
    fn put_synced(&mut self, seq: u64, value: &[u8]) -> io::Result<()> {
        let cf = self.cf()?;
        self.db
            .put_cf_opt(cf, key(seq), value, &self.synced)
            .map_err(to_io)
    }

    fn delete_from(&mut self, from: u64) -> io::Result<()> {
        let cf = self.cf()?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, key(from), key(u64::MAX));
        batch.delete_cf(cf, key(u64::MAX));
        self.db.write_opt(batch, &self.synced).map_err(to_io)
    }

    fn at_or_before(&self, seq: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        let cf = self.cf()?;
        let from = key(seq);
        let mut iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Reverse));
        iter.next().map(entry).transpose()
    }

    fn scan_from(&self, from: u64) -> Box<dyn Iterator<Item = io::Result<(u64, Vec<u8>)>> + '_> {
        let cf = match self.cf() {
            Ok(cf) => cf,
            Err(error) => return Box::new(std::iter::once(Err(error))),
        };
        let start = key(from);
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward));
        Box::new(iter.map(entry))
    }
}
