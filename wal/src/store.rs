//! Where batches are kept: the [`LogStore`] trait, and [`MemStore`], an
//! in-memory store for tests that can fail a sync, tear the last write,
//! hold writes in flight, or corrupt stored bytes on request. The RocksDB store is in `rocks.rs`.
//!
//! Beside the batches a store keeps a *side* keyspace: byte keys and values
//! that a user of the log must keep in step with it (the Raft log keeps its
//! entries' terms and its vote there). Side writes go in the same durable
//! write as a batch, so a batch and what is said about it are never split by
//! a crash. The log itself reads one side key only: its origin (see
//! [`crate::Wal::restart_after`]).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// One change to the side keyspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideWrite {
    /// Stores a value under a key.
    Put(Vec<u8>, Vec<u8>),
    /// Removes the keys from the first (included) to the second (excluded).
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// An ordered map from `u64` keys to byte values with durable writes, and a
/// side keyspace written with it (see the module documentation).
pub trait LogStore: Send {
    /// Stores `value` under `key`; returns only once it is durable.
    fn put_synced(&mut self, key: u64, value: &[u8]) -> io::Result<()> {
        self.write_synced(Some((key, value)), &[])
    }
    /// Stores a batch (if any) and the side writes as one durable write:
    /// after a crash, all of it is there or none of it.
    fn write_synced(&mut self, batch: Option<(u64, &[u8])>, side: &[SideWrite]) -> io::Result<()>;
    /// The side value under `key`.
    fn side_get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>>;
    /// Side entries with keys from `from` (included) to `to` (excluded), in
    /// key order.
    fn side_range(&self, from: &[u8], to: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The side entry with the greatest key below `to` and at or after `from`.
    fn side_last(&self, from: &[u8], to: &[u8]) -> io::Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// Removes every key at or after `from`, durably.
    fn delete_from(&mut self, from: u64) -> io::Result<()>;
    /// Removes every batch and applies `side`, as one durable write (a log
    /// that starts over after a snapshot taken elsewhere, see
    /// [`crate::Wal::restart_after`]).
    fn reset_synced(&mut self, side: &[SideWrite]) -> io::Result<()>;
    /// The entry with the greatest key at or before `key`.
    fn at_or_before(&self, key: u64) -> io::Result<Option<(u64, Vec<u8>)>>;
    /// Entries with keys at or after `from`, in key order.
    fn scan_from(&self, from: u64) -> Box<dyn Iterator<Item = io::Result<(u64, Vec<u8>)>> + '_>;
}

/// Faults a [`MemStore`] injects.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The next `put_synced` fails (as a failed fsync does) and stores nothing.
    pub fail_next_sync: bool,
    /// The next `put_synced` stores only this many bytes of the value and
    /// fails, as a write torn by a crash would look.
    pub tear_next_write_at: Option<usize>,
}

#[derive(Debug, Default)]
struct MemInner {
    entries: BTreeMap<u64, Vec<u8>>,
    side: BTreeMap<Vec<u8>, Vec<u8>>,
    faults: Faults,
}

/// Holds synced writes back while closed, so a test can look at what the
/// rest of the system does while a write is in flight (a slow fsync).
#[derive(Debug, Default)]
struct SyncGate {
    state: Mutex<GateState>,
    opened: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    waiting: usize,
}

/// An in-memory store; clones share the same contents, so a test can keep a
/// handle to inject faults or damage bytes while a log owns another.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    inner: Arc<Mutex<MemInner>>,
    gate: Arc<SyncGate>,
}

impl MemStore {
    /// Holds every later `put_synced` until [`MemStore::release_syncs`]:
    /// a write stays in flight for as long as the test wants.
    pub fn hold_syncs(&self) {
        self.gate.state.lock().closed = true;
    }

    /// Lets held and later writes through.
    pub fn release_syncs(&self) {
        self.gate.state.lock().closed = false;
        self.gate.opened.notify_all();
    }

    /// How many writes are being held now.
    pub fn syncs_held(&self) -> usize {
        self.gate.state.lock().waiting
    }

