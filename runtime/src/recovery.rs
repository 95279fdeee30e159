//! Recovery at start: the newest snapshot that checks out, then every log
//! record after it, each transition checked by `Engine::apply_transition`
//! before it is applied. The state that comes out is everything the log
//! holds, which is everything ever acknowledged (a reply waits for its batch
//! to be synced).

use std::collections::BTreeMap;
use std::time::Instant;

use ingressoja_cluster::wal_log::{Opened, WalLog, WalLogError, stored_snapshot};
use ingressoja_engine::{ConfigError, Engine};
use ingressoja_wal::{LogStore, Record, TailCut, Wal};
use serde::{Deserialize, Serialize};

use super::log_entry::{CheckoutKey, EventId, LogEntry, PendingPayment};

/// Everything a shard owns; what a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    /// The number on this shard the next event gets.
    pub next_event: u32,
    /// The events, by id.
    pub events: BTreeMap<EventId, Engine>,
    /// Payments logged as started and not yet settled, by checkout (one in
    /// flight per checkout): what the settlement sweep takes to the gateway.
    /// Bounded by [`MAX_PENDING_PAYMENTS`].
    pub payments: BTreeMap<CheckoutKey, PendingPayment>,
}

/// Started, unsettled payments a shard keeps at most; beyond it a new
/// payment is shed (503) until the gateway has settled some.
pub const MAX_PENDING_PAYMENTS: usize = 100_000;

/// Why a log record cannot be applied to the state recovered so far: the
/// log and the state disagree, and recovery stops rather than guess.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The record's payload is not a log entry this build reads.
    #[error("undecodable entry: {0}")]
    Undecodable(#[from] postcard::Error),
    /// An event is created twice.
    #[error("event {} created twice", .0.0)]
    CreatedTwice(EventId),
    /// A logged event's configuration is refused.
    #[error("event {}: {error}", .event.0)]
    InvalidConfig {
        /// The event.
        event: EventId,
        /// What is wrong with its configuration.
        error: ConfigError,
    },
    /// A record names an event that was never created.
    #[error("unknown event {}", .0.0)]
    UnknownEvent(EventId),
    /// The engine refuses a logged transition.
    #[error("event {}: {refusal}", .event.0)]
    Transition {
        /// The event.
        event: EventId,
        /// Why the engine refuses it.
        refusal: String,
    },
    /// A payment started while another of its checkout was in flight.
    #[error("payment {0} started while another of its checkout was in flight")]
    PaymentTwice(u64),
    /// A payment settled that was not in flight.
    #[error("payment {0} settled but not in flight")]
    PaymentNotInFlight(u64),
}

/// An event whose invariants do not hold.
#[derive(Debug, thiserror::Error)]
#[error("event {}: {violation}", .event.0)]
pub struct InvariantBroken {
    /// The event.
    pub event: EventId,
    /// What does not hold.
    pub violation: String,
}

impl ShardState {
    /// Checks every event's invariants; returns the tickets sold across events.
    pub fn check_invariants(&self) -> Result<u64, InvariantBroken> {
        let mut sold = 0;
        for (event, engine) in &self.events {
            engine
                .check_invariants()
                .map_err(|violation| InvariantBroken {
                    event: *event,
                    violation: violation.to_string(),
                })?;
            sold += engine.stats().tickets_sold;
        }
        Ok(sold)
    }

    /// Applies one log record.
    pub fn apply_record(&mut self, record: &Record) -> Result<(), ReplayError> {
        self.apply_entry(LogEntry::decode(&record.payload)?)
    }

