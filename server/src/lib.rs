//! The `ingressoja` binary's library: everything but argument parsing, so
//! tests drive it without a process.
//!
//! # Layout
//! - [`accounts`]: accounts, passwords, two-factor codes, sessions, login
//!   throttling.
//! - [`audit`]: the hash-chained audit log of everything that is not a sale
//!   transition (those are in the write-ahead log, itself chained).
//! - [`replicated`]: the state every node of a cluster shares (accounts,
//!   sessions, audit log, settings), changed through the sale's replicated
//!   log and read locally.
//! - [`sale_trail`]: the sale log read as an audit trail (who, what, when,
//!   from where), for the admin query and `audit export`.
//! - [`runtime`]: the durable runtime (the `ingressoja-runtime` crate, here
//!   by its short name): shard thread, group-commit log writer, snapshots,
//!   recovery, backup, restore, log tools.
//! - [`http`]: the hyper server: JSON API, errors, configuration, payments.
//! - [`mail`]: letters to fans (receipts, reset links, security notices)
//!   and the outbox that sends them over SMTP.
//! - [`demo`]: the narrated demo drop (`ingressoja demo`).
//! - [`ops`]: operators' tools over the server's own data (administrators,
//!   the audit log).
//! - [`crash_load`]: steady load for the crash tests (`ingressoja crash-load`).

pub mod accounts;
pub mod audit;
pub mod cluster;
pub mod crash_load;
pub mod demo;
pub mod http;
pub mod mail;
pub mod ops;
pub mod payments;
pub mod replicated;
pub use ingressoja_runtime as runtime;
pub mod sale_trail;

/// The column families the server keeps in the sale's database, beside the
/// runtime's sale log: one checkpoint backs them all up at one instant.
pub const COLUMN_FAMILIES: &[&str] = &[
    accounts::store::ACCOUNTS,
    accounts::store::SESSIONS,
    audit::AUDIT,
    http::settings::SETTINGS_FAMILY,
];
