//! The `ingressoja` binary's library: everything but argument parsing, so
//! tests drive it without a process.
//!
//! # Layout
//! - [`runtime`]: the durable runtime: shard thread, group-commit log writer,
//!   snapshots, recovery.
//! - [`demo`]: the narrated demo drop of `make run`.
//! - [`ops`]: operators' tools: backup, point-in-time restore, log
//!   verification and inspection.
//! - [`crash_load`]: steady load for the crash tests (`ingressoja crash-load`).

pub mod crash_load;
pub mod demo;
pub mod ops;
pub mod runtime;