    /// Applies one decoded log entry.
    pub fn apply_entry(&mut self, entry: LogEntry) -> Result<(), ReplayError> {
        match entry {
            LogEntry::EventCreated { event, config } => {
                if self.events.contains_key(&event) {
                    return Err(ReplayError::CreatedTwice(event));
                }
                let engine = Engine::new(*config)
                    .map_err(|error| ReplayError::InvalidConfig { event, error })?;
                self.events.insert(event, engine);
                self.next_event = self.next_event.max(event.number().saturating_add(1));
            }
            LogEntry::Transition { event, transition }
            | LogEntry::RequestedTransition {
                event, transition, ..
            } => {
                let engine = self
                    .events
                    .get_mut(&event)
                    .ok_or(ReplayError::UnknownEvent(event))?;
                engine
                    .apply_transition(&transition)
                    .map_err(|e| ReplayError::Transition {
                        event,
                        refusal: e.to_string(),
                    })?;
            }
            LogEntry::PaymentStarted { payment, .. } => self.start_payment(payment)?,
            LogEntry::PaymentSettled { payment, .. } => self.settle_payment(&payment)?,
            // Not the sale's: applied once committed by the state it
            // belongs to (`attached.rs`).
            LogEntry::Attached(_) => {}
        }
        Ok(())
    }

    /// Records a started payment, unless one of the same checkout is in
    /// flight (the shard checks this before logging; replay re-checks).
    pub fn start_payment(&mut self, payment: PendingPayment) -> Result<(), ReplayError> {
        if !self.events.contains_key(&payment.event) {
            return Err(ReplayError::UnknownEvent(payment.event));
        }
        match self.payments.entry(payment.checkout()) {
            std::collections::btree_map::Entry::Occupied(_) => {
                Err(ReplayError::PaymentTwice(payment.payment_ref))
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(payment);
                Ok(())
            }
        }
    }

    /// Forgets a settled payment; it must be the one in flight.
    pub fn settle_payment(&mut self, payment: &PendingPayment) -> Result<(), ReplayError> {
        match self.payments.get(&payment.checkout()) {
            Some(pending) if pending.payment_ref == payment.payment_ref => {
                self.payments.remove(&payment.checkout());
                Ok(())
            }
            _ => Err(ReplayError::PaymentNotInFlight(payment.payment_ref)),
        }
    }
}

/// What recovery did, for logs and `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// The sequence number of the snapshot used, if any.
    pub snapshot_seq: Option<u64>,
    /// Snapshots skipped as unreadable, with the reason.
    pub skipped_snapshots: Vec<String>,
    /// Records replayed from the log.
    pub replayed: u64,
    /// A torn tail cut from the log.
    pub cut: Option<TailCut>,
    /// The last sequence number in the log.
    pub last_seq: u64,
    /// How long recovery took, in milliseconds.
    pub duration_ms: u64,
}

/// Why recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The data directory could not be read.
    #[error("cannot read the data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The log refused to open.
    #[error(transparent)]
    Log(#[from] WalLogError),
    /// The log started over after a snapshot installed from another node,
    /// and no readable snapshot covers that point.
    #[error(
        "the log starts after record {0} (a snapshot installed from another node), and no \
         readable snapshot holds the state there"
    )]
    NoSnapshotAtOrigin(u64),
}

/// The state to replay the log onto, for a state through at most record
/// `at_most`: the newest snapshot that checks out and that the log
/// continues, and the last record it covers. That is the newer of this
/// node's own newest snapshot file and the group's snapshot it holds (one
/// it built, or installed from another node), among those from the log's
/// origin on: a log that started over after an installed snapshot holds no
/// record before it, so older snapshots cannot be continued. None at all
/// means the empty state, before record 1 (only a log that never started
/// over). The files skipped are named in `report`.
fn base_state<S: LogStore>(
    store: &S,
    snapshots: &ingressoja_snapshots::SnapshotDir,
    at_most: u64,
    report: &mut RecoveryReport,
) -> Result<(ShardState, u64), RecoveryError> {
    let origin = ingressoja_wal::origin(store)?;
    let search = snapshots.load_newest_at_most::<ShardState>(at_most)?;
    report.skipped_snapshots = search
        .skipped
        .iter()
        .map(|(path, e)| format!("{}: {e}", path.display()))
        .collect();
    let own = search
        .found
        .filter(|loaded| loaded.last_seq >= origin)
        .map(|loaded| (loaded.state, loaded.last_seq));
    let group = match stored_snapshot(store)? {
        Some(stored) if (origin..=at_most).contains(&stored.seq) => {
            let decoded = crate::raft_snapshots::split(&stored.bytes).and_then(|group| {
                ingressoja_snapshots::decode::<ShardState>(&group.shard).map_err(|e| e.to_string())
            });
            match decoded {
                Ok((_, state)) => Some((state, stored.seq)),
                Err(error) => {
                    report
                        .skipped_snapshots
                        .push(format!("the group's snapshot {}: {error}", stored.seq));
                    None
                }
            }
        }
        _ => None,
    };
    let newest = match (own, group) {
        (Some(own), Some(group)) => Some(if group.1 > own.1 { group } else { own }),
        (own, group) => own.or(group),
    };
    match newest {
        Some((state, seq)) => {
            report.snapshot_seq = Some(seq);
            Ok((state, seq))
        }
        None if origin == 0 => Ok((ShardState::default(), 0)),
        None => Err(RecoveryError::NoSnapshotAtOrigin(origin)),
    }
}

