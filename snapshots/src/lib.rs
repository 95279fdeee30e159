//! Snapshots: engine state, last sequence number, event configuration, format
//! version and checksum, written atomically (temporary file, fsync, rename).
//!
//! Built in issue 3 (durability); empty until then.
