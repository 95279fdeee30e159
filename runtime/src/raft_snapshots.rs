//! The group's snapshots: how a replica builds one of the committed state
//! for a member that lags behind the purged log, keeps it, and installs
//! one another replica sent.
//!
//! A snapshot is the shard's state through the last record of an entry,
//! in the snapshot file format (`ingressoja_snapshots::encode`), with the
//! attached state through the same record (`attached.rs`; encoded by its
//! owner) beside it ([`GroupSnapshot`]), kept with Raft's description of it
//! in the log's side keyspace ([`StoredSnapshot`]). It is built from disk, not from the engines: a
//! leader's engines hold records that are not committed yet, while the
//! newest snapshot file at or before the applied record and the log's
//! records up to it are exactly the committed state (the same rebuild a
//! deposed leader rolls back with). Building runs on a blocking thread, off
//! the shard and off openraft's tasks.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use ingressoja_cluster::wal_log::{StoredSnapshot, WalLog};
use ingressoja_snapshots::SnapshotDir;
use ingressoja_wal::LogStore;

use crate::recovery::{ShardState, rebuild_through};

/// What the state machine needs of the snapshots, without the log store's
/// type (see the module documentation).
pub(crate) trait GroupSnapshots: Send + Sync {
    /// The committed state through record `seq`, encoded, with the
    /// attached state's encoding through the same record.
    fn build(
        &self,
        seq: u64,
        taken_at_ms: u64,
        attached: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String>;
    /// Keeps `snapshot` as this node's newest.
    fn save(&self, snapshot: &StoredSnapshot) -> Result<(), String>;
    /// This node's newest.
    fn current(&self) -> Result<Option<StoredSnapshot>, String>;
    /// Installs `snapshot` (taken on another node) in the log.
    fn install(&self, snapshot: &StoredSnapshot) -> Result<(), String>;
}

/// [`GroupSnapshots`] over a log in `S` and the node's snapshot files.
pub(crate) struct OnDisk<S: LogStore + Clone + Sync + 'static> {
    /// The log (its writer, for saving and installing).
    pub log: WalLog<S>,
    /// Its store, read for rebuilding.
    pub store: S,
    /// The node's own snapshot files.
    pub snapshots: SnapshotDir,
}

impl<S: LogStore + Clone + Sync + 'static> GroupSnapshots for OnDisk<S> {
    fn build(
        &self,
        seq: u64,
        taken_at_ms: u64,
        attached: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let state = rebuild_through(&self.store, &self.snapshots, seq)?;
        let shard =
            ingressoja_snapshots::encode(seq, taken_at_ms, &state).map_err(|e| e.to_string())?;
        postcard::to_stdvec(&GroupSnapshot { shard, attached }).map_err(|e| e.to_string())
    }

    fn save(&self, snapshot: &StoredSnapshot) -> Result<(), String> {
        self.log.save_snapshot(snapshot).map_err(|e| e.to_string())
    }

    fn current(&self) -> Result<Option<StoredSnapshot>, String> {
        self.log
            .reader()
            .current_snapshot()
            .map_err(|e| e.to_string())
    }

    fn install(&self, snapshot: &StoredSnapshot) -> Result<(), String> {
        // The log starting over links its first batch to the snapshot's own
        // checksum (the last 32 bytes of a snapshot file): this replica's
        // chain then vouches for the state it started from.
        let group = split(&snapshot.bytes)?;
        let head = group
            .shard
            .last_chunk::<32>()
            .copied()
            .ok_or("a snapshot shorter than its checksum")?;
        self.log
            .install_snapshot(snapshot, head)
            .map_err(|e| e.to_string())
    }
}

/// A group snapshot's two parts (see the module documentation).
#[derive(Serialize, Deserialize)]
pub(crate) struct GroupSnapshot {
    /// The shard's state, as a snapshot file (with its own checksum).
    pub shard: Vec<u8>,
    /// The attached state, as its owner encoded it (none: the node that
    /// built it kept none).
    pub attached: Option<Vec<u8>>,
}

/// The parts of a group snapshot's bytes.
pub(crate) fn split(bytes: &[u8]) -> Result<GroupSnapshot, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("not a group snapshot: {e}"))
}

/// Decodes a snapshot another node sent: the state, the last record it
/// covers (checked against its checksum and format first), and the
/// attached state's encoding.
pub(crate) fn decode(bytes: &[u8]) -> Result<(ShardState, u64, Option<Vec<u8>>), String> {
    let group = split(bytes)?;
    let (envelope, state) =
        ingressoja_snapshots::decode::<ShardState>(&group.shard).map_err(|e| e.to_string())?;
    Ok((state, envelope.last_seq, group.attached))
}

/// Shared handle to the snapshots.
pub(crate) type Snapshots = Arc<dyn GroupSnapshots>;
