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
use crate::store::{LogStore, SideWrite};

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

/// A log kept in one column family of a RocksDB database, with its side
/// keyspace (if it has one) in another. Clones share the database: a reader
/// can hold one while the writer owns another.
#[derive(Clone)]
pub struct RocksStore {
    db: Arc<DB>,
    column_family: String,
    side_family: Option<String>,
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
        Ok(RocksStore {
            db,
            column_family: column_family.to_string(),
            side_family: None,
        })
    }

    /// The log in `column_family` with its side keyspace in `side_family`;
    /// both must exist in `db`.
    pub fn with_side(
        db: Arc<DB>,
        column_family: &str,
        side_family: &str,
    ) -> io::Result<RocksStore> {
        if db.cf_handle(side_family).is_none() {
            return Err(io::Error::other(format!("no column family {side_family}")));
        }
        let mut store = RocksStore::new(db, column_family)?;
        store.side_family = Some(side_family.to_string());
        Ok(store)
    }

    fn side_cf(&self) -> io::Result<&rocksdb::ColumnFamily> {
        let name = self
            .side_family
            .as_deref()
            .ok_or_else(|| io::Error::other("this log has no side keyspace"))?;
        self.db
            .cf_handle(name)
            .ok_or_else(|| io::Error::other(format!("no column family {name}")))
    }

    /// Adds the side writes to `write` (none needs no side keyspace).
    fn add_side(&self, write: &mut WriteBatch, side: &[SideWrite]) -> io::Result<()> {
        if side.is_empty() {
            return Ok(());
        }
        let side_cf = self.side_cf()?;
        for change in side {
            match change {
                SideWrite::Put(k, v) => write.put_cf(side_cf, k, v),
                SideWrite::DeleteRange(from, to) => write.delete_range_cf(side_cf, from, to),
            }
        }
        Ok(())
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

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl LogStore for RocksStore {
    fn write_synced(&mut self, batch: Option<(u64, &[u8])>, side: &[SideWrite]) -> io::Result<()> {
        let mut write = WriteBatch::default();
        if let Some((seq, value)) = batch {
            write.put_cf(self.cf()?, key(seq), value);
        }
        self.add_side(&mut write, side)?;
        self.db.write_opt(write, &synced()).map_err(to_io)
    }

    fn side_get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        // A log without a side keyspace has nothing said about it (the log
        // asks for its origin whatever the store).
        if self.side_family.is_none() {
            return Ok(None);
        }
        self.db.get_cf(self.side_cf()?, key).map_err(to_io)
    }

    fn side_range(&self, from: &[u8], to: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let cf = self.side_cf()?;
        let mut found = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(from, Direction::Forward))
        {
            let (k, v) = item.map_err(to_io)?;
            if &*k >= to {
                break;
            }
            found.push((k.into_vec(), v.into_vec()));
        }
        Ok(found)
    }

    fn side_last(&self, from: &[u8], to: &[u8]) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        let cf = self.side_cf()?;
        // The reverse seek lands on the greatest key at or before `to`;
        // `to` itself is excluded.
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(to, Direction::Reverse))
        {
            let (k, v) = item.map_err(to_io)?;
            if &*k >= to {
                continue;
            }
            if &*k < from {
                return Ok(None);
            }
            return Ok(Some((k.into_vec(), v.into_vec())));
        }
        Ok(None)
    }

    fn delete_from(&mut self, from: u64) -> io::Result<()> {
        let cf = self.cf()?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, key(from), key(u64::MAX));
        batch.delete_cf(cf, key(u64::MAX));
        self.db.write_opt(batch, &synced()).map_err(to_io)
    }

    fn reset_synced(&mut self, side: &[SideWrite]) -> io::Result<()> {
        let cf = self.cf()?;
        let mut write = WriteBatch::default();
        write.delete_range_cf(cf, key(0), key(u64::MAX));
        write.delete_cf(cf, key(u64::MAX));
        self.add_side(&mut write, side)?;
        self.db.write_opt(write, &synced()).map_err(to_io)
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
