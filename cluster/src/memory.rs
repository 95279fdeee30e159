//! An in-memory Raft log store and state machine for a shard's replicated
//! log: what the deterministic cluster tests run on (no disk, so a seeded
//! scheduler is the only source of order). They pass openraft's storage
//! conformance suite (`tests/conformance.rs`); the wal-backed store must
//! pass the same suite.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogId, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::types::{Applied, NodeId, ShardBatch, ShardRaft};

#[derive(Debug, Default)]
struct Log {
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry<ShardRaft>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// A Raft log in memory. Clones share the same log (the reader is one).
#[derive(Clone, Debug, Default)]
pub struct MemoryLog(Arc<Mutex<Log>>);

impl RaftLogReader<ShardRaft> for MemoryLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<ShardRaft>>, StorageError<NodeId>> {
        let log = self.0.lock();
        Ok(log.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<ShardRaft> for MemoryLog {
    type LogReader = MemoryLog;

    async fn get_log_state(&mut self) -> Result<LogState<ShardRaft>, StorageError<NodeId>> {
        let log = self.0.lock();
        let last = log.entries.values().next_back().map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last.or(log.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.0.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<ShardRaft>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<ShardRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut log = self.0.lock();
            for entry in entries {
                log.entries.insert(entry.get_log_id().index, entry);
            }
        }
        // In memory, written is flushed.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Entries from `log_id` on were never committed: they go.
        self.0.lock().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut log = self.0.lock();
        assert!(
            log.last_purged.is_none_or(|purged| purged <= log_id),
            "purging backwards"
        );
        log.last_purged = Some(log_id);
        log.entries = log.entries.split_off(&(log_id.index + 1));
        Ok(())
    }
}

/// What the in-memory state machine holds: every batch applied, in order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Applying {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    batches: Vec<ShardBatch>,
}

#[derive(Debug, Default)]
struct Machine {
    state: Applying,
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// A state machine that keeps the batches it applied (what a replica's
/// engines would be built from). Clones share it.
#[derive(Clone, Debug, Default)]
pub struct MemoryMachine(Arc<Mutex<Machine>>);

impl MemoryMachine {
    /// The batches applied so far, in order.
    pub fn applied(&self) -> Vec<ShardBatch> {
        self.0.lock().state.batches.clone()
    }
}

fn io_error(error: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&error).into()
}

impl RaftSnapshotBuilder<ShardRaft> for MemoryMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ShardRaft>, StorageError<NodeId>> {
        let mut machine = self.0.lock();
        let bytes = postcard::to_stdvec(&machine.state).map_err(io_error)?;
        machine.snapshots_built += 1;
        let last = machine.state.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: machine.state.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                last.map_or(0, |l| l.index),
                machine.snapshots_built
            ),
        };
        machine.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<ShardRaft> for MemoryMachine {
    type SnapshotBuilder = MemoryMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let machine = self.0.lock();
        Ok((machine.state.last_applied, machine.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<ShardRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut machine = self.0.lock();
        let mut applied = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            machine.state.last_applied = Some(log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => machine.state.batches.push(batch),
                EntryPayload::Membership(membership) => {
                    machine.state.membership = StoredMembership::new(Some(log_id), membership);
                }
            }
            applied.push(Applied {
                index: log_id.index,
            });
        }
        Ok(applied)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let state: Applying = postcard::from_bytes(&bytes).map_err(io_error)?;
        let mut machine = self.0.lock();
        machine.state = Applying {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            batches: state.batches,
        };
        machine.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<ShardRaft>>, StorageError<NodeId>> {
        let machine = self.0.lock();
        Ok(machine.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}