/// Rebuilds a shard's state: the newest valid snapshot the log continues
/// (see `base_state`), then the log after it.
pub fn recover<S: LogStore + Clone + Sync + 'static>(
    store: S,
    snapshots: &ingressoja_snapshots::SnapshotDir,
) -> Result<(ShardState, Opened<S>, RecoveryReport), RecoveryError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let (mut state, anchor) = base_state(&store, snapshots, u64::MAX, &mut report)?;
    // Only records known committed are replayed here; the log's tail after
    // them is applied by the Raft group once it has committed them.
    let mut through = anchor;
    let opened = WalLog::open(store, anchor, |record| {
        state.apply_record(record)?;
        through = record.seq;
        Ok(())
    })?;
    report.replayed = opened.replayed;
    report.cut.clone_from(&opened.cut);
    report.last_seq = through;
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok((state, opened, report))
}

/// The state the log holds through record `through`: the newest snapshot
/// at or before it, then the log's records up to it. For a deposed leader
/// going back to committed state while its node runs (the records up to
/// `through` are committed, so no new leader cuts them meanwhile).
pub fn rebuild_through<S: LogStore>(
    store: &S,
    snapshots: &ingressoja_snapshots::SnapshotDir,
    through: u64,
) -> Result<ShardState, String> {
    let (mut state, mut last) =
        base_state(store, snapshots, through, &mut RecoveryReport::default())
            .map_err(|e| format!("reading snapshots: {e}"))?;
    for record in ingressoja_wal::read_from(store, last + 1) {
        let record = record.map_err(|e| format!("reading the log: {e}"))?;
        if record.seq > through {
            break;
        }
        if record.seq != last + 1 {
            return Err(format!("record {} follows record {last}", record.seq));
        }
        state
            .apply_record(&record)
            .map_err(|e| format!("record {}: {e}", record.seq))?;
        last = record.seq;
    }
    if last != through {
        return Err(format!("the log ends at record {last}, before {through}"));
    }
    Ok(state)
}

/// What a stopped node's data holds, for the offline tools (backup verify,
/// restore): the newest snapshot and every record after it, to the log's
/// end. On a single node that is exactly what its next start will hold (a
/// group of one commits its whole log when it leads again); on a follower
/// the tail may still be cut by its leader.
pub fn replay_whole_log<S: LogStore>(
    store: S,
    snapshots: &ingressoja_snapshots::SnapshotDir,
) -> Result<(ShardState, RecoveryReport), RecoveryError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let (mut state, anchor) = base_state(&store, snapshots, u64::MAX, &mut report)?;
    let (_, opened) = Wal::open(store, anchor, |record| {
        state.apply_record(record).map_err(Into::into)
    })
    .map_err(WalLogError::from)?;
    report.replayed = opened.records_replayed;
    report.cut = opened.cut;
    report.last_seq = opened.last_seq;
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok((state, report))
}
