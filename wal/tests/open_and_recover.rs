//! Opening a log: replay from an anchor, a torn tail cut, and every kind of
//! damage before the tail refused with the sequence number named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod support;

use ingressoja_wal::{Damage, MemStore, OpenError, Wal};
use support::{payload, records};

/// A log of batches of 3, 4 and 5 records (seqs 1-3, 4-7, 8-12).
fn three_batches() -> MemStore {
    let store = MemStore::default();
    let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
    wal.append(10, records(1, 3)).unwrap();
    wal.append(20, records(4, 4)).unwrap();
    wal.append(30, records(8, 5)).unwrap();
    store
}

fn reopen(
    store: &MemStore,
    anchor: u64,
) -> Result<(Vec<u64>, ingressoja_wal::OpenReport), OpenError> {
    let mut seen = Vec::new();
    let (_, report) = Wal::open(store.clone(), anchor, |r| {
        seen.push(r.seq);
        Ok(())
    })?;
    Ok((seen, report))
}

#[test]
fn reopening_replays_exactly_the_records_after_the_anchor() {
    let store = three_batches();
    for anchor in 0..=12 {
        let (seen, report) = reopen(&store, anchor).unwrap();
        assert_eq!(
            seen,
            ((anchor + 1)..=12).collect::<Vec<_>>(),
            "anchor {anchor}"
        );
        assert_eq!(report.last_seq, 12);
        assert_eq!(report.cut, None);
    }
}

#[test]
fn appending_after_reopen_continues_the_sequence_and_the_chain() {
    let store = three_batches();
    let (mut wal, _) = Wal::open(store.clone(), 5, |_| Ok(())).unwrap();
    assert_eq!(wal.next_seq(), 13);
    wal.append(40, records(13, 2)).unwrap();
    let summary = ingressoja_wal::verify(&store, |_| {}).unwrap();
    assert_eq!(
        (summary.batches, summary.records, summary.last_seq),
        (4, 14, 14)
    );
}

#[test]
fn records_must_continue_the_sequence() {
    let store = three_batches();
    let (mut wal, _) = Wal::open(store, 0, |_| Ok(())).unwrap();
    let error = wal.append(40, records(14, 1)).unwrap_err();
    assert!(matches!(
        error,
        ingressoja_wal::AppendError::OutOfSequence {
            expected: 13,
            found: 14
        }
    ));
    assert!(
        wal.poisoned().is_none(),
        "a refused append is not a failed write"
    );
}

#[test]
fn a_torn_last_batch_is_cut_and_reported() {
    let store = three_batches();
    store.damage(8, |bytes| bytes.truncate(bytes.len() / 2));
    let (seen, report) = reopen(&store, 0).unwrap();
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    let cut = report.cut.unwrap();
    assert_eq!((cut.seq, cut.damage), (8, Damage::HashMismatch));
    assert_eq!(
        store.keys(),
        vec![1, 4],
        "the torn batch is gone from the store"
    );
    let (_, again) = reopen(&store, 0).unwrap();
    assert_eq!((again.cut, again.last_seq), (None, 7));
}

#[test]
fn a_corrupt_batch_before_the_tail_refuses_to_open_and_names_it() {
    let store = three_batches();
    store.damage(4, |bytes| bytes[10] ^= 0x40);
    let error = reopen(&store, 0).unwrap_err();
    assert!(
        matches!(error, OpenError::CorruptMiddle { seq: 4, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("sequence 4"), "{error}");
    assert_eq!(
        store.keys(),
        vec![1, 4, 8],
        "nothing is cut from a damaged middle"
    );
}

#[test]
fn a_missing_batch_refuses_to_open() {
    let store = three_batches();
    store.remove(4);
    let error = reopen(&store, 0).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::Gap {
                expected: 4,
                found: 8
            }
        ),
        "{error}"
    );
}

#[test]
fn a_replaced_batch_breaks_the_chain() {
    // A forger rewrites batch 4-7 with valid hashes of its own: the batch is
    // intact on its own, but batch 8 no longer links to it.
    let store = three_batches();
    let forged = MemStore::default();
    let (mut other, _) = Wal::open(forged.clone(), 0, |_| Ok(())).unwrap();
    other.append(10, records(1, 3)).unwrap();
    let mut fake = records(4, 4);
    fake[0].payload = b"sold to the forger".to_vec();
    other.append(20, fake).unwrap();
    let forged_bytes = forged.bytes(4).unwrap();
    store.damage(4, |bytes| *bytes = forged_bytes);
    let error = reopen(&store, 0).unwrap_err();
    assert!(
        matches!(error, OpenError::BrokenChain { seq: 8 }),
        "{error}"
    );
    let verify = ingressoja_wal::verify(&store, |_| {}).unwrap_err();
    assert!(verify.to_string().contains("sequence 8"), "{verify}");
}

#[test]
fn a_log_shorter_than_the_snapshot_refuses_to_open() {
    let store = three_batches();
    let error = reopen(&store, 20).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::ShorterThanSnapshot {
                log_end: 12,
                anchor: 20
            }
        ),
        "{error}"
    );
}

