//! Backups and point-in-time restore: a backup taken while the sale runs
//! restores to a consistent state, a restore can stop at a sequence number or
//! an instant, and a damaged backup is refused by `verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;
use std::thread;

use ingressoja_engine::{EventConfig, MINUTE_MS};
use ingressoja_runtime::backup::{BackupError, verify_backup};
use ingressoja_runtime::restore::{Until, restore};
use ingressoja_runtime::{DataDir, ManualClock, Runtime, RuntimeOptions, recovery};

mod support;

const OPENS_AT: u64 = support::NOW;
/// The joins of these tests happen during the pre-queue, so after the event's
/// creation (record 1) every record is exactly one join.
const PREQUEUE: u64 = OPENS_AT - 20 * MINUTE_MS;

/// One Pista of 1 000, one shopper at a time.
fn config() -> EventConfig {
    let mut config = support::runtime_event("Backup Test");
    config.ticket_types[0].capacity = 1_000;
    config.policy.max_active = 1;
    config
}

fn joined(data: &std::path::Path) -> u32 {
    let data = DataDir::create(data).unwrap();
    let store = DataDir::wal_store(data.open_db(&[]).unwrap()).unwrap();
    let (state, _) = recovery::replay_whole_log(store, &data.snapshots(3).unwrap()).unwrap();
    state.events.values().map(|e| e.stats().joined).sum()
}

#[test]
fn a_backup_taken_under_load_restores_to_a_consistent_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = RuntimeOptions::new(dir.path().join("data"));
    options.snapshot_every_records = 500;
    let runtime = Arc::new(Runtime::start(options, Arc::new(ManualClock::at(PREQUEUE))).unwrap());
    let event = runtime
        .create_event(config())
        .and_then(|pending| pending.wait())
        .unwrap();
    let load = {
        let runtime = runtime.clone();
        thread::spawn(move || {
            for id in 0..5_000 {
                support::join(&runtime, event, id).unwrap();
            }
        })
    };
    // Take the backup while joins are being acknowledged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while runtime.durable_seq() < 1_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never got going"
        );
        thread::yield_now();
    }
    let backup = dir.path().join("backup");
    runtime.backup(&backup).unwrap();
    load.join().unwrap();

    let summary = verify_backup(&backup).unwrap();
    assert!(
        summary.last_seq >= 1_000 && summary.last_seq <= 5_001,
        "{summary:?}"
    );
    assert!(summary.snapshots >= 1, "{summary:?}");
    let restored = dir.path().join("restored");
    let result = restore(&backup, &restored, Until::End).unwrap();
    assert_eq!(result.restored_seq, summary.last_seq);
    // Every record is the event's creation or one join.
    assert_eq!(u64::from(joined(&restored)), summary.last_seq - 1);
}

#[test]
fn a_restore_stops_at_a_sequence_number_or_an_instant() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(PREQUEUE));
    let mut options = RuntimeOptions::new(dir.path().join("data"));
    options.snapshot_every_records = 40;
    let runtime = Runtime::start(options, clock.clone()).unwrap();
    let event = runtime
        .create_event(config())
        .and_then(|pending| pending.wait())
        .unwrap();
    for id in 0..100 {
        clock.set(PREQUEUE + id * 1_000);
        support::join(&runtime, event, id).unwrap();
    }
    let backup = dir.path().join("backup");
    runtime.backup(&backup).unwrap();
    drop(runtime);

    // Record 1 created the event; the join of customer k is record k + 2.
    let by_seq = dir.path().join("by-seq");
    let result = restore(&backup, &by_seq, Until::Seq(31)).unwrap();
    assert_eq!(result.restored_seq, 31);
    assert_eq!(joined(&by_seq), 30);

    // Joins at PREQUEUE + k s for k = 0..=49 are at or before this instant.
    let by_time = dir.path().join("by-time");
    let result = restore(&backup, &by_time, Until::Time(PREQUEUE + 49_500)).unwrap();
    assert_eq!(result.restored_seq, 51);
    assert_eq!(joined(&by_time), 50);

    // A restored directory runs and continues the log.
    let runtime = Runtime::start(RuntimeOptions::new(&by_time), clock).unwrap();
    support::join(&runtime, event, 777).unwrap();
    assert_eq!(runtime.durable_seq(), 52);
}

#[test]
fn a_restore_refuses_a_data_directory_in_use_and_verify_refuses_damage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let runtime = Runtime::start(
        RuntimeOptions::new(&data),
        Arc::new(ManualClock::at(OPENS_AT)),
    )
    .unwrap();
    runtime
        .create_event(config())
        .and_then(|pending| pending.wait())
        .unwrap();
    let backup = dir.path().join("backup");
    runtime.backup(&backup).unwrap();
    drop(runtime);
    assert!(matches!(
        restore(&backup, &data, Until::End),
        Err(BackupError::TargetNotEmpty(_))
    ));
    assert!(matches!(
        ingressoja_runtime::backup::create_offline_backup(&data, &backup),
        Err(BackupError::TargetNotEmpty(_))
    ));
    // Overwrite the backup's table files: verify must notice.
    for entry in std::fs::read_dir(backup.join("db")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sst") {
            std::fs::write(&path, b"not an sst").unwrap();
        }
    }
    assert!(verify_backup(&backup).is_err());
}

#[test]
fn a_finished_backup_and_a_finished_restore_survive_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(PREQUEUE));
    let mut options = RuntimeOptions::new(dir.path().join("data"));
    options.snapshot_every_records = 40;
    let runtime = Runtime::start(options, clock).unwrap();
    let event = runtime
        .create_event(config())
        .and_then(|pending| pending.wait())
        .unwrap();
    for id in 0..100 {
        support::join(&runtime, event, id).unwrap();
    }
    // The backup goes to a disk that loses power once it is done...
    let disk = ingressoja_powerloss::mount_in(dir.path()).unwrap();
    let backup = disk.path.join("backups/monday");
    runtime.backup(&backup).unwrap();
    drop(runtime);
    disk.power.cut(std::path::Path::new("")).unwrap();
    let summary = verify_backup(&backup).unwrap();
    assert_eq!(summary.last_seq, 101, "{summary:?}");
    assert!(
        summary.snapshots >= 2,
        "the snapshot copies survived: {summary:?}"
    );

    // ...and so does a restore onto it.
    let restored = disk.path.join("restored");
    restore(&backup, &restored, Until::End).unwrap();
    disk.power.cut(std::path::Path::new("")).unwrap();
    assert_eq!(joined(&restored), 100);
}