    /// Arms faults for the next writes.
    pub fn inject(&self, faults: Faults) {
        self.inner.lock().faults = faults;
    }

    /// Changes the stored bytes of `key` (to simulate damage at rest).
    pub fn damage(&self, key: u64, change: impl FnOnce(&mut Vec<u8>)) {
        if let Some(value) = self.inner.lock().entries.get_mut(&key) {
            change(value);
        }
    }

    /// The stored bytes of `key`.
    pub fn bytes(&self, key: u64) -> Option<Vec<u8>> {
        self.inner.lock().entries.get(&key).cloned()
    }

    /// Removes one entry (to simulate a lost batch).
    pub fn remove(&self, key: u64) {
        self.inner.lock().entries.remove(&key);
    }

    /// The keys stored, in order.
    pub fn keys(&self) -> Vec<u64> {
        self.inner.lock().entries.keys().copied().collect()
    }
}

/// Applies side writes to a side keyspace held in memory.
fn apply_side(keyspace: &mut BTreeMap<Vec<u8>, Vec<u8>>, side: &[SideWrite]) {
    for write in side {
        match write {
            SideWrite::Put(key, value) => {
                keyspace.insert(key.clone(), value.clone());
            }
            SideWrite::DeleteRange(from, to) => {
                keyspace.retain(|key, _| key.as_slice() < from.as_slice() || key >= to);
            }
        }
    }
}

impl LogStore for MemStore {
    fn write_synced(&mut self, batch: Option<(u64, &[u8])>, side: &[SideWrite]) -> io::Result<()> {
        {
            let mut gate = self.gate.state.lock();
            gate.waiting += 1;
            while gate.closed {
                self.gate.opened.wait(&mut gate);
            }
            gate.waiting -= 1;
        }
        let mut inner = self.inner.lock();
        if std::mem::take(&mut inner.faults.fail_next_sync) {
            return Err(io::Error::other("injected fsync failure"));
        }
        let torn_at = inner.faults.tear_next_write_at.take();
        // A torn write still carries its side writes: a user of the log
        // must cope with side entries about a batch that did not survive.
        apply_side(&mut inner.side, side);
        if let Some((key, value)) = batch {
            if let Some(at) = torn_at {
                let torn = value
                    .get(..at.min(value.len()))
                    .unwrap_or_default()
                    .to_vec();
                inner.entries.insert(key, torn);
                return Err(io::Error::other("injected torn write"));
            }
            inner.entries.insert(key, value.to_vec());
        }
        Ok(())
    }

    fn side_get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.inner.lock().side.get(key).cloned())
    }

    fn side_range(&self, from: &[u8], to: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let inner = self.inner.lock();
        Ok(inner
            .side
            .range(from.to_vec()..to.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn side_last(&self, from: &[u8], to: &[u8]) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if from >= to {
            return Ok(None);
        }
        let inner = self.inner.lock();
        Ok(inner
            .side
            .range(from.to_vec()..to.to_vec())
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn delete_from(&mut self, from: u64) -> io::Result<()> {
        self.inner.lock().entries.retain(|&key, _| key < from);
        Ok(())
    }

    fn reset_synced(&mut self, side: &[SideWrite]) -> io::Result<()> {
        let mut inner = self.inner.lock();
        if std::mem::take(&mut inner.faults.fail_next_sync) {
            return Err(io::Error::other("injected fsync failure"));
        }
        inner.entries.clear();
        apply_side(&mut inner.side, side);
        Ok(())
    }

    fn at_or_before(&self, key: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        let inner = self.inner.lock();
        Ok(inner
            .entries
            .range(..=key)
            .next_back()
            .map(|(k, v)| (*k, v.clone())))
    }

    fn scan_from(&self, from: u64) -> Box<dyn Iterator<Item = io::Result<(u64, Vec<u8>)>> + '_> {
        // A snapshot of the range: tests are small, and it keeps the lock short.
        let inner = self.inner.lock();
        let entries: Vec<_> = inner
            .entries
            .range(from..)
            .map(|(k, v)| Ok((*k, v.clone())))
            .collect();
        Box::new(entries.into_iter())
    }
}
