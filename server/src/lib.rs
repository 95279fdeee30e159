//! The `ingressoja` binary's library: everything but argument parsing, so
//! tests drive it without a process.
//!
//! # Layout
//! - [`accounts`]: accounts, passwords, two-factor codes, sessions, login
//!   throttling.
//! - [`audit`]: the hash-chained audit log of everything that is not a sale
//!   transition (those are in the write-ahead log, itself chained).
//! - [`sale_trail`]: the sale log read as an audit trail (who, what, when,
//!   from where), for the admin query and `audit export`.
//! - [`runtime`]: the durable runtime: shard thread, group-commit log writer,
//!   snapshots, recovery.
//! - [`http`]: the hyper server: JSON API, errors, configuration, payments.
//! - [`demo`]: the narrated demo drop (`ingressoja demo`).
//! - [`ops`]: operators' tools: backup, point-in-time restore, log
//!   verification and inspection.
//! - [`crash_load`]: steady load for the crash tests (`ingressoja crash-load`).

pub mod accounts;
pub mod audit;
pub mod crash_load;
pub mod demo;
pub mod http;
pub mod ops;
pub mod payments;
pub mod runtime;
pub mod sale_trail;
