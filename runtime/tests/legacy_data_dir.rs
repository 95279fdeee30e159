//! A data directory written before the sale log was a Raft log (records in
//! the `wal` column family, no `raft` one) opens as it is: its records are
//! the Raft log's base, the state they make is recovered, and the sale goes
//! on from the next record number, surviving a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ingressoja_engine::{Command, CustomerId, QueueStatus};
use ingressoja_runtime::{
    DataDir, EventId, LogEntry, ManualClock, Runtime, RuntimeOptions, ShardState,
};
use ingressoja_wal::{Record, RocksStore, Wal, open_db};

mod support;

/// Writes the event's creation as the old runtime did: one record, straight
/// into the `wal` family of a database that has no other.
fn write_old_style_log(data: &std::path::Path) -> EventId {
    let event = EventId(0);
    let entry = LogEntry::EventCreated {
        event,
        config: Box::new(support::runtime_event("Before Raft")),
    };
    let db = open_db(&DataDir::create(data).unwrap().db_path(), &["wal"]).unwrap();
    let store = RocksStore::new(db, "wal").unwrap();
    let (mut wal, _) = Wal::open(store, 0, |_| Ok(())).unwrap();
    let record = Record {
        seq: 1,
        timestamp_ms: support::NOW,
        payload: entry.encode().unwrap(),
    };
    wal.append(support::NOW, vec![record]).unwrap();
    event
}

fn start(data: &std::path::Path) -> Runtime {
    let clock = Arc::new(ManualClock::at(support::NOW));
    Runtime::start(RuntimeOptions::new(data), clock).unwrap()
}

#[test]
fn a_data_directory_from_before_raft_opens_and_the_sale_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let event = write_old_style_log(dir.path());

    let runtime = start(dir.path());
    let state = runtime.query(ShardState::clone).unwrap().wait().unwrap();
    assert!(state.events.contains_key(&event), "the old log's event");
    let fan = CustomerId(7);
    let joined = runtime
        .submit(event, Command::Join { customer: fan }, None)
        .unwrap()
        .wait()
        .unwrap();
    assert!(joined.last_seq > 1, "numbered after the old log's record");
    runtime.shutdown();

    let runtime = start(dir.path());
    let status = runtime
        .query(move |state: &ShardState| state.events[&event].queue_status(fan))
        .unwrap()
        .wait()
        .unwrap();
    assert!(
        !matches!(status, QueueStatus::NotJoined),
        "the join made after the upgrade survives a restart: {status:?}"
    );
}
