//! The Raft type configuration of a shard's replicated log.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A node's number in the cluster (from the cluster file).
pub type NodeId = u64;

/// One shard batch as the leader decided it, encoded by the runtime: its
/// commands with everything non-deterministic already decided (the time
/// stamp, ticket seeds, payment outcomes, the fans' addresses), so every
/// replica's engine reaches the same state by applying it. Opaque here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardBatch(pub Vec<u8>);

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
        AsyncRuntime = openraft::TokioRuntime,
);
