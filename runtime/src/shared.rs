//! State the runtime's threads share: how far the log is durable, whether a
//! failed write has poisoned it, which leadership the shard takes writes
//! under, what its engines hold beyond what Raft applied, and figures for
//! metrics. Everything else is owned by exactly one thread.

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
    /// Times this node, deposed, threw away records it had numbered and
    /// that never committed, and rebuilt the committed state.
    pub rollbacks: u64,
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
    /// Bumped each time the shard throws away records it numbered that
    /// never committed (a deposed leader's): a copy of its state taken
    /// before may hold them, and is never written as a snapshot.
    generation: u64,
    /// The tag of the leadership the shard takes writes under (0: none,
    /// it follows). The writer proposes only that leadership's batches.
    live: u64,
}

/// What the shard's engines hold beyond what the Raft group has applied:
/// read and changed only under its lock, by the state machine as it
/// applies and by the shard as it starts leading, so that the two agree
/// on which committed records the engines hold already.
#[derive(Debug, Default)]
pub struct Holding {
    /// The tag of the leadership whose records the engines hold ahead of
    /// the log's commit (`ShardBatch::numbered_by`): committed batches
    /// with this tag are skipped, being in the engines already. `None`:
    /// the engines hold exactly what was applied.
    pub numbered_by: Option<u64>,
    /// The last record the state machine has applied (or skipped as held).
    pub applied_seq: u64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Shared {
    /// See [`Holding`].
    pub holding: Mutex<Holding>,
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
        shared.holding.lock().applied_seq = seq;
        shared
    }

    /// The shard takes writes under leadership `tag` (nonzero).
    pub fn go_live(&self, tag: u64) {
        let mut durability = self.durability.lock();
        durability.live = tag;
        self.changed.notify_all();
    }

    /// Leadership `tag` takes no more writes (if it is the live one).
    pub fn end_live(&self, tag: u64) {
        let mut durability = self.durability.lock();
        if durability.live == tag {
            durability.live = 0;
        }
    }

    /// The leadership the shard takes writes under (0: none).
    pub fn live(&self) -> u64 {
        self.durability.lock().live
    }

    /// Blocks until the shard takes writes, for at most `deadline`; false
    /// if it does not (or the log is poisoned).
    pub fn wait_live(&self, deadline: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + deadline;
        let mut durability = self.durability.lock();
        while durability.live == 0 && durability.poisoned.is_none() {
            if self.changed.wait_until(&mut durability, until).timed_out() {
                break;
            }
        }
        durability.live != 0
    }

    /// The shard throws away what it numbered after `seq` (never
    /// committed) and goes back to the log's committed state, which is
    /// durable through `seq`. Copies of its state taken before are stale.
    pub fn roll_back(&self, seq: u64) {
        let mut durability = self.durability.lock();
        durability.generation += 1;
        durability.seq = durability.seq.max(seq);
        self.changed.notify_all();
    }

    /// How many times the shard has rolled back (see [`Shared::roll_back`]).
    pub fn generation(&self) -> u64 {
        self.durability.lock().generation
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

    /// Why a write is refused when this node does not take it: a poisoned
    /// log says so (nothing is taken until a restart), otherwise this node
    /// does not lead.
    pub fn refusal(&self) -> crate::RuntimeError {
        self.poisoned().map_or(
            crate::RuntimeError::NotLeader,
            crate::RuntimeError::Durability,
        )
    }

    /// Why the log refuses writes, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.durability.lock().poisoned.clone()
    }

    /// Blocks until the log is durable up to `seq` for a state copied in
    /// `generation`; false if it never will be (the log is poisoned, or
    /// the shard rolled back since: the copy may hold records that never
    /// commit, even if others with the same numbers do).
    pub fn wait_durable(&self, seq: u64, generation: u64) -> bool {
        let mut durability = self.durability.lock();
        loop {
            if durability.generation != generation || durability.poisoned.is_some() {
                return false;
            }
            if durability.seq >= seq {
                return true;
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
