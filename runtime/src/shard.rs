//! The shard thread: it owns its events' engines and nothing else touches
//! them, so the hot path takes no lock. It drains a batch of requests from
//! its bounded channel, stamps the time once, prefetches, applies each
//! command, ticks every event whose deadline has come, numbers the resulting
//! transitions as log records, and hands records and replies to the writer,
//! which answers only once they are durable. Every so many records or
//! seconds it copies its state for the snapshot thread.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ingressoja_engine::{Command, CustomerId, Engine, Transition};
use ingressoja_wal::Record;

use super::clock::Clock;
use super::log_entry::{EventId, LogEntry, PendingPayment, Settlement};
use super::recovery::{MAX_PENDING_PAYMENTS, ReplayError, ShardState};
use super::shared::Shared;
use super::snapshotter::SnapshotJob;
use super::writer::{Notice, WriteJob};
use super::{Applied, Request, RuntimeError, RuntimeOptions};

/// Ticks come at most this often: admission paced at 500/s would otherwise
/// wake the shard every 2 ms for one admission each.
const MIN_TICK_INTERVAL_MS: u64 = 10;
/// With nothing due, the shard still wakes this often (to notice the clock).
const MAX_SLEEP_MS: u64 = 1_000;

/// Which of a command's transitions its requester caused, and from where:
/// those from index `first` on (after time has acted) that concern the
/// requesting customer. Others in the same list (the next fan admitted into
/// a freed slot, the sale closing as sold out) are nobody's request.
#[derive(Clone, Copy)]
struct Origin {
    customer: CustomerId,
    from: IpAddr,
    first: usize,
}

impl Origin {
    fn covers(&self, index: usize, transition: &Transition) -> bool {
        index >= self.first && transition.customer() == Some(self.customer)
    }
}

/// Answers `respond` with `result` once the job's records are durable; a
/// refusal (nothing logged) is answered at once.
fn when_durable<T: Send + 'static>(
    job: &mut WriteJob,
    result: Result<T, RuntimeError>,
    respond: impl FnOnce(Result<T, RuntimeError>) + Send + 'static,
) {
    match result {
        Ok(value) => job
            .completions
            .push(Box::new(move |durable| respond(durable.map(|()| value)))),
        Err(error) => respond(Err(error)),
    }
}

/// A new leadership's tag: random (a restarted node must not reuse one
/// that is still in its log), nonzero, and not the last one.
fn fresh_tag(last: u64) -> u64 {
    loop {
        let tag = getrandom::u64().unwrap_or_else(|_| {
            // No entropy: time and the last tag still differ per leadership.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(1) ^ last.rotate_left(17)
        });
        if tag != 0 && tag != last {
            return tag;
        }
    }
}

/// Answers through a oneshot channel (a requester that gave up is fine).
fn send_to<T>(
    reply: tokio::sync::oneshot::Sender<Result<T, RuntimeError>>,
) -> impl FnOnce(Result<T, RuntimeError>) {
    move |answer| {
        let _ = reply.send(answer);
    }
}

pub(crate) struct Shard {
    pub state: ShardState,
    pub next_seq: u64,
    pub clock: Arc<dyn Clock>,
    pub writer: tokio::sync::mpsc::Sender<WriteJob>,
    pub snapshots: Sender<SnapshotJob>,
    pub shared: Arc<Shared>,
    pub options: RuntimeOptions,
    pub last_now_ms: u64,
    pub last_tick_ms: u64,
    pub records_since_snapshot: u64,
    pub last_snapshot_ms: u64,
    /// Whether this shard leads its Raft group and has applied its whole
    /// log: only then does it take writes (its records must continue the
    /// log). Until then writes are refused with `NotLeader`.
    pub leading: bool,
    /// The tag of this shard's current (or last) leadership: on its
    /// batches, so that the state machine knows them as its own.
    pub numbered_by: u64,
    /// Rebuilds the state the committed log holds through a record: the
    /// way back for a deposed leader (see [`Shard::roll_back`]).
    pub rebuild: Rebuild,
    /// Where changes go for subscribers: the writer publishes a leader's
    /// own once committed; the shard publishes those it applies from the
    /// log (a follower's).
    pub notices: super::writer::Notices,
    /// Counts the group snapshots installed (see `Runtime::installs`).
    pub installs: tokio::sync::watch::Sender<u64>,
}

