//! The write-ahead log: append-only, hash-chained batches of opaque records,
//! one store value per group-commit batch, synced before anything in the
//! batch is acknowledged. It knows nothing about tickets: records are bytes.
//!
//! # Layout
//! - [`format`]: records, batches, checksums, the hash chain, keys.
//! - [`log`]: [`Wal`]: open-or-recover, append (poisoned after a failed
//!   write), read from a sequence number ([`read_from`]) or back from one
//!   ([`read_back`]), truncate for point-in-time restore; [`verify`] walks
//!   the whole chain.
//! - [`store`]: the [`LogStore`] trait and [`MemStore`], an in-memory store
//!   that injects failed syncs and torn writes for tests.
//! - [`rocks`]: [`RocksStore`], a log in a RocksDB column family.
//! - [`error`]: one error enum per operation.

pub mod error;
pub mod format;
pub mod log;
pub mod rocks;
pub mod store;

pub use error::{AppendError, OpenError, RefusedRecord, VerifyError};
pub use format::{Damage, FORMAT_VERSION, Hash, Record};
pub use log::{ChainSummary, OpenReport, TailCut, Wal, origin, read_back, read_from, verify};
pub use rocks::{RocksStore, open_db, open_db_read_only};
pub use store::{Faults, LogStore, MemStore, SideWrite};
