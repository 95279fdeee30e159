//! The durable runtime end to end, in one process: acknowledged work
//! survives a restart (log replay, snapshot plus log, a corrupt snapshot
//! falling back), time-driven work happens without requests, a full queue
//! sheds, and a failed fsync poisons the runtime instead of acknowledging.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ingressoja_engine::{
    Command, CustomerId, EventConfig, Payment, Policy, Reply, TicketTypeId, TypeCounts,
};
use ingressoja_runtime::{ManualClock, Runtime, RuntimeError, RuntimeOptions, ShardState};
use ingressoja_wal::{Faults, MemStore};

mod support;

const OPENS_AT: u64 = support::NOW;

fn config() -> EventConfig {
    support::runtime_event("Recovery Test")
}

fn options(dir: &std::path::Path) -> RuntimeOptions {
    RuntimeOptions::new(dir)
}

fn two_pista() -> TypeCounts {
    TypeCounts::single(TicketTypeId(0), 2).unwrap()
}

/// Waits (polling, with a deadline) until `condition` holds on the state.
fn eventually(runtime: &Runtime, condition: impl Fn(&ShardState) -> bool + Send + Sync + 'static) {
    let condition = Arc::new(condition);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let check = condition.clone();
        if runtime
            .query(move |state| check(state))
            .and_then(|pending| pending.wait())
            .unwrap()
        {
            return;
        }
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        std::thread::yield_now();
    }
}

/// A sale where customers 1..=n joined, were admitted, and each holds two
/// tickets; customer 1 also paid.
fn run_a_sale(runtime: &Runtime, n: u64) -> ingressoja_runtime::EventId {
    let event = runtime
        .create_event(config())
        .and_then(|pending| pending.wait())
        .unwrap();
    for id in 1..=n {
        let joined = support::join(runtime, event, id).unwrap();
        assert_eq!(joined.outcome, Ok(Reply::Joined { fresh: true }));
    }
    for id in 1..=n {
        let held = runtime
            .submit(
                event,
                Command::AddItems {
                    customer: CustomerId(id),
                    items: two_pista(),
                },
                None,
            )
            .and_then(|pending| pending.wait())
            .unwrap();
        assert!(matches!(held.outcome, Ok(Reply::Held { .. })), "{held:?}");
    }
    let paid = runtime
        .submit(
            event,
            Command::Checkout {
                customer: CustomerId(1),
                payment: Payment::Approved {
                    amount_cents: 20_000,
                    payment_ref: 1,
                },
                idempotency_key: 1,
                ticket_seed: 1,
            },
            None,
        )
        .and_then(|pending| pending.wait())
        .unwrap();
    assert!(matches!(
        paid.outcome,
        Ok(Reply::OrderPlaced {
            duplicate: false,
            ..
        })
    ));
    event
}

fn state_of(runtime: &Runtime) -> ShardState {
    runtime
        .query(|state| state.clone())
        .and_then(|pending| pending.wait())
        .unwrap()
}

#[test]
fn acknowledged_work_survives_a_restart_by_replaying_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(OPENS_AT));
    let before = {
        let runtime = Runtime::start(options(dir.path()), clock.clone()).unwrap();
        run_a_sale(&runtime, 5);
        let state = state_of(&runtime);
        runtime.shutdown();
        state
    };
    let runtime = Runtime::start(options(dir.path()), clock).unwrap();
    assert_eq!(runtime.recovery().snapshot_seq, None);
    assert!(runtime.recovery().replayed > 10);
    let after = state_of(&runtime);
    assert_eq!(after, before);
    let engine = after.events.values().next().unwrap();
    assert_eq!(engine.stats().tickets_sold, 2);
    assert_eq!(engine.stats().tickets_held, 8);
    engine.check_invariants().unwrap();
}

#[test]
fn recovery_starts_from_the_snapshot_and_replays_only_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(OPENS_AT));
    let (before, snapshot_seq) = {
        let runtime = Runtime::start(options(dir.path()), clock.clone()).unwrap();
        let event = run_a_sale(&runtime, 3);
        let seq = runtime
            .snapshot()
            .and_then(|pending| pending.wait())
            .unwrap();
        support::join(&runtime, event, 50).unwrap();
        runtime
            .submit(
                event,
                Command::ReleaseHold {
                    customer: CustomerId(2),
                },
                None,
            )
            .and_then(|pending| pending.wait())
            .unwrap();
        let state = state_of(&runtime);
        runtime.shutdown();
        (state, seq)
    };
    let runtime = Runtime::start(options(dir.path()), clock).unwrap();
    let report = runtime.recovery().clone();
    assert_eq!(report.snapshot_seq, Some(snapshot_seq));
    assert_eq!(report.last_seq, snapshot_seq + report.replayed);
    assert!(report.replayed >= 2, "{report:?}");
    assert_eq!(state_of(&runtime), before);
}

