//! The write-ahead log: append-only, hash-chained batches of opaque records,
//! one RocksDB value per group-commit batch, synced before anything in the
//! batch is acknowledged. It knows nothing about tickets.
//!
//! Built in issue 3 (durability); empty until then so the workspace layout and
//! the dependency rule (`engine` depends on no workspace crate, `wal` knows no
//! domain) are fixed from the first commit.
