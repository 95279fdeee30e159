//! openraft's own storage conformance suite against each log store: the
//! in-memory one, and the write-ahead log over an in-memory store and over
//! RocksDB (each paired with the in-memory state machine, which the suite
//! needs beside it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ingressoja_cluster::ShardRaft;
use ingressoja_cluster::memory::{MemoryLog, MemoryMachine};
use ingressoja_cluster::wal_log::WalLog;
use ingressoja_wal::{MemStore, RocksStore};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct Fresh;

impl StoreBuilder<ShardRaft, MemoryLog, MemoryMachine> for Fresh {
    async fn build(&self) -> Result<((), MemoryLog, MemoryMachine), StorageError<u64>> {
        Ok(((), MemoryLog::default(), MemoryMachine::default()))
    }
}

#[test]
fn the_in_memory_store_passes_openrafts_storage_suite() {
    Suite::test_all(Fresh).unwrap();
}

struct FreshWalInMemory;

impl StoreBuilder<ShardRaft, WalLog<MemStore>, MemoryMachine> for FreshWalInMemory {
    async fn build(&self) -> Result<((), WalLog<MemStore>, MemoryMachine), StorageError<u64>> {
        let opened = WalLog::open(MemStore::default(), 0, |_| Ok(())).unwrap();
        Ok(((), opened.log, MemoryMachine::default()))
    }
}

#[test]
fn the_write_ahead_log_passes_openrafts_storage_suite() {
    Suite::test_all(FreshWalInMemory).unwrap();
}

struct FreshWalOnRocks;

impl StoreBuilder<ShardRaft, WalLog<RocksStore>, MemoryMachine, tempfile::TempDir>
    for FreshWalOnRocks
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, WalLog<RocksStore>, MemoryMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let db = ingressoja_wal::open_db(dir.path(), &["wal", "raft"]).unwrap();
        let store = RocksStore::with_side(Arc::clone(&db), "wal", "raft").unwrap();
        let opened = WalLog::open(store, 0, |_| Ok(())).unwrap();
        Ok((dir, opened.log, MemoryMachine::default()))
    }
}

#[test]
fn the_write_ahead_log_on_rocksdb_passes_openrafts_storage_suite() {
    Suite::test_all(FreshWalOnRocks).unwrap();
}
