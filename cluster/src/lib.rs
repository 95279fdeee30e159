//! Replication of a shard's log on several nodes, with openraft (issue 13;
//! the plan is docs/REPLICATION.md). What is replicated is the leader's
//! shard batches, as opaque bytes: this crate knows no tickets, no HTTP and
//! no JSON, only Raft entries.
//!
//! - `types.rs`: the Raft type configuration (`ShardRaft`) and the
//!   replicated batch; `async_runtime.rs`: tokio with randomness a
//!   simulation can seed.
//! - `memory.rs`: an in-memory log store and state machine, for the
//!   deterministic cluster tests; checked against openraft's own storage
//!   conformance suite (`tests/conformance.rs`), as the wal-backed store
//!   will be.
//! - `wal_log.rs`: the Raft log kept in the shard's write-ahead log (the
//!   sale log's own records, what Raft says about them beside), with group
//!   commit on a writer thread; it passes the same suite.
//! - `no_peers.rs`: the network of a one-voter group (a single node).
//! - `memory_network.rs`: an in-process network between nodes that a test
//!   can cut (a partition, a dead machine) or make lose, delay and repeat
//!   messages by a seed (the deterministic simulation, in the runtime's
//!   tests: it needs the engines).

pub mod async_runtime;
pub mod memory;
pub mod memory_network;
pub mod no_peers;
pub mod recent_entries;
pub mod types;
pub mod wal_log;

pub use types::{Applied, NodeId, ShardBatch, ShardRaft};