#[test]
fn truncating_after_a_sequence_rewrites_the_batch_holding_it() {
    let store = three_batches();
    let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
    wal.truncate_after(5).unwrap();
    assert_eq!(wal.next_seq(), 6);
    let (seen, _) = reopen(&store, 0).unwrap();
    assert_eq!(seen, (1..=5).collect::<Vec<_>>());
    wal.append(50, records(6, 2)).unwrap();
    assert_eq!(ingressoja_wal::verify(&store, |_| {}).unwrap().last_seq, 7);
}

#[test]
fn reading_from_any_sequence_number() {
    let store = three_batches();
    let (wal, _) = Wal::open(store, 0, |_| Ok(())).unwrap();
    for from in 1..=13 {
        let seqs: Vec<u64> = wal.read_from(from).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, (from..=12).collect::<Vec<_>>(), "from {from}");
    }
    let first = wal.read_from(9).next().unwrap().unwrap();
    assert_eq!((first.timestamp_ms, first.payload), (1_009, payload(9)));
}

#[test]
fn reading_back_from_any_sequence_number_gives_newest_first() {
    let store = three_batches();
    for from in 0..=14 {
        let seqs: Vec<u64> = ingressoja_wal::read_back(&store, from)
            .map(|r| r.unwrap().seq)
            .collect();
        let expected: Vec<u64> = (1..=from.min(12)).rev().collect();
        assert_eq!(seqs, expected, "back from {from}");
    }
    let newest = ingressoja_wal::read_back(&store, u64::MAX)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((newest.seq, newest.payload), (12, payload(12)));
}

#[test]
fn reading_back_stops_at_a_damaged_batch_and_names_it() {
    let store = three_batches();
    store.damage(4, |bytes| bytes[0] ^= 1);
    let read: Vec<_> = ingressoja_wal::read_back(&store, u64::MAX).collect();
    let seqs: Vec<u64> = read
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        seqs,
        vec![12, 11, 10, 9, 8],
        "the batch after the damage is read"
    );
    assert!(
        matches!(
            read.last(),
            Some(Err(ingressoja_wal::VerifyError::Bad { seq: 4, .. }))
        ),
        "{:?}",
        read.last()
    );
    assert_eq!(read.len(), 6, "nothing is read past the damaged batch");
}

#[test]
fn a_log_restarted_after_a_snapshot_continues_from_its_origin() {
    let store = three_batches();
    let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
    let head = [7; 32];
    let side = [ingressoja_wal::SideWrite::Put(b"x".to_vec(), b"y".to_vec())];
    wal.restart_after(100, head, &side).unwrap();
    assert_eq!(wal.next_seq(), 101);
    assert_eq!(wal.head(), head);
    assert!(store.keys().is_empty(), "the old records are gone");
    assert_eq!(ingressoja_wal::origin(&store).unwrap(), 100);
    wal.append(40, records(101, 3)).unwrap();

    // It reopens from its origin (or any later anchor), replaying what
    // follows, and the whole chain checks out from the origin's head.
    for anchor in [100, 102] {
        let (seen, report) = reopen(&store, anchor).unwrap();
        assert_eq!(seen, ((anchor + 1)..=103).collect::<Vec<_>>());
        assert_eq!(report.last_seq, 103);
    }
    let summary = ingressoja_wal::verify(&store, |_| {}).unwrap();
    assert_eq!((summary.records, summary.last_seq), (3, 103));
    let reread: Vec<u64> = ingressoja_wal::read_from(&store, 0)
        .map(|r| r.unwrap().seq)
        .collect();
    assert_eq!(reread, vec![101, 102, 103]);

    // A snapshot older than the origin cannot be continued by this log.
    let error = reopen(&store, 50).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::BeforeOrigin {
                anchor: 50,
                origin: 100
            }
        ),
        "{error}"
    );
    // Truncation keeps the origin: cutting every record goes back to it,
    // and it cannot go below it.
    let (mut wal, _) = Wal::open(store.clone(), 100, |_| Ok(())).unwrap();
    assert!(wal.truncate_after(99).is_err());
    wal.truncate_after(100).unwrap();
    assert_eq!((wal.next_seq(), wal.head()), (101, head));
    wal.append(50, records(101, 1)).unwrap();
    assert_eq!(
        ingressoja_wal::verify(&store, |_| {}).unwrap().last_seq,
        101
    );
}

#[test]
fn a_failed_restart_poisons_the_log_and_keeps_the_records() {
    let store = three_batches();
    let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
    store.inject(ingressoja_wal::Faults {
        fail_next_sync: true,
        ..Default::default()
    });
    assert!(wal.restart_after(100, [1; 32], &[]).is_err());
    assert!(wal.poisoned().is_some());
    let (seen, _) = reopen(&store, 0).unwrap();
    assert_eq!(seen, (1..=12).collect::<Vec<_>>());
}
