//! openraft's own storage conformance suite against the in-memory log
//! store and state machine (the same suite will check the wal-backed one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingressoja_cluster::ShardRaft;
use ingressoja_cluster::memory::{MemoryLog, MemoryMachine};
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
