//! The Raft type configuration of a shard's replicated log.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A node's number in the cluster (from the cluster file).
pub type NodeId = u64;

/// One shard batch as the leader's shard wrote it: the sale-log records of
/// one group commit, numbered on (their sequence numbers continue the
/// log's). Each replica keeps them in its own write-ahead log under the same
/// numbers, so every node's sale log is the same log. The payloads are
/// opaque here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardBatch {
    /// The records, with consecutive sequence numbers.
    pub records: Vec<ingressoja_wal::Record>,
    /// A tag the leader that numbered the records chose for its time as
    /// leader (random; 0 in batches written before there was one). Only
    /// that leader reads it: its own records are in its engines already
    /// while it still holds them, and a batch from any other leadership,
    /// even its own earlier one, is not (see the runtime's
    /// `replication.rs`). Other nodes keep it and ignore it.
    pub numbered_by: u64,
}

/// What applying an entry gave: its index (the runtime answers the
/// batch's requests from its own applied state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The entry's Raft index.
    pub index: u64,
}

openraft::declare_raft_types!(
    /// A shard's replicated log.
    pub ShardRaft:
        D = ShardBatch,
        R = Applied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<ShardRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::async_runtime::ShardRuntime,
);
