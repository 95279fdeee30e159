//! State the runtime's threads share: how far the log is durable, whether a
//! failed write has poisoned it, and figures for metrics. Everything else is
//! owned by exactly one thread.

use std::sync::OnceLock;

use parking_lot::{Condvar, Mutex};

/// Figures the threads record for metrics and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Batches written to the log (group commits).
    pub batches_written: u64,
    /// Records written to the log.
    pub records_written: u64,
    /// How long the last append (write + fsync) took, in microseconds.
    pub last_append_us: u64,
    /// How long the shard paused for the last snapshot (cloning its state),
    /// in microseconds.
    pub last_snapshot_pause_us: u64,
    /// Snapshots written.
    pub snapshots_written: u64,
    /// The sequence number of the newest snapshot written.
    pub last_snapshot_seq: u64,
}

/// Called after each group commit with its record count and the write +
/// fsync time in microseconds (the server feeds its histograms with it).
pub type CommitObserver = Box<dyn Fn(u64, u64) + Send + Sync>;

#[derive(Default)]
struct Observer(OnceLock<CommitObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

#[derive(Debug, Default)]
struct Durability {
    seq: u64,
    poisoned: Option<String>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Shared {
    /// The last record number the shard has given out (its engines hold
    /// every record up to it): the Raft state machine skips committed
    /// records up to here without a trip to the shard.
    numbered: std::sync::atomic::AtomicU64,
    durability: Mutex<Durability>,
    changed: Condvar,
    stats: Mutex<RuntimeStats>,
    observer: Observer,
}

impl Shared {
    /// Starts at `seq`, the last sequence number already in the log.
    pub fn new(seq: u64) -> Shared {
        let shared = Shared::default();
        shared.durability.lock().seq = seq;
        shared.set_numbered(seq);
        shared
    }

    /// The shard's engines hold every record up to `seq` (set before the
    /// records go to the writer, so before they can commit).
    pub fn set_numbered(&self, seq: u64) {
        self.numbered
            .fetch_max(seq, std::sync::atomic::Ordering::Release);
    }

    /// The last record the shard's engines hold.
    pub fn numbered(&self) -> u64 {
        self.numbered.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that the log is durable up to `seq`.
    pub fn set_durable(&self, seq: u64) {
        let mut durability = self.durability.lock();
        durability.seq = durability.seq.max(seq);
        self.changed.notify_all();
    }

    /// Records a failed write: nothing more will become durable.
    pub fn poison(&self, reason: String) {
        let mut durability = self.durability.lock();
        durability.poisoned.get_or_insert(reason);
        self.changed.notify_all();
    }

    /// How far the log is durable.
    pub fn durable_seq(&self) -> u64 {
        self.durability.lock().seq
    }

    /// Why the log refuses writes, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.durability.lock().poisoned.clone()
    }

    /// Blocks until the log is durable up to `seq`; false if it never will be.
    pub fn wait_durable(&self, seq: u64) -> bool {
        let mut durability = self.durability.lock();
        loop {
            if durability.seq >= seq {
                return true;
            }
            if durability.poisoned.is_some() {
                return false;
            }
            self.changed.wait(&mut durability);
        }
    }

    /// Updates the figures.
    pub fn record(&self, change: impl FnOnce(&mut RuntimeStats)) {
        change(&mut self.stats.lock());
    }

    /// Sets the commit observer; false if one was already set.
    pub fn observe_commits(&self, observer: CommitObserver) -> bool {
        self.observer.0.set(observer).is_ok()
    }

    /// Reports a group commit to the observer, if any.
    pub fn committed(&self, records: u64, micros: u64) {
        if let Some(observe) = self.observer.0.get() {
            observe(records, micros);
        }
    }

    /// The figures now.
    pub fn stats(&self) -> RuntimeStats {
        *self.stats.lock()
    }
}