#[test]
fn a_corrupt_snapshot_falls_back_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(OPENS_AT));
    let before = {
        let runtime = Runtime::start(options(dir.path()), clock.clone()).unwrap();
        run_a_sale(&runtime, 3);
        runtime
            .snapshot()
            .and_then(|pending| pending.wait())
            .unwrap();
        let state = state_of(&runtime);
        runtime.shutdown();
        state
    };
    for entry in std::fs::read_dir(dir.path().join("snapshots")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
    }
    let runtime = Runtime::start(options(dir.path()), clock).unwrap();
    assert_eq!(runtime.recovery().snapshot_seq, None);
    assert_eq!(runtime.recovery().skipped_snapshots.len(), 1);
    assert_eq!(state_of(&runtime), before);
}

#[test]
fn holds_expire_without_any_request_arriving() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(OPENS_AT));
    let runtime = Runtime::start(options(dir.path()), clock.clone()).unwrap();
    let event = run_a_sale(&runtime, 2);
    clock.set(OPENS_AT + Policy::default().hold_ttl_ms);
    // The shard wakes on its own (at most a second later) and ticks.
    eventually(&runtime, move |state| {
        state.events[&event].stats().tickets_held == 0
    });
    let durable = runtime.durable_seq();
    runtime.shutdown();
    let runtime = Runtime::start(options(dir.path()), Arc::new(ManualClock::at(OPENS_AT))).unwrap();
    assert!(runtime.recovery().last_seq >= durable);
    let held = runtime
        .query(move |state| state.events[&event].stats().tickets_held)
        .and_then(|pending| pending.wait())
        .unwrap();
    assert_eq!(held, 0, "the expiry was logged");
}

#[test]
fn a_full_queue_sheds_new_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.queue_capacity = 4;
    let runtime = Runtime::start(options, Arc::new(ManualClock::at(OPENS_AT))).unwrap();
    let event = runtime
        .create_event(config())
        .and_then(|pending| pending.wait())
        .unwrap();
    let mut waiting = Vec::new();
    let mut shed = 0;
    for id in 0..10_000 {
        match runtime.submit(
            event,
            Command::Join {
                customer: CustomerId(id),
            },
            None,
        ) {
            Ok(receiver) => waiting.push(receiver),
            Err(RuntimeError::Overloaded) => shed += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(shed > 0, "nothing was shed");
    for receiver in waiting {
        assert!(receiver.wait().is_ok());
    }
}

#[test]
fn unknown_events_and_invalid_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::start(options(dir.path()), Arc::new(ManualClock::at(OPENS_AT))).unwrap();
    let missing = ingressoja_runtime::EventId(7);
    let error = runtime
        .submit(missing, Command::Tick, None)
        .and_then(|pending| pending.wait())
        .unwrap_err();
    assert_eq!(error, RuntimeError::UnknownEvent(missing));
    let mut bad = config();
    bad.ticket_types.clear();
    assert!(matches!(
        runtime.create_event(bad).and_then(|pending| pending.wait()),
        Err(RuntimeError::InvalidConfig(_))
    ));
}

#[test]
fn a_failed_fsync_poisons_the_runtime_and_nothing_more_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::default();
    let clock = Arc::new(ManualClock::at(OPENS_AT));
    let runtime = Runtime::start_on(store.clone(), options(dir.path()), clock.clone()).unwrap();
    let event = runtime
        .create_event(config())
        .and_then(|pending| pending.wait())
        .unwrap();
    support::join(&runtime, event, 1).unwrap();
    store.inject(Faults {
        fail_next_sync: true,
        ..Faults::default()
    });
    let failed = support::join(&runtime, event, 2);
    assert!(
        matches!(failed, Err(RuntimeError::Durability(_))),
        "{failed:?}"
    );
    assert!(runtime.poisoned().is_some());
    let after = support::join(&runtime, event, 3);
    assert!(
        matches!(after, Err(RuntimeError::Durability(_))),
        "{after:?}"
    );
    runtime.shutdown();
    // A restart recovers exactly what was acknowledged: customer 1 only.
    let runtime = Runtime::start_on(store, options(dir.path()), clock).unwrap();
    let joined = runtime
        .query(move |state| state.events[&event].stats().joined)
        .and_then(|pending| pending.wait())
        .unwrap();
    assert_eq!(joined, 1);
}
