//! Writes that fail: a failed fsync poisons the log (it refuses every later
//! write instead of guessing what reached the disk), and a write torn by a
//! crash is cut when the log is next opened, keeping everything acknowledged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod support;

use ingressoja_wal::{AppendError, Faults, MemStore, Wal};
use support::records;

#[test]
fn a_failed_sync_poisons_the_log() {
    let store = MemStore::default();
    let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
    wal.append(1, records(1, 2)).unwrap();
    store.inject(Faults {
        fail_next_sync: true,
        ..Faults::default()
    });
    assert!(matches!(
        wal.append(2, records(3, 2)),
        Err(AppendError::Io(_))
    ));
    assert!(wal.poisoned().is_some());
    // The store would accept the next write, but the log refuses it.
    assert!(matches!(
        wal.append(3, records(3, 2)),
        Err(AppendError::Poisoned(_))
    ));
    // A restart recovers exactly what was acknowledged.
    let mut seen = Vec::new();
    let (mut reopened, report) = Wal::open(store, 0, |r| {
        seen.push(r.seq);
        Ok(())
    })
    .unwrap();
    assert_eq!((seen, report.cut), (vec![1, 2], None));
    reopened.append(4, records(3, 1)).unwrap();
}

#[test]
fn a_write_torn_by_a_crash_is_cut_at_the_next_open() {
    let store = MemStore::default();
    let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
    wal.append(1, records(1, 3)).unwrap();
    store.inject(Faults {
        tear_next_write_at: Some(20),
        ..Faults::default()
    });
    assert!(wal.append(2, records(4, 3)).is_err());
    drop(wal);
    let mut seen = Vec::new();
    let (_, report) = Wal::open(store.clone(), 0, |r| {
        seen.push(r.seq);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![1, 2, 3]);
    let cut = report.cut.unwrap();
    assert_eq!((cut.seq, cut.bytes), (4, 20));
}