/// See [`Shard::rebuild`].
pub(crate) type Rebuild = Box<dyn FnMut(u64) -> Result<ShardState, String> + Send>;

impl Shard {
    pub fn run(mut self, requests: Receiver<Request>) {
        loop {
            let wait = self.sleep_for();
            let first = match requests.recv_timeout(wait) {
                Ok(request) => Some(request),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch: Vec<Request> = first.into_iter().collect();
            while batch.len() < self.options.max_batch {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            if self.process(batch) {
                break;
            }
        }
        // Dropping the senders lets the writer and the snapshot thread finish
        // what they have and stop.
    }

    /// Time never runs backwards for the engines, whatever the clock does.
    fn now_ms(&mut self) -> u64 {
        self.last_now_ms = self.last_now_ms.max(self.clock.now_ms());
        self.last_now_ms
    }

    fn sleep_for(&mut self) -> Duration {
        let now = self.now_ms();
        let next = self
            .state
            .events
            .values()
            .filter_map(Engine::next_deadline)
            .min();
        let earliest_tick = self.last_tick_ms.saturating_add(MIN_TICK_INTERVAL_MS);
        let wake = next.map_or(now + MAX_SLEEP_MS, |d| d.max(earliest_tick));
        Duration::from_millis(wake.saturating_sub(now).min(MAX_SLEEP_MS))
    }

    /// Applies one batch; true when asked to shut down.
    fn process(&mut self, batch: Vec<Request>) -> bool {
        let now = self.now_ms();
        let mut job = WriteJob::new(self.numbered_by);
        let mut shutdown = false;
        let mut snapshot_requests = Vec::new();
        for request in &batch {
            if let Request::Apply { event, command, .. } = request
                && let Some(engine) = self.state.events.get(event)
            {
                engine.prefetch(std::iter::once(command));
            }
        }
        for request in batch {
            let request = match self.refuse_unless_leading(request) {
                Some(request) => request,
                None => continue,
            };
            match request {
                Request::Apply {
                    event,
                    command,
                    from,
                    after,
                } => {
                    let applied = self.apply(event, command, from, now, &mut job);
                    let respond = after(self.state.events.get(&event));
                    when_durable(&mut job, applied, respond);
                }
                Request::CreateEvent { config, reply } => {
                    let completion = self.create_event(config, &mut job.records);
                    job.completions.push(Box::new(move |durable| {
                        let _ = reply.send(durable.and(completion));
                    }));
                }
                Request::Read(read) => {
                    let hand_over = read(&self.state);
                    // The read saw every record numbered so far; it waits
                    // for them unless they are durable already.
                    if self.shared.durable_seq() >= self.next_seq - 1 {
                        hand_over(Ok(()));
                    } else {
                        job.completions.push(hand_over);
                    }
                }
                Request::Snapshot { reply } => snapshot_requests.push(reply),
                Request::StartPayment {
                    payment,
                    from,
                    reply,
                } => {
                    let started = self.start_payment(payment, from, now, &mut job.records);
                    when_durable(&mut job, started, send_to(reply));
                }
                Request::SettlePayment {
                    payment,
                    settlement,
                    reply,
                } => {
                    // "Not in flight" is also an answer from state that may
                    // not be durable yet: it waits for the batch too.
                    let logged = self.settle_payment(payment, settlement, now, &mut job.records);
                    when_durable(&mut job, logged, send_to(reply));
                }
                Request::Attach { bytes, reply } => {
                    let seq = self.next_seq;
                    let logged = self
                        .push_record(&LogEntry::Attached(bytes), now, &mut job.records)
                        .map(|()| seq);
                    when_durable(&mut job, logged, send_to(reply));
                }
                Request::Committed { records, done } => {
                    let _ = done.send(self.apply_committed(records));
                }
                Request::Lead => {
                    // What came before is not the new leadership's.
                    let earlier = std::mem::replace(&mut job, WriteJob::new(0));
                    self.hand_to_writer(earlier);
                    self.lead();
                    job.numbered_by = self.numbered_by;
                }
                Request::StepDown => self.step_down(),
                Request::Install { state, seq, done } => {
                    self.step_down();
                    self.install(*state, seq);
                    let _ = done.send(());
                }
                Request::RollBack { to } => {
                    self.step_down();
                    self.roll_back(to);
                }
                Request::Shutdown => shutdown = true,
            }
        }
        if self.leading {
            // Time acts only on the leader: its ticks are records like any
            // other, and followers get them through the log.
            self.tick_due_events(now, &mut job);
        }
        self.records_since_snapshot += job.records.len() as u64;
        self.hand_to_writer(job);
        let due = self.records_since_snapshot >= self.options.snapshot_every_records
            || now.saturating_sub(self.last_snapshot_ms) >= self.options.snapshot_every_ms;
        if !snapshot_requests.is_empty() || (due && self.records_since_snapshot > 0) {
            self.take_snapshot(now, snapshot_requests);
        }
        shutdown
    }

    /// Starts leading: the Raft group elected this node and it has applied
    /// its whole log. What the engines hold beyond the applied log (batches
    /// of an earlier leadership that never made it into the log) is thrown
    /// away first, and the new leadership gets a tag of its own, so that
    /// the state machine tells its batches from any earlier one's.
    fn lead(&mut self) {
        let tag = fresh_tag(self.numbered_by);
        let applied = {
            let mut holding = self.shared.holding.lock();
            holding.numbered_by = Some(tag);
            holding.applied_seq
        };
        self.roll_back(applied);
        if self.shared.poisoned().is_some() {
            return;
        }
        self.numbered_by = tag;
        self.leading = true;
        self.shared.go_live(tag);
        tracing::info!(through = applied, "this node leads its shard");
    }

    /// Stops taking writes: the Raft group deposed this node. What it
    /// numbered and did not commit stays in the engines until the state
    /// machine learns whether it commits (a new leader may still commit
    /// it) or is overwritten (then it is thrown away).
    fn step_down(&mut self) {
        if self.leading {
            tracing::info!("this node no longer leads its shard");
        }
        self.leading = false;
        self.shared.end_live(self.numbered_by);
    }

    /// Goes back to the committed log's state through record `to`, if the
    /// engines hold anything else: rebuilt from the newest snapshot at or
    /// before it and the log's records up to it. A state that cannot be
    /// rebuilt poisons the runtime (restart recovers it from disk).
    fn roll_back(&mut self, to: u64) {
        if self.next_seq - 1 == to {
            return;
        }
        tracing::warn!(
            from = self.next_seq - 1,
            to,
            "throwing away records that never committed"
        );
        self.shared.roll_back(to);
        match (self.rebuild)(to) {
            Ok(state) => {
                self.state = state;
                self.next_seq = to + 1;
                self.records_since_snapshot = 0;
                self.shared.record(|s| s.rollbacks += 1);
            }
            Err(reason) => self
                .shared
                .poison(format!("cannot rebuild the committed state: {reason}")),
        }
    }

    /// Takes the state of the group's snapshot through record `seq` (see
    /// `Request::Install`): whatever the engines held is replaced, and
    /// copies of it taken before are stale.
    fn install(&mut self, state: ShardState, seq: u64) {
        self.shared.roll_back(seq);
        self.state = state;
        self.next_seq = seq + 1;
        self.records_since_snapshot = 0;
        // The changes the snapshot skipped have no notices: subscribers
        // are told to re-read (with none listening, the count still moves).
        self.installs.send_modify(|count| *count += 1);
        tracing::info!(through = seq, "the shard took the group's snapshot");
    }

    /// Answers a write with `NotLeader` while this shard does not lead
    /// (returns `None`: handled); hands anything else back.
    fn refuse_unless_leading(&self, request: Request) -> Option<Request> {
        if self.leading {
            return Some(request);
        }
        let error = self.shared.refusal();
        match request {
            Request::Apply { event, after, .. } => {
                let respond = after(self.state.events.get(&event));
                respond(Err(error));
                None
            }
            Request::CreateEvent { reply, .. } => {
                let _ = reply.send(Err(error));
                None
            }
            Request::StartPayment { reply, .. } => {
                let _ = reply.send(Err(error));
                None
            }
            Request::SettlePayment { reply, .. } => {
                let _ = reply.send(Err(error));
                None
            }
            Request::Attach { reply, .. } => {
                let _ = reply.send(Err(error));
                None
            }
            other => Some(other),
        }
    }

    /// Applies records the Raft group committed. Those already in the
    /// engines (this shard's own, or replayed at start) are skipped by
    /// number; the next ones are replayed as recovery replays them. A gap,
    /// or a record the engines refuse, is an error: the node stops rather
    /// than hold a state the log does not describe.
    fn apply_committed(&mut self, records: Vec<Record>) -> Result<(), String> {
        // Committed up to the last of these, not up to what this shard has
        // numbered: a leader's later records are not committed yet.
        let committed = records.last().map(|r| r.seq);
        for record in records {
            if record.seq < self.next_seq {
                continue;
            }
            if record.seq > self.next_seq {
                let reason = format!(
                    "committed record {} does not follow record {}",
                    record.seq,
                    self.next_seq - 1
                );
                self.shared.poison(reason.clone());
                return Err(reason);
            }
            // Decoded once: what it changes (to publish) and to apply.
            let applied = LogEntry::decode(&record.payload)
                .map_err(ReplayError::from)
                .and_then(|entry| {
                    let changed = self.changed_by(&entry);
                    self.state.apply_entry(entry).map(|()| changed)
                });
            let changed = match applied {
                Ok(changed) => changed,
                Err(error) => {
                    let reason = format!("committed record {} does not apply: {error}", record.seq);
                    self.shared.poison(reason.clone());
                    return Err(reason);
                }
            };
            if let Some((event, transition, served_before)) = changed {
                self.publish(record.seq, event, transition, served_before);
            }
            self.next_seq += 1;
            self.records_since_snapshot += 1;
        }
        if let Some(seq) = committed {
            self.shared.set_durable(seq);
        }
        Ok(())
    }

    /// The transition a committed entry holds, with its event's cursor
    /// before it (for the customers whose turn an admission starts).
    fn changed_by(&self, entry: &LogEntry) -> Option<(EventId, Transition, u32)> {
        match *entry {
            LogEntry::Transition { event, transition }
            | LogEntry::RequestedTransition {
                event, transition, ..
            } => {
                let served_before = self.state.events.get(&event)?.served();
                Some((event, transition, served_before))
            }
            _ => None,
        }
    }

    /// Publishes a committed record's change to this node's subscribers,
    /// as the writer does for a leader's own: a follower's fans see the
    /// sale move too. It is committed, so it is shown.
    fn publish(&self, seq: u64, event: EventId, transition: Transition, served_before: u32) {
        // No subscriber is fine: nobody is listening.
        let _ = self.notices.send(Notice {
            event,
            seq,
            transition,
            turn_of: None,
        });
        if matches!(transition, Transition::Admitted { .. })
            && let Some(engine) = self.state.events.get(&event)
        {
            for customer in engine.admitted_since(served_before) {
                let _ = self.notices.send(Notice {
                    event,
                    seq,
                    transition,
                    turn_of: Some(customer),
                });
            }
        }
    }

    fn apply(
        &mut self,
        event: EventId,
        command: Command,
        from: Option<IpAddr>,
        now: u64,
        job: &mut WriteJob,
    ) -> Result<Applied, RuntimeError> {
        let Some(engine) = self.state.events.get_mut(&event) else {
            return Err(RuntimeError::UnknownEvent(event));
        };
        let mut transitions = Vec::new();
        let served_before = engine.served();
        let mut origin = from.zip(command.customer()).map(|(from, customer)| Origin {
            customer,
            from,
            first: 0,
        });
        if let Some(origin) = &mut origin {
            // Time acts first, on its own, so that what the command itself
            // caused starts at `first`: an expiry or window end that was
            // merely due is not logged as this client's doing. (`apply`
            // would let time act before deciding anyway; at the same instant
            // a second pass finds nothing more to do, so the transitions are
            // the same.) Commands nobody's address goes with skip it.
            let _ = engine.apply(Command::Tick, now, &mut transitions);
            origin.first = transitions.len();
        }
        let outcome = engine.apply(command, now, &mut transitions);
        self.log_transitions(event, &transitions, origin, served_before, now, job)?;
        Ok(Applied {
            outcome,
            transitions,
            last_seq: self.next_seq - 1,
        })
    }

    fn create_event(
        &mut self,
        config: Box<ingressoja_engine::EventConfig>,
        records: &mut Vec<Record>,
    ) -> Result<EventId, RuntimeError> {
        let engine = Engine::new((*config).clone()).map_err(RuntimeError::InvalidConfig)?;
        let event = EventId::on_shard(self.options.shard, self.state.next_event);
        let entry = LogEntry::EventCreated { event, config };
        self.push_record(&entry, self.last_now_ms, records)?;
        self.state.next_event += 1;
        self.state.events.insert(event, engine);
        Ok(event)
    }

    fn start_payment(
        &mut self,
        payment: PendingPayment,
        from: Option<IpAddr>,
        now: u64,
        records: &mut Vec<Record>,
    ) -> Result<PendingPayment, RuntimeError> {
        if !self.state.events.contains_key(&payment.event) {
            return Err(RuntimeError::UnknownEvent(payment.event));
        }
        if self.state.payments.contains_key(&payment.checkout()) {
            return Err(RuntimeError::PaymentInFlight);
        }
        if self.state.payments.len() >= MAX_PENDING_PAYMENTS {
            return Err(RuntimeError::Overloaded);
        }
        let payment = PendingPayment {
            started_at_ms: now,
            ..payment
        };
        self.push_record(&LogEntry::PaymentStarted { payment, from }, now, records)?;
        let started = self.state.start_payment(payment);
        assert!(started.is_ok(), "checked above: {started:?}");
        Ok(payment)
    }

    /// Logs a settlement; false (nothing logged) if the payment is not the
    /// one in flight for its checkout.
    fn settle_payment(
        &mut self,
        payment: PendingPayment,
        settlement: Settlement,
        now: u64,
        records: &mut Vec<Record>,
    ) -> Result<bool, RuntimeError> {
        let in_flight = self.state.payments.get(&payment.checkout());
        if in_flight.is_none_or(|p| p.payment_ref != payment.payment_ref) {
            return Ok(false);
        }
        let entry = LogEntry::PaymentSettled {
            payment,
            settlement,
        };
        self.push_record(&entry, now, records)?;
        let settled = self.state.settle_payment(&payment);
        assert!(settled.is_ok(), "checked above: {settled:?}");
        Ok(true)
    }

    fn tick_due_events(&mut self, now: u64, job: &mut WriteJob) {
        let due: Vec<EventId> = self
            .state
            .events
            .iter()
            .filter(|(_, engine)| engine.next_deadline().is_some_and(|d| d <= now))
            .map(|(&id, _)| id)
            .collect();
        if due.is_empty() {
            return;
        }
        self.last_tick_ms = now;
        let mut transitions = Vec::new();
        for event in due {
            if let Some(engine) = self.state.events.get_mut(&event) {
                transitions.clear();
                let served_before = engine.served();
                // A tick is never rejected.
                let _ = engine.apply(Command::Tick, now, &mut transitions);
                // A failure poisons the runtime; nothing more to do here.
                let _ = self.log_transitions(event, &transitions, None, served_before, now, job);
            }
        }
    }

    /// Logs transitions as records and as notices to publish once durable.
    /// Those the requesting fan's command made for that fan carry the
    /// request's address (see [`Origin`]). `served_before` is the engine's
    /// cursor before the apply that made them: the customers whose turn it
    /// started get a notice each, naming them, on the last `Admitted`.
    fn log_transitions(
        &mut self,
        event: EventId,
        transitions: &[Transition],
        origin: Option<Origin>,
        served_before: u32,
        now: u64,
        job: &mut WriteJob,
    ) -> Result<(), RuntimeError> {
        let mut admitted = None;
        for (index, &transition) in transitions.iter().enumerate() {
            let seq = self.next_seq;
            let entry = match origin {
                Some(origin) if origin.covers(index, &transition) => {
                    LogEntry::RequestedTransition {
                        event,
                        transition,
                        from: origin.from,
                    }
                }
                _ => LogEntry::Transition { event, transition },
            };
            self.push_record(&entry, now, &mut job.records)?;
            job.notices.push(Notice {
                event,
                seq,
                transition,
                turn_of: None,
            });
            if matches!(transition, Transition::Admitted { .. }) {
                admitted = Some((seq, transition));
            }
        }
        if let Some((seq, transition)) = admitted
            && let Some(engine) = self.state.events.get(&event)
        {
            let turns = engine.admitted_since(served_before);
            job.notices.extend(turns.into_iter().map(|customer| Notice {
                event,
                seq,
                transition,
                turn_of: Some(customer),
            }));
        }
        Ok(())
    }

    /// Numbers and encodes one record. An entry that cannot be encoded would
    /// leave the state ahead of the log forever, so it poisons the runtime.
    fn push_record(
        &mut self,
        entry: &LogEntry,
        now: u64,
        records: &mut Vec<Record>,
    ) -> Result<(), RuntimeError> {
        match entry.encode() {
            Ok(payload) => {
                records.push(Record {
                    seq: self.next_seq,
                    timestamp_ms: now,
                    payload,
                });
                self.next_seq += 1;
                Ok(())
            }
            Err(error) => {
                let reason = format!("cannot encode a log entry: {error}");
                self.shared.poison(reason.clone());
                Err(RuntimeError::Durability(reason))
            }
        }
    }

    fn hand_to_writer(&mut self, job: WriteJob) {
        if job.records.is_empty() && job.completions.is_empty() {
            return;
        }
        // A full writer channel blocks the shard: back-pressure that fills the
        // request channel, where new arrivals are refused with 503.
        if let Err(tokio::sync::mpsc::error::SendError(job)) = self.writer.blocking_send(job) {
            for completion in job.completions {
                completion(Err(RuntimeError::Stopped));
            }
        }
    }

    fn take_snapshot(
        &mut self,
        now: u64,
        requests: Vec<tokio::sync::oneshot::Sender<Result<u64, RuntimeError>>>,
    ) {
        let started = Instant::now();
        let state = self.state.clone();
        let pause_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.shared.record(|s| s.last_snapshot_pause_us = pause_us);
        self.records_since_snapshot = 0;
        self.last_snapshot_ms = now;
        let last_seq = self.next_seq - 1;
        let job = SnapshotJob {
            last_seq,
            generation: self.shared.generation(),
            taken_at_ms: now,
            state,
            done: requests,
        };
        if let Err(crossbeam_channel::SendError(job)) = self.snapshots.send(job) {
            for done in job.done {
                let _ = done.send(Err(RuntimeError::Stopped));
            }
        }
    }
}
