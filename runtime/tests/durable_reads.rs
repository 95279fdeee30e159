//! Reads never reveal a change before it is durable: while the write that
//! holds a fan's new hold is in flight (its fsync held back by the test's
//! store), a read of the state is run by the shard but its answer waits,
//! and comes once the write lands; with nothing in flight a read is
//! answered at once (no fsync of its own); after a failed write, reads are
//! refused rather than showing what never reached the disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ingressoja_engine::{Command, CustomerId, QueueStatus, Reply, TicketTypeId, TypeCounts};
use ingressoja_runtime::{EventId, ManualClock, Runtime, RuntimeError, RuntimeOptions};
use ingressoja_wal::{Faults, MemStore};

mod support;

const FAN: CustomerId = CustomerId(1);

/// Polls `condition` until it holds, failing after ten seconds.
fn poll_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not reached in 10 s");
        std::thread::yield_now();
    }
}

/// A runtime on `store` with one open event that fan 1 has joined (and so
/// was admitted).
fn sale(store: &MemStore, dir: &std::path::Path) -> (Runtime, EventId) {
    let clock = Arc::new(ManualClock::at(support::NOW));
    let runtime = Runtime::start_on(store.clone(), RuntimeOptions::new(dir), clock).unwrap();
    let event = runtime
        .create_event(support::runtime_event("Durable reads"))
        .and_then(|pending| pending.wait())
        .unwrap();
    let joined = runtime
        .submit(event, Command::Join { customer: FAN }, None)
        .and_then(|pending| pending.wait())
        .unwrap();
    assert_eq!(joined.outcome, Ok(Reply::Joined { fresh: true }));
    (runtime, event)
}

fn hold_two(runtime: &Runtime, event: EventId) -> impl Sized {
    runtime
        .submit(
            event,
            Command::AddItems {
                customer: FAN,
                items: TypeCounts::single(TicketTypeId(0), 2).unwrap(),
            },
            None,
        )
        .unwrap()
}

#[test]
fn a_read_waits_for_the_write_in_flight_and_shows_it_once_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::default();
    let (runtime, event) = sale(&store, dir.path());

    store.hold_syncs();
    let _hold = hold_two(&runtime, event);
    poll_until("the hold's write in flight", || store.syncs_held() == 1);

    // The shard runs the read (it sees the hold) but must not hand it over.
    let ran = Arc::new(AtomicBool::new(false));
    let ran_on_shard = ran.clone();
    let mut cart = runtime
        .query(move |state| {
            ran_on_shard.store(true, Ordering::SeqCst);
            state.events[&event].cart(FAN).map(|c| c.items.total())
        })
        .unwrap();
    poll_until("the shard running the read", || ran.load(Ordering::SeqCst));
    assert!(
        cart.try_now().is_none(),
        "a read showed a hold whose write is still in flight"
    );

    store.release_syncs();
    let shown = cart.wait().unwrap();
    assert_eq!(shown, Some(2), "once durable, the read shows the hold");
    assert!(runtime.durable_seq() >= 3);
}

#[test]
fn with_nothing_in_flight_a_read_is_answered_without_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::default();
    let (runtime, event) = sale(&store, dir.path());
    // Every write would now hang: a read that asked for one never returns.
    store.hold_syncs();
    let place = runtime
        .query(move |state| state.events[&event].queue_status(FAN))
        .and_then(|pending| pending.wait())
        .unwrap();
    assert!(matches!(place, QueueStatus::Shopping { .. }), "{place:?}");
    assert_eq!(store.syncs_held(), 0, "the read wrote nothing");
    store.release_syncs();
}

#[test]
fn after_a_failed_write_a_read_of_what_it_held_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::default();
    let (runtime, event) = sale(&store, dir.path());
    store.hold_syncs();
    store.inject(Faults {
        fail_next_sync: true,
        ..Faults::default()
    });
    let _hold = hold_two(&runtime, event);
    poll_until("the hold's write in flight", || store.syncs_held() == 1);
    let cart = runtime
        .query(move |state| state.events[&event].cart(FAN).is_some())
        .unwrap();
    store.release_syncs();
    let answer = cart.wait();
    assert!(
        matches!(answer, Err(RuntimeError::Durability(_))),
        "{answer:?}"
    );
}
