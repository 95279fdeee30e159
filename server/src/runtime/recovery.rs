//! Recovery at start: the newest snapshot that checks out, then every log
//! record after it, each transition checked by `Engine::apply_transition`
//! before it is applied. The state that comes out is everything the log
//! holds, which is everything ever acknowledged (a reply waits for its batch
//! to be synced).

use std::collections::BTreeMap;
use std::time::Instant;

use ingressoja_engine::Engine;
use ingressoja_wal::{LogStore, Record, TailCut, Wal};
use serde::{Deserialize, Serialize};

use super::log_entry::{CheckoutKey, EventId, LogEntry, PendingPayment};

/// Everything a shard owns; what a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    /// The id the next event gets.
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

impl ShardState {
    /// Checks every event's invariants; returns the tickets sold across events.
    pub fn check_invariants(&self) -> Result<u64, String> {
        let mut sold = 0;
        for (event, engine) in &self.events {
            engine
                .check_invariants()
                .map_err(|v| format!("event {}: {v}", event.0))?;
            sold += engine.stats().tickets_sold;
        }
        Ok(sold)
    }

    /// Applies one log record.
    pub fn apply_record(&mut self, record: &Record) -> Result<(), String> {
        let entry =
            LogEntry::decode(&record.payload).map_err(|e| format!("undecodable entry: {e}"))?;
        match entry {
            LogEntry::EventCreated { event, config } => {
                if self.events.contains_key(&event) {
                    return Err(format!("event {} created twice", event.0));
                }
                let engine = Engine::new(*config).map_err(|e| format!("event {}: {e}", event.0))?;
                self.events.insert(event, engine);
                self.next_event = self.next_event.max(event.0 + 1);
            }
            LogEntry::Transition { event, transition }
            | LogEntry::RequestedTransition {
                event, transition, ..
            } => {
                let engine = self
                    .events
                    .get_mut(&event)
                    .ok_or(format!("unknown event {}", event.0))?;
                engine
                    .apply_transition(&transition)
                    .map_err(|e| e.to_string())?;
            }
            LogEntry::PaymentStarted { payment, .. } => self.start_payment(payment)?,
            LogEntry::PaymentSettled { payment, .. } => self.settle_payment(&payment)?,
        }
        Ok(())
    }

    /// Records a started payment, unless one of the same checkout is in
    /// flight (the shard checks this before logging; replay re-checks).
    pub fn start_payment(&mut self, payment: PendingPayment) -> Result<(), String> {
        if !self.events.contains_key(&payment.event) {
            return Err(format!("payment for unknown event {}", payment.event.0));
        }
        match self.payments.entry(payment.checkout()) {
            std::collections::btree_map::Entry::Occupied(_) => Err(format!(
                "payment {} started while another of its checkout was in flight",
                payment.payment_ref
            )),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(payment);
                Ok(())
            }
        }
    }

    /// Forgets a settled payment; it must be the one in flight.
    pub fn settle_payment(&mut self, payment: &PendingPayment) -> Result<(), String> {
        match self.payments.get(&payment.checkout()) {
            Some(pending) if pending.payment_ref == payment.payment_ref => {
                self.payments.remove(&payment.checkout());
                Ok(())
            }
            _ => Err(format!(
                "payment {} settled but not in flight",
                payment.payment_ref
            )),
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
    Log(#[from] ingressoja_wal::OpenError),
}

/// Rebuilds a shard's state: the newest valid snapshot, then the log after it.
pub fn recover<S: LogStore>(
    store: S,
    snapshots: &ingressoja_snapshots::SnapshotDir,
) -> Result<(ShardState, Wal<S>, RecoveryReport), RecoveryError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let search = snapshots.load_newest::<ShardState>()?;
    report.skipped_snapshots = search
        .skipped
        .iter()
        .map(|(path, e)| format!("{}: {e}", path.display()))
        .collect();
    let (mut state, anchor) = match search.found {
        Some(loaded) => {
            report.snapshot_seq = Some(loaded.last_seq);
            (loaded.state, loaded.last_seq)
        }
        None => (ShardState::default(), 0),
    };
    let (wal, opened) = Wal::open(store, anchor, |record| state.apply_record(record))?;
    report.replayed = opened.records_replayed;
    report.cut = opened.cut;
    report.last_seq = opened.last_seq;
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok((state, wal, report))
}
